#pragma once

// digests.suggested_followups as stored (a JSONB array written by RelyLoop or
// by this project: FollowupItem objects, legacy strings, or anything else)
// → the list of FollowupItem objects the API serves and the PR body prints.
// The rules are in docs/upstream-schema.md ("Follow-ups"); nothing here is
// ever an error: invalid items are downgraded to text or dropped.

#include <string>
#include <string_view>
#include <vector>

#include "common/raii.hpp"

namespace relyloop::followups {

// Something worth a log line: `event` is digest_followups_top_level_malformed,
// digest_followup_validation_downgraded or digest_followup_dropped.
struct Event {
    const char *event;
    std::string detail;
};

// `stored` is the column's JSON text; `is_null` when the column is NULL.
// Returns a JSON array of normalised FollowupItems (never null).
[[nodiscard]] Json parse(std::string_view stored, bool is_null, std::vector<Event> *events);

// The same as compact JSON text.
[[nodiscard]] std::string parse_to_json(std::string_view stored, bool is_null,
                                        std::vector<Event> *events);

// One PR-body line for a parsed item, without the leading "- ":
// text → the rationale; narrow/widen → "**narrow:** <rationale> (<params>)";
// swap_template → "**swap_template:** <rationale> (template `<id>`; <params>)".
[[nodiscard]] std::string pr_line(const json_t *item);

}  // namespace relyloop::followups
