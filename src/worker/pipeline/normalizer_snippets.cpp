#include "pipeline/normalizer_snippets.hpp"

#include <string_view>
#include <vector>

namespace relyloop::worker {

namespace {

// ASCII punctuation (Python's string.punctuation) without the apostrophe,
// which contraction expansion needs.
constexpr std::string_view kPunctuation = R"X(!"#$%&()*+,-./:;<=>?@[\]^_`{|}~)X";

// RelyLoop's 30 English contractions, in its order (lowercase keys, ASCII
// apostrophe).
constexpr std::pair<std::string_view, std::string_view> kContractions[] = {
    {"ain't", "is not"},         {"aren't", "are not"},     {"can't", "cannot"},
    {"couldn't", "could not"},   {"didn't", "did not"},     {"doesn't", "does not"},
    {"don't", "do not"},         {"hadn't", "had not"},     {"hasn't", "has not"},
    {"haven't", "have not"},     {"he's", "he is"},         {"i'd", "i would"},
    {"i'll", "i will"},          {"i'm", "i am"},           {"i've", "i have"},
    {"isn't", "is not"},         {"it's", "it is"},         {"let's", "let us"},
    {"shouldn't", "should not"}, {"that's", "that is"},     {"they're", "they are"},
    {"they've", "they have"},    {"wasn't", "was not"},     {"we're", "we are"},
    {"we've", "we have"},        {"weren't", "were not"},   {"what's", "what is"},
    {"won't", "will not"},       {"wouldn't", "would not"}, {"you're", "you are"},
};

// The order the steps run in, whatever order the choice names them.
constexpr unsigned kOrder[] = {kStepLowercase,
                               kStepStripPunctuation,
                               kStepExpandContractionsEn,
                               kStepExpandContractionsCustom,
                               kStepCollapseWhitespace,
                               kStepTrim};

// Python's repr() of kPunctuation (no single quote inside, so single-quoted;
// only the backslash needs escaping).
std::string python_repr_punctuation() {
    std::string out = "'";
    for (char c : kPunctuation) {
        if (c == '\\') out += '\\';
        out += c;
    }
    return out + "'";
}

void line(std::string &out, std::string_view text) {
    out.append(text);
    out += '\n';
}

}  // namespace

std::optional<unsigned> normalizer_steps(const json_t *choice) {
    if (!json_is_string(choice)) {
        return std::nullopt;
    }
    std::string_view s(json_string_value(choice), json_string_length(choice));
    if (s == "none") {
        return 0u;
    }
    unsigned steps = 0;
    size_t start = 0;
    while (true) {
        size_t plus = s.find('+', start);
        std::string_view tok = s.substr(start, plus == s.npos ? s.npos : plus - start);
        if (tok == "lowercase") {
            steps |= kStepLowercase;
        } else if (tok == "trim") {
            steps |= kStepTrim;
        } else if (tok == "collapse_whitespace") {
            steps |= kStepCollapseWhitespace;
        } else if (tok == "strip_punctuation") {
            steps |= kStepStripPunctuation;
        } else if (tok == "expand_contractions") {
            steps |= kStepExpandContractionsEn;
        } else if (tok == "expand_contractions_custom") {
            steps |= kStepExpandContractionsCustom;
        } else {
            return std::nullopt;
        }
        if (plus == s.npos) break;
        start = plus + 1;
    }
    return steps;
}

std::string python_normalizer(unsigned steps) {
    const bool punct = (steps & kStepStripPunctuation) != 0;
    const bool contr = (steps & kStepExpandContractionsEn) != 0;
    const bool collapse = (steps & kStepCollapseWhitespace) != 0;
    std::vector<std::string> head;
    if (punct || contr || collapse) {
        head.emplace_back("import re");
        head.emplace_back("");
    }
    if (punct) {
        head.push_back("_PUNCTUATION = " + python_repr_punctuation());
        head.emplace_back(
            R"X(_PUNCTUATION_PATTERN = re.compile("[" + re.escape(_PUNCTUATION) + "]"))X");
    }
    if (contr) {
        head.emplace_back("_CONTRACTIONS = {");
        for (const auto &[k, v] : kContractions) {
            head.push_back("    \"" + std::string(k) + "\": \"" + std::string(v) + "\",");
        }
        head.emplace_back("}");
        head.emplace_back("_CONTRACTION_PATTERN = re.compile(");
        head.emplace_back(
            R"X(    r"\b(" + "|".join(map(re.escape, sorted(_CONTRACTIONS, key=len, reverse=True))) + r")\b")X");
        head.emplace_back(")");
    }
    if (!head.empty() && !head.back().empty()) {
        head.emplace_back("");
        head.emplace_back("");
    }
    std::string out;
    for (const std::string &h : head) line(out, h);
    line(out, "def normalize_query(query_text: str) -> str:");
    line(out, "    q = query_text");
    for (unsigned step : kOrder) {
        if ((steps & step) == 0) continue;
        switch (step) {
            case kStepLowercase:
                line(out, "    q = q.lower()");
                break;
            case kStepStripPunctuation:
                line(out, R"X(    q = _PUNCTUATION_PATTERN.sub("", q))X");
                break;
            case kStepExpandContractionsEn:
                line(out, R"X(    q = q.replace("\u2019", "'"))X");
                line(out,
                     "    q = _CONTRACTION_PATTERN.sub(lambda m: _CONTRACTIONS[m.group(1)], q)");
                break;
            case kStepExpandContractionsCustom:
                line(out, "    # (custom contractions reserved \u2014 no-op)");
                break;
            case kStepCollapseWhitespace:
                line(out, R"X(    q = re.sub(r"\s+", " ", q))X");
                break;
            case kStepTrim:
                line(out, "    q = q.strip()");
                break;
            default:
                break;
        }
    }
    line(out, "    return q");
    return out;
}

std::string javascript_normalizer(unsigned steps) {
    std::string out;
    line(out, "function normalizeQuery(queryText) {");
    line(out, "  let q = queryText;");
    if ((steps & kStepStripPunctuation) != 0) {
        std::string re = "  const PUNCTUATION_REGEX = /[";
        for (char c : kPunctuation) {
            re += '\\';
            re += c;
        }
        line(out, re + "]/g;");
    }
    if ((steps & kStepExpandContractionsEn) != 0) {
        line(out, "  const CONTRACTIONS = {");
        for (const auto &[k, v] : kContractions) {
            line(out, "    \"" + std::string(k) + "\": \"" + std::string(v) + "\",");
        }
        line(out, "  };");
        line(out, "  const KEYS = Object.keys(CONTRACTIONS).sort((a, b) => b.length - a.length);");
        line(out, R"X(  const PATTERN = new RegExp("\\b(" + KEYS.join("|") + ")\\b", "g");)X");
    }
    for (unsigned step : kOrder) {
        if ((steps & step) == 0) continue;
        switch (step) {
            case kStepLowercase:
                line(out, "  q = q.toLowerCase();");
                break;
            case kStepStripPunctuation:
                line(out, R"X(  q = q.replace(PUNCTUATION_REGEX, "");)X");
                break;
            case kStepExpandContractionsEn:
                line(out, R"X(  q = q.replace(/\u2019/g, "'");)X");
                line(out, "  q = q.replace(PATTERN, (m) => CONTRACTIONS[m]);");
                break;
            case kStepExpandContractionsCustom:
                line(out, "  // (custom contractions reserved \u2014 no-op)");
                break;
            case kStepCollapseWhitespace:
                line(out, R"X(  q = q.replace(/\s+/g, " ");)X");
                break;
            case kStepTrim:
                line(out, "  q = q.trim();");
                break;
            default:
                break;
        }
    }
    line(out, "  return q;");
    line(out, "}");
    return out;
}

OperatorSection operator_section(const json_t *config_diff) {
    OperatorSection s;
    if (!json_is_object(config_diff)) {
        return s;
    }
    const json_t *entry = json_object_get(config_diff, "query_normalizer");
    if (entry == nullptr) {
        return s;
    }
    const json_t *to = json_is_object(entry) ? json_object_get(entry, "to") : nullptr;
    std::optional<unsigned> steps = normalizer_steps(to);
    if (!steps) {
        s.unknown = true;
    }
    if (!steps || *steps == 0) {
        s.text =
            "### Operator-side requirement\n\n"
            "**Chosen normalizer:** `none`. No production-side change is required \u2014 the loop "
            "confirmed the un-normalized query already wins.\n\n";
        return s;
    }
    s.text =
        "### Operator-side requirement\n\n"
        "RelyLoop measured the gain above against a query-time normalizer it applied before the "
        "query reached the engine. To reproduce the gain in production, your query-serving layer "
        "**MUST** apply the same normalizer to incoming queries before they hit the engine.\n\n"
        "**Chosen normalizer:** `" +
        std::string(json_string_value(to), json_string_length(to)) +
        "`\n\n"
        "Reference implementation \u2014 apply the SAME steps in your query layer:\n\n"
        "#### Python\n\n```python\n" +
        python_normalizer(*steps) +
        "```\n\n"
        "#### JavaScript / TypeScript\n\n```javascript\n" +
        javascript_normalizer(*steps) + "```\n\n";
    return s;
}

}  // namespace relyloop::worker
