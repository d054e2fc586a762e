#pragma once

// Keyset pagination (docs/api.md, "Lists and cursors"). A list cursor is the base64url (no padding)
// of the JSON array [created_at, id] of the last row returned; the trials
// cursor also names its sort, [sort, key, id], so that a cursor made for one
// order is refused (422) for another instead of skipping rows.

#include <optional>
#include <string>
#include <string_view>

#include "api/uri.hpp"
#include "api/validation.hpp"

namespace relyloop::core {

inline constexpr int kDefaultLimit = 50;
inline constexpr int kMaxLimit = 200;
inline constexpr size_t kMaxCursorLength = 1024;

[[nodiscard]] std::string base64url_encode(std::string_view bytes);
// Strict: URL-safe alphabet only, no padding, canonical trailing bits.
[[nodiscard]] std::optional<std::string> base64url_decode(std::string_view text);

struct ListCursor {
    std::string created_at;  // normalized for a $n::timestamptz parameter
    std::string id;
};

[[nodiscard]] std::string encode_list_cursor(std::string_view created_at_rfc3339,
                                             std::string_view id);
[[nodiscard]] std::optional<ListCursor> decode_list_cursor(std::string_view cursor);

enum class TrialSort { kMetricDesc, kMetricAsc, kNumberAsc, kEndedDesc, kEndedAsc };
// The ?sort= names, in TrialSort order.
inline constexpr std::string_view kTrialSortNames[] = {"primary_metric_desc", "primary_metric_asc",
                                                       "optuna_trial_number_asc", "ended_at_desc",
                                                       "ended_at_asc"};

[[nodiscard]] std::string_view trial_sort_name(TrialSort s) noexcept;
[[nodiscard]] std::optional<TrialSort> parse_trial_sort(std::string_view s) noexcept;

struct TrialCursor {
    // Metric sorts: primary_metric as PostgreSQL printed it (float8 text),
    // nullopt for a NULL metric. Number sort: the trial number as text.
    // ended_at sorts: the normalized timestamp, nullopt for NULL.
    std::optional<std::string> key;
    std::string id;
};

// key: the float8 text (nullptr for NULL), the trial number text, or the
// RFC 3339 ended_at (nullptr for NULL).
[[nodiscard]] std::string encode_trial_cursor(TrialSort sort, const char *key, std::string_view id);
[[nodiscard]] std::optional<TrialCursor> decode_trial_cursor(std::string_view cursor,
                                                             TrialSort expected);

// A float8 literal PostgreSQL accepts without raising: a finite decimal
// number (no overflow) or NaN/Infinity/-Infinity.
[[nodiscard]] bool valid_float8_text(std::string_view s) noexcept;

// The sorted lists (docs/api.md, "Sorting"): ?sort=<key>:<asc|desc>, each
// key one of three types; the cursor is [value, id, "<key>:<dir>"] (value:
// RFC 3339, a string, or a float8 as text; null for a NULL key). Without a
// sort (or with created_at:desc) the cursor stays the list cursor above.
enum class KeyType { kTimestamp, kText, kNumber };
struct SortKey {
    std::string_view name;
    KeyType type;
};
inline constexpr std::string_view kDefaultSortTag = "created_at:desc";
// The q order: rank DESC (an integer key).
inline constexpr SortKey kRankKey{"rank", KeyType::kNumber};

struct SortedCursor {
    std::optional<std::string> value;  // normalized for its type; nullopt = NULL
    std::string id;
};
// A [value, id, tag] cursor.
[[nodiscard]] std::string encode_sorted_cursor(const SortKey &key, std::string_view tag,
                                               const char *value, std::string_view id);
// The tag of a [value, id, tag] cursor, or nullopt when it is none.
[[nodiscard]] std::optional<std::string> sorted_cursor_tag(std::string_view cursor);
// The cursor when it is a well-formed [value, id, tag] one for this key and tag.
[[nodiscard]] std::optional<SortedCursor> decode_sorted_cursor(std::string_view cursor,
                                                               const SortKey &key,
                                                               std::string_view tag);

// ?<name>= a boolean: true/1/yes/on/t/y, false/0/no/off/f/n, any case.
[[nodiscard]] std::optional<bool> parse_bool_filter(const QueryArgs &args, const char *name,
                                                    Problems &problems);
// Every query parameter must be one of `allowed` ("query.<name>: unknown
// parameter" otherwise).
void reject_unknown_params(const QueryArgs &args, std::span<const std::string_view> allowed,
                           Problems &problems);

struct ListParams {
    int limit = kDefaultLimit;
    std::optional<ListCursor> cursor;
    std::optional<std::string> since;  // normalized timestamp
};

// ?limit= (1..200, default 50); problems as "query.limit: ...".
[[nodiscard]] int parse_limit(const QueryArgs &args, Problems &problems);
// ?limit=, ?cursor=, ?since= of the created_at lists.
[[nodiscard]] ListParams parse_list_params(const QueryArgs &args, Problems &problems);
// ?<name>= filter matched against an id column.
[[nodiscard]] std::optional<std::string> parse_id_filter(const QueryArgs &args, const char *name,
                                                         Problems &problems);
// ?<name>= one of an enumeration.
[[nodiscard]] std::optional<std::string> parse_enum_filter(const QueryArgs &args, const char *name,
                                                           std::span<const std::string_view> values,
                                                           Problems &problems);

}  // namespace relyloop::core
