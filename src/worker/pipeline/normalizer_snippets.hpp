#pragma once

// The PR body's "Operator-side requirement" section (docs/worker.md): when a
// proposal's config diff changes the reserved `query_normalizer` parameter,
// the operator must apply the same query-time normalizer in production. The
// section carries reference implementations in Python and JavaScript,
// generated from the set of steps; the text matches RelyLoop's own
// generators byte for byte.

#include <jansson.h>

#include <optional>
#include <string>

namespace relyloop::worker {

// Bit flags of the normalizer steps.
enum NormalizerStep : unsigned {
    kStepLowercase = 1u << 0,
    kStepTrim = 1u << 1,
    kStepCollapseWhitespace = 1u << 2,
    kStepStripPunctuation = 1u << 3,
    kStepExpandContractionsEn = 1u << 4,
    kStepExpandContractionsCustom = 1u << 5,
};
inline constexpr unsigned kAllNormalizerSteps = (1u << 6) - 1;

// The steps of a `query_normalizer` choice: "none" → 0; otherwise the
// '+'-separated tokens lowercase, trim, collapse_whitespace,
// strip_punctuation, expand_contractions, expand_contractions_custom.
// nullopt for a non-string value or an unknown token.
[[nodiscard]] std::optional<unsigned> normalizer_steps(const json_t *choice);

// `def normalize_query(query_text: str) -> str:` … ending with "\n".
[[nodiscard]] std::string python_normalizer(unsigned steps);
// `function normalizeQuery(queryText) {` … ending with "}\n".
[[nodiscard]] std::string javascript_normalizer(unsigned steps);

struct OperatorSection {
    std::string text;      // "" when the diff has no query_normalizer key
    bool unknown = false;  // the choice was not understood (event pr_body_unknown_normalizer)
};

// From a proposal's config_diff ({param: {"from"?, "to"}}).
[[nodiscard]] OperatorSection operator_section(const json_t *config_diff);

}  // namespace relyloop::worker
