#pragma once

// Request validation with pydantic-like messages (docs/api.md, "Errors"):
//   "Request validation failed: body.name: field required; body.x: extra fields not permitted"

#include <jansson.h>

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/raii.hpp"

namespace relyloop::core {

inline constexpr std::string_view kValidationPrefix = "Request validation failed: ";

// Collects "<location>: <reason>" problems; raise() throws one
// VALIDATION_ERROR (relyloop::Error) naming them all, in the order found.
class Problems {
  public:
    void add(std::string location, std::string_view reason);
    [[nodiscard]] bool empty() const noexcept { return items_.empty(); }
    [[nodiscard]] std::string message() const;
    // Throws when there is at least one problem.
    void raise_if_any() const;

  private:
    std::vector<std::string> items_;
};

[[noreturn]] void fail_validation(std::string location, std::string_view reason);

// The request body as a JSON object. An empty (or all-whitespace) body is
// "body: field required" when required, else an empty object. Malformed JSON,
// duplicate keys and a non-object top level are VALIDATION_ERRORs.
[[nodiscard]] Json parse_body_object(std::string_view body, bool required);

// A string rule: length in code points and an optional extra check.
struct StringRule {
    size_t max_chars = 128;
    size_t min_chars = 1;
    bool (*check)(std::string_view) = nullptr;
    const char *check_reason = nullptr;  // e.g. "must match ^[a-z0-9][a-z0-9-]*$"
};

// A value that a PATCH may set, clear (JSON null) or leave alone (absent).
struct Patch {
    bool present = false;
    std::optional<std::string> value;  // nullopt = clear
};

// Reads the fields of one JSON object; every field read becomes "known", and
// finish() reports the unknown ones. Problems are collected, not thrown, so
// one answer names them all. For optional fields JSON null means absent.
class ObjectReader {
  public:
    ObjectReader(const json_t *obj, std::string location, Problems &problems);

    // The raw member (nullptr when absent); marks it known.
    const json_t *get(const char *name);

    std::optional<std::string> string(const char *name, bool required, const StringRule &rule);
    std::optional<std::string> one_of(const char *name, bool required,
                                      std::span<const std::string_view> values);
    std::optional<long long> integer(const char *name, bool required, long long min, long long max);
    std::optional<bool> boolean(const char *name, bool required);
    // An object member (borrowed), nullptr when absent/null or invalid.
    const json_t *object(const char *name, bool required);
    // PATCH semantics: absent / null (clear) / a string obeying rule.
    Patch patch_string(const char *name, const StringRule &rule);

    // Adds "extra fields not permitted" for every member never read.
    void finish();

    [[nodiscard]] std::string path(std::string_view name) const;
    [[nodiscard]] Problems &problems() noexcept { return problems_; }

  private:
    // JSON_TRUE stands for either boolean.
    const json_t *present(const char *name, bool required, json_type type);
    bool check_string(std::string_view name, std::string_view s, const StringRule &rule);

    const json_t *obj_;
    std::string location_;
    Problems &problems_;
    std::vector<std::string> known_;
};

namespace detail {
struct BodyParts {
    Json parsed;
    Problems found;
};
}  // namespace detail

// A request body under validation: parse_body_object(), then an ObjectReader
// over "body" collecting into its own Problems. done() reports the unread
// fields and throws one VALIDATION_ERROR naming every problem found.
class BodyReader : private detail::BodyParts, public ObjectReader {
  public:
    BodyReader(std::string_view body, bool required)
        : detail::BodyParts{parse_body_object(body, required), {}},
          ObjectReader(parsed.get(), "body", found) {}

    void done() {
        finish();
        found.raise_if_any();
    }
};

// Reason text for a value of the wrong JSON type, e.g. "must be a string".
[[nodiscard]] const char *type_reason(json_type expected);

// "must be one of: a, b, c"
[[nodiscard]] std::string one_of_reason(std::span<const std::string_view> values);

// Domain rules (docs/api.md, "Endpoint notes") that are shared by handlers.
void validate_declared_params(const json_t *params, const std::string &location,
                              Problems &problems);
void validate_config_diff(const json_t *diff, const std::string &location, Problems &problems);

// Enumerations of the data model; the schema's CHECKs hold the same lists (common/schema.cpp).
inline constexpr std::string_view kEngineTypes[] = {"elasticsearch", "opensearch"};
// Clusters (and the template list filter) also know solr (docs/api.md).
inline constexpr std::string_view kSearchEngines[] = {"elasticsearch", "opensearch", "solr"};
inline constexpr std::string_view kEnvironments[] = {"prod", "staging", "dev"};
inline constexpr std::string_view kAuthKinds[] = {
    "es_apikey", "es_basic", "opensearch_basic", "opensearch_sigv4", "solr_apikey", "solr_basic"};
inline constexpr std::string_view kStudyStatuses[] = {"queued", "running", "completed", "cancelled",
                                                      "failed"};
inline constexpr std::string_view kProposalStatuses[] = {"pending", "pr_opened", "pr_merged",
                                                         "rejected", "superseded"};
inline constexpr std::string_view kParamTypes[] = {"float", "int", "bool", "string", "categorical"};

// Longest id accepted, in code points (a longer path id is a 404 without a query).
inline constexpr size_t kMaxIdChars = 128;

// An id given as text (path segment, query filter, body reference): 1..128
// code points of valid UTF-8 without NUL, so that it is safe as a text param.
[[nodiscard]] bool valid_id_text(std::string_view s) noexcept;

// A request Content-Type the API reads as JSON: "application/json" (any
// case, optional whitespace) with at most a charset=utf-8 parameter
// (docs/api.md, "JSON in and out").
[[nodiscard]] bool json_media_type(std::string_view s) noexcept;

// An {id} given in a body: a reference checked by the database, not parsed here.
inline constexpr StringRule kIdRule{kMaxIdChars, 1, valid_id_text,
                                    "must be at most 128 characters"};

}  // namespace relyloop::core
