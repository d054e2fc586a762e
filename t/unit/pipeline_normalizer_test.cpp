// The Operator-side requirement snippets (pipeline/normalizer_snippets.*):
// the fixed vectors, and for every one of the 64 step subsets the generated
// Python and JavaScript are run (python3 and node, installed by
// `./build.sh test`) on sample queries and must agree.

#include <gtest/gtest.h>
#include <jansson.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "common/raii.hpp"
#include "pipeline/normalizer_snippets.hpp"

using namespace relyloop;
using namespace relyloop::worker;

namespace {

Json str(const char *s) { return Json(json_string(s)); }

std::string slurp(const std::filesystem::path &p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void spit(const std::filesystem::path &p, const std::string &text) {
    std::ofstream out(p, std::ios::binary);
    out << text;
}

// Queries where Python's and JavaScript's string semantics coincide (ASCII
// word boundaries, common whitespace), plus the curly apostrophe.
const char *kSamples = R"JSON([
  "  Hello   World  ", "Don't STOP", "it\u2019s fine", "what's up? (really!)",
  "tab\tand\nnewline", "C++ & C#", "whatsoever i'm here", "ISN'T it", "x@y.com [a]",
  "", "   ", "caf\u00e9 cr\u00e8me", "we're-here", "ain't no", "Won\u2019T", "they've  they're",
  "\u00a0nbsp\u00a0", "a_b-c/d\\e", "i'd i'll i've", "\"quoted\" {braces} |pipe| ~tilde~",
  "shouldn't've", "LET'S GO!!!", "  mixed\u2019S  Case  "
])JSON";

}  // namespace

TEST(NormalizerSnippets, SpecVectors) {
    EXPECT_EQ(python_normalizer(kStepLowercase | kStepTrim),
              "def normalize_query(query_text: str) -> str:\n"
              "    q = query_text\n"
              "    q = q.lower()\n"
              "    q = q.strip()\n"
              "    return q\n");
    EXPECT_EQ(javascript_normalizer(kStepLowercase | kStepTrim),
              "function normalizeQuery(queryText) {\n"
              "  let q = queryText;\n"
              "  q = q.toLowerCase();\n"
              "  q = q.trim();\n"
              "  return q;\n"
              "}\n");
    EXPECT_EQ(python_normalizer(kStepStripPunctuation),
              "import re\n"
              "\n"
              "_PUNCTUATION = '!\"#$%&()*+,-./:;<=>?@[\\\\]^_`{|}~'\n"
              "_PUNCTUATION_PATTERN = re.compile(\"[\" + re.escape(_PUNCTUATION) + \"]\")\n"
              "\n"
              "\n"
              "def normalize_query(query_text: str) -> str:\n"
              "    q = query_text\n"
              "    q = _PUNCTUATION_PATTERN.sub(\"\", q)\n"
              "    return q\n");
    EXPECT_EQ(
        javascript_normalizer(kStepStripPunctuation),
        "function normalizeQuery(queryText) {\n"
        "  let q = queryText;\n"
        "  const PUNCTUATION_REGEX = "
        "/[\\!\\\"\\#\\$\\%\\&\\(\\)\\*\\+\\,\\-\\.\\/\\:\\;\\<\\=\\>\\?\\@\\[\\\\\\]\\^\\_\\`"
        "\\{\\|\\}\\~]/g;\n"
        "  q = q.replace(PUNCTUATION_REGEX, \"\");\n"
        "  return q;\n"
        "}\n");
}

TEST(NormalizerSnippets, HeadAndStepOrder) {
    // Collapse alone: the head ends blank, so no extra blank lines.
    EXPECT_EQ(python_normalizer(kStepCollapseWhitespace),
              "import re\n\ndef normalize_query(query_text: str) -> str:\n"
              "    q = query_text\n    q = re.sub(r\"\\s+\", \" \", q)\n    return q\n");
    std::string py = python_normalizer(kAllNormalizerSteps);
    EXPECT_LT(py.find("q.lower()"), py.find("_PUNCTUATION_PATTERN.sub"));
    EXPECT_LT(py.find("_PUNCTUATION_PATTERN.sub"), py.find("q.replace(\"\\u2019\", \"'\")"));
    EXPECT_LT(py.find("_CONTRACTION_PATTERN.sub"),
              py.find("# (custom contractions reserved \u2014 no-op)"));
    EXPECT_LT(py.find("no-op)"), py.find("re.sub(r\"\\s+\""));
    EXPECT_LT(py.find("re.sub(r\"\\s+\""), py.find("q.strip()"));
    EXPECT_NE(py.find("    \"ain't\": \"is not\",\n"), std::string::npos);
    EXPECT_NE(py.find("    \"you're\": \"you are\",\n}\n_CONTRACTION_PATTERN = re.compile(\n"),
              std::string::npos);
    EXPECT_NE(py.find(")\n\n\ndef normalize_query"), std::string::npos);
    std::string js =
        javascript_normalizer(kStepExpandContractionsEn | kStepExpandContractionsCustom);
    EXPECT_TRUE(
        js.ends_with("  q = q.replace(/\\u2019/g, \"'\");\n"
                     "  q = q.replace(PATTERN, (m) => CONTRACTIONS[m]);\n"
                     "  // (custom contractions reserved \u2014 no-op)\n"
                     "  return q;\n}\n"));
    EXPECT_NE(js.find("    \"you're\": \"you are\",\n  };\n  const KEYS = "), std::string::npos);
}

TEST(NormalizerSnippets, ChoiceParsing) {
    EXPECT_EQ(normalizer_steps(str("none").get()), 0u);
    EXPECT_EQ(normalizer_steps(str("lowercase+trim").get()), kStepLowercase | kStepTrim);
    EXPECT_EQ(normalizer_steps(str("trim+lowercase+expand_contractions").get()),
              kStepLowercase | kStepTrim | kStepExpandContractionsEn);
    EXPECT_EQ(normalizer_steps(
                  str("expand_contractions_custom+collapse_whitespace+strip_punctuation").get()),
              kStepExpandContractionsCustom | kStepCollapseWhitespace | kStepStripPunctuation);
    EXPECT_FALSE(normalizer_steps(str("lowercase+shout").get()));
    EXPECT_FALSE(normalizer_steps(str("expand_contractions_en").get()));
    EXPECT_FALSE(normalizer_steps(str("").get()));
    EXPECT_FALSE(normalizer_steps(str("lowercase+").get()));
    Json n(json_integer(3));
    EXPECT_FALSE(normalizer_steps(n.get()));
    EXPECT_FALSE(normalizer_steps(nullptr));
}

TEST(NormalizerSnippets, Section) {
    json_error_t err;
    Json none(json_loads(R"({"query_normalizer":{"from":"lowercase","to":"none"}})", 0, &err));
    OperatorSection s = operator_section(none.get());
    EXPECT_FALSE(s.unknown);
    EXPECT_EQ(s.text,
              "### Operator-side requirement\n\n**Chosen normalizer:** `none`. No production-side "
              "change is required \u2014 the loop confirmed the un-normalized query already "
              "wins.\n\n");
    Json bad(json_loads(R"({"query_normalizer":{"to":"upper"}})", 0, &err));
    s = operator_section(bad.get());
    EXPECT_TRUE(s.unknown);
    EXPECT_EQ(s.text, operator_section(none.get()).text);
    Json absent(json_loads(R"({"boost":{"to":2}})", 0, &err));
    EXPECT_EQ(operator_section(absent.get()).text, "");
    Json lt(json_loads(R"({"query_normalizer":{"to":"lowercase+trim"}})", 0, &err));
    s = operator_section(lt.get());
    EXPECT_EQ(s.text,
              "### Operator-side requirement\n\n"
              "RelyLoop measured the gain above against a query-time normalizer it applied "
              "before the query reached the engine. To reproduce the gain in production, your "
              "query-serving layer **MUST** apply the same normalizer to incoming queries before "
              "they hit the engine.\n\n"
              "**Chosen normalizer:** `lowercase+trim`\n\n"
              "Reference implementation \u2014 apply the SAME steps in your query layer:\n\n"
              "#### Python\n\n```python\n" +
                  python_normalizer(kStepLowercase | kStepTrim) +
                  "```\n\n#### JavaScript / TypeScript\n\n```javascript\n" +
                  javascript_normalizer(kStepLowercase | kStepTrim) + "```\n\n");
}

// Every subset of the six steps: the Python and the JavaScript snippet give
// the same output for every sample query.
TEST(NormalizerSnippets, PythonAndJavaScriptAgreeOnEverySubset) {
    char tmpl[] = "/tmp/rl-normalizer-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    const std::filesystem::path dir(tmpl);
    spit(dir / "samples.json", kSamples);
    for (unsigned steps = 0; steps <= kAllNormalizerSteps; steps++) {
        spit(dir / ("s" + std::to_string(steps) + ".py"), python_normalizer(steps));
        spit(dir / ("s" + std::to_string(steps) + ".js"), javascript_normalizer(steps));
    }
    spit(dir / "run.py",
         "import json, sys\n"
         "d = sys.argv[1]\n"
         "samples = json.load(open(d + '/samples.json', encoding='utf-8'))\n"
         "out = []\n"
         "for s in range(64):\n"
         "    ns = {}\n"
         "    exec(open(d + '/s%d.py' % s, encoding='utf-8').read(), ns)\n"
         "    out.append([ns['normalize_query'](q) for q in samples])\n"
         "sys.stdout.write(json.dumps(out, ensure_ascii=True))\n");
    spit(dir / "run.js",
         "const fs = require('fs');\n"
         "const d = process.argv[2];\n"
         "const samples = JSON.parse(fs.readFileSync(d + '/samples.json', 'utf8'));\n"
         "const out = [];\n"
         "for (let s = 0; s < 64; s++) {\n"
         "  const f = new Function(fs.readFileSync(d + '/s' + s + '.js', 'utf8') + "
         "'\\nreturn normalizeQuery;')();\n"
         "  out.push(samples.map(f));\n"
         "}\n"
         "process.stdout.write(JSON.stringify(out));\n");
    const std::string d = dir.string();
    ASSERT_EQ(std::system(("python3 " + d + "/run.py " + d + " > " + d + "/py.json").c_str()), 0)
        << "python3 (installed by ./build.sh test) must be on PATH";
    ASSERT_EQ(std::system(("node " + d + "/run.js " + d + " > " + d + "/js.json").c_str()), 0)
        << "node (Debian's nodejs, installed by ./build.sh test) must be on PATH";
    json_error_t err;
    Json py(json_loads(slurp(dir / "py.json").c_str(), 0, &err));
    Json js(json_loads(slurp(dir / "js.json").c_str(), 0, &err));
    ASSERT_TRUE(json_is_array(py.get()));
    ASSERT_TRUE(json_is_array(js.get()));
    ASSERT_EQ(json_array_size(py.get()), 64u);
    for (size_t s = 0; s < 64; s++) {
        const json_t *a = json_array_get(py.get(), s);
        const json_t *b = json_array_get(js.get(), s);
        EXPECT_TRUE(json_equal(a, b))
            << "steps " << s << ": python " << json_dumps(a, JSON_ENCODE_ANY) << " javascript "
            << json_dumps(b, JSON_ENCODE_ANY);
    }
    // Spot checks of what the steps do.
    auto out = [&](unsigned steps, size_t sample) {
        return std::string(
            json_string_value(json_array_get(json_array_get(py.get(), steps), sample)));
    };
    EXPECT_EQ(out(kStepLowercase | kStepTrim, 0), "hello   world");
    EXPECT_EQ(out(kStepCollapseWhitespace | kStepTrim, 0), "Hello World");
    EXPECT_EQ(out(kStepLowercase | kStepExpandContractionsEn, 1), "do not stop");
    EXPECT_EQ(out(kStepExpandContractionsEn, 2), "it is fine");
    EXPECT_EQ(out(kStepStripPunctuation, 3), "what's up really");
    EXPECT_EQ(out(kStepLowercase | kStepExpandContractionsEn, 6), "whatsoever i am here");
    EXPECT_EQ(out(0, 0), "  Hello   World  ");
    std::filesystem::remove_all(dir);
}
