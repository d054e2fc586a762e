#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/error.hpp"
#include "pipeline/json_text.hpp"
#include "pipeline/params_edit.hpp"

using namespace relyloop;
using namespace relyloop::worker;

namespace {

Json parse(const std::string &s) {
    std::string why;
    Json j = json_parse(s, &why);
    EXPECT_TRUE(j) << why << " in " << s;
    return j;
}

std::string edit(const std::string &file, const std::string &declared, const std::string &diff) {
    Json d = parse(declared);
    Json c = parse(diff);
    return apply_config_diff(file, d.get(), c.get()).text;
}

ErrorCode edit_error(const std::string &file, const std::string &declared,
                     const std::string &diff) {
    Json d = parse(declared);
    Json c = parse(diff);
    try {
        (void)apply_config_diff(file, d.get(), c.get());
    } catch (const Error &e) {
        return e.code();
    }
    ADD_FAILURE() << "no error";
    return ErrorCode::kInternalError;
}

const char kFloat[] = R"({"title.boost": "float", "tie_breaker": "float", "size": "int",
    "fuzzy": "bool", "operator": {"type": "categorical", "values": ["AND", "OR"]},
    "field_boosts.title": "float", "field_boosts.body": "float", "name": "string",
    "a.b.c": "float", "a.b.d": "int"})";

}  // namespace

TEST(JsonNumberText, ShortestRoundTrip) {
    EXPECT_EQ(json_number_text(2.5), "2.5");
    EXPECT_EQ(json_number_text(0.3), "0.3");
    EXPECT_EQ(json_number_text(1.0), "1.0");
    EXPECT_EQ(json_number_text(0.1 + 0.2), "0.30000000000000004");
    EXPECT_EQ(json_number_text(1e20), "1e+20");
    EXPECT_EQ(json_number_text(-0.5), "-0.5");
    EXPECT_EQ(json_number_text(123456789.0), "123456789.0");
    EXPECT_EQ(json_number_text(1e-7), "1e-07");
    EXPECT_EQ(json_number_text(0.487), "0.487");
    // integral reals stay positional below 1e16, as the API spells them
    EXPECT_EQ(json_number_text(10.0), "10.0");
    EXPECT_EQ(json_number_text(1500.0), "1500.0");
    EXPECT_EQ(json_number_text(1e16), "1e+16");
    for (double d : {0.1, 1.0 / 3, 2.0 / 3, 1e300, 5e-324, 12345.678901234567}) {
        EXPECT_EQ(std::strtod(json_number_text(d).c_str(), nullptr), d);
    }
}

TEST(JsonText, CompactWithShortReals) {
    Json j = parse(R"({"a": 2.5, "b": [1, true, null, "x\"y"], "c": {"d": 0.30}})");
    EXPECT_EQ(json_text(j.get()), R"({"a":2.5,"b":[1,true,null,"x\"y"],"c":{"d":0.3}})");
    EXPECT_EQ(json_text(nullptr), "null");
}

TEST(JsonSameValue, NumbersByValue) {
    Json a = parse("1"), b = parse("1.0"), c = parse("1.5");
    EXPECT_TRUE(json_same_value(a.get(), b.get()));
    EXPECT_FALSE(json_same_value(a.get(), c.get()));
    Json o1 = parse(R"({"x": 1, "y": [2.0]})"), o2 = parse(R"({"y": [2], "x": 1.0})");
    EXPECT_TRUE(json_same_value(o1.get(), o2.get()));
}

TEST(ParamsEdit, LiteralKeyOnlyChangedLineDiffers) {
    std::string in = "{\n  \"title.boost\": 1.0,\n  \"tie_breaker\": 0.3,\n  \"size\": 10\n}\n";
    EXPECT_EQ(edit(in, kFloat, R"({"title.boost": {"from": 1.0, "to": 2.5}})"),
              "{\n  \"title.boost\": 2.5,\n  \"tie_breaker\": 0.3,\n  \"size\": 10\n}\n");
}

TEST(ParamsEdit, NumberSpellingsAndKeyOrderPreserved) {
    std::string in = "{\"z\": 1.50, \"title.boost\": 1.0, \"a\": 1E2, \"size\": 10}";
    EXPECT_EQ(edit(in, R"({"title.boost":"float","size":"int","z":"float","a":"float"})",
                   R"({"size": {"to": 20}})"),
              "{\"z\": 1.50, \"title.boost\": 1.0, \"a\": 1E2, \"size\": 20}");
}

TEST(ParamsEdit, NoTrailingNewlineStaysAbsent) {
    std::string in = "{\n    \"size\": 10\n}";
    EXPECT_EQ(edit(in, kFloat, R"({"size": {"to": 11}})"), "{\n    \"size\": 11\n}");
}

TEST(ParamsEdit, DottedKeySetsNestedValue) {
    std::string in =
        "{\n  \"field_boosts\": {\n    \"title\": 1.0,\n    \"body\": 0.5\n  },\n  \"size\": "
        "10\n}\n";
    EXPECT_EQ(edit(in, kFloat, R"({"field_boosts.title": {"from": 1.0, "to": 3.0}})"),
              "{\n  \"field_boosts\": {\n    \"title\": 3.0,\n    \"body\": 0.5\n  },\n"
              "  \"size\": 10\n}\n");
}

TEST(ParamsEdit, LiteralTopLevelKeyWinsOverDotted) {
    std::string in = "{\n  \"field_boosts.title\": 1.0,\n  \"field_boosts\": {\"title\": 1.0}\n}\n";
    EXPECT_EQ(edit(in, kFloat, R"({"field_boosts.title": {"to": 2.0}})"),
              "{\n  \"field_boosts.title\": 2.0,\n  \"field_boosts\": {\"title\": 1.0}\n}\n");
}

TEST(ParamsEdit, NewTopLevelKeyUsesFileIndentation) {
    std::string in = "{\n  \"size\": 10\n}\n";
    EXPECT_EQ(edit(in, kFloat, R"({"fuzzy": {"to": true}})"),
              "{\n  \"size\": 10,\n  \"fuzzy\": true\n}\n");
}

TEST(ParamsEdit, NewNestedKeysCreateObjectsFourSpaces) {
    std::string in = "{\n    \"size\": 10\n}\n";
    EXPECT_EQ(edit(in, kFloat, R"({"a.b.c": {"to": 0.25}, "a.b.d": {"to": 3}})"),
              "{\n    \"size\": 10,\n    \"a\": {\n        \"b\": {\n"
              "            \"c\": 0.25,\n            \"d\": 3\n        }\n    }\n}\n");
}

TEST(ParamsEdit, NewKeyInsideExistingNestedObject) {
    std::string in = "{\n\t\"field_boosts\": {\n\t\t\"title\": 1.0\n\t}\n}\n";
    EXPECT_EQ(edit(in, kFloat, R"({"field_boosts.body": {"to": 0.7}})"),
              "{\n\t\"field_boosts\": {\n\t\t\"title\": 1.0,\n\t\t\"body\": 0.7\n\t}\n}\n");
}

TEST(ParamsEdit, TabIndentationDetected) {
    std::string in = "{\n\t\"size\": 10\n}\n";
    EXPECT_EQ(edit(in, kFloat, R"({"field_boosts.title": {"to": 2.0}})"),
              "{\n\t\"size\": 10,\n\t\"field_boosts\": {\n\t\t\"title\": 2.0\n\t}\n}\n");
}

TEST(ParamsEdit, CrlfPreserved) {
    std::string in = "{\r\n  \"size\": 10,\r\n  \"tie_breaker\": 0.3\r\n}\r\n";
    EXPECT_EQ(edit(in, kFloat, R"({"size": {"to": 12}, "fuzzy": {"to": false}})"),
              "{\r\n  \"size\": 12,\r\n  \"tie_breaker\": 0.3,\r\n  \"fuzzy\": false\r\n}\r\n");
}

TEST(ParamsEdit, EmptyObjects) {
    EXPECT_EQ(edit("{}\n", kFloat, R"({"size": {"to": 1}})"), "{\n  \"size\": 1\n}\n");
    EXPECT_EQ(edit("{}", kFloat, R"({"size": {"to": 1}})"), "{\"size\": 1}");
    EXPECT_EQ(edit("{\n    \"x\": 1,\n    \"field_boosts\": {}\n}\n", kFloat,
                   R"({"field_boosts.title": {"to": 1.5}})"),
              "{\n    \"x\": 1,\n    \"field_boosts\": {\n        \"title\": 1.5\n    }\n}\n");
}

TEST(ParamsEdit, CompactSingleLineStaysCompact) {
    EXPECT_EQ(edit("{\"size\":10}", kFloat, R"({"a.b.c": {"to": 1.0}})"),
              "{\"size\":10,\"a\":{\"b\":{\"c\":1.0}}}");
}

TEST(ParamsEdit, StringAndCategoricalValues) {
    std::string in = "{\n  \"operator\": \"OR\",\n  \"name\": \"x\"\n}\n";
    EXPECT_EQ(edit(in, kFloat, R"({"operator": {"from": "OR", "to": "AND"},
                                   "name": {"to": "a|b \"q\""}})"),
              "{\n  \"operator\": \"AND\",\n  \"name\": \"a|b \\\"q\\\"\"\n}\n");
}

TEST(ParamsEdit, WhitespaceAroundValuesKept) {
    std::string in = "{ \"size\" : 10 , \"tie_breaker\" :0.3 }";
    EXPECT_EQ(edit(in, kFloat, R"({"size": {"to": 7}, "tie_breaker": {"to": 0.5}})"),
              "{ \"size\" : 7 , \"tie_breaker\" :0.5 }");
}

TEST(ParamsEdit, ReplacesArrayAndObjectValues) {
    std::string in = "{\n  \"operator\": [1, 2],\n  \"x\": {\"y\": 1}\n}\n";
    EXPECT_EQ(edit(in, R"({"operator": "categorical", "x": "categorical"})",
                   R"({"operator": {"to": "AND"}, "x": {"to": 3}})"),
              "{\n  \"operator\": \"AND\",\n  \"x\": 3\n}\n");
}

TEST(ParamsEdit, EscapedKeysMatchUnescaped) {
    std::string in = "{\n  \"siz\\u0065\": 10\n}\n";
    EXPECT_EQ(edit(in, kFloat, R"({"size": {"to": 11}})"), "{\n  \"siz\\u0065\": 11\n}\n");
}

TEST(ParamsEdit, NoChangesWhenEqualIncludingIntVsReal) {
    std::string in = "{\"title.boost\": 2.5, \"tie_breaker\": 1.0}";
    EXPECT_EQ(edit_error(in, kFloat, R"({"title.boost": {"to": 2.5}, "tie_breaker": {"to": 1}})"),
              ErrorCode::kNoChanges);
}

TEST(ParamsEdit, DriftReportedNotBlocking) {
    Json d = parse(kFloat);
    Json c = parse(R"({"title.boost": {"from": 1.0, "to": 2.5}, "size": {"from": 5, "to": 6}})");
    ParamsEdit e = apply_config_diff("{\"title.boost\": 1.20, \"size\": 5}", d.get(), c.get());
    ASSERT_EQ(e.drifts.size(), 1u);
    EXPECT_EQ(e.drifts[0].param, "title.boost");
    EXPECT_EQ(e.drifts[0].expected, "1.0");
    EXPECT_EQ(e.drifts[0].actual, "1.2");
    EXPECT_EQ(e.text, "{\"title.boost\": 2.5, \"size\": 6}");
    EXPECT_EQ(e.changed.size(), 2u);
}

TEST(ParamsEdit, TypeChecksPerHint) {
    const std::string in = "{\"x\": 1}";
    auto err = [&](const char *decl, const char *diff) { return edit_error(in, decl, diff); };
    EXPECT_EQ(err(R"({"p": "float"})", R"({"p": {"to": "1"}})"), ErrorCode::kParamNotInTemplate);
    EXPECT_EQ(err(R"({"p": "int"})", R"({"p": {"to": 1.5}})"), ErrorCode::kParamNotInTemplate);
    EXPECT_EQ(err(R"({"p": "int"})", R"({"p": {"to": 2.0}})"), ErrorCode::kParamNotInTemplate);
    EXPECT_EQ(err(R"({"p": "bool"})", R"({"p": {"to": 1}})"), ErrorCode::kParamNotInTemplate);
    EXPECT_EQ(err(R"({"p": "string"})", R"({"p": {"to": 1}})"), ErrorCode::kParamNotInTemplate);
    EXPECT_EQ(err(R"({"p": {"type": "categorical", "values": ["a"]}})", R"({"p": {"to": "b"}})"),
              ErrorCode::kParamNotInTemplate);
    EXPECT_EQ(err(R"({"p": {"type": "float", "min": 0, "max": 1}})", R"({"p": {"to": 1.5}})"),
              ErrorCode::kParamNotInTemplate);
    EXPECT_EQ(err(R"({"p": {"type": "int", "min": 2}})", R"({"p": {"to": 1}})"),
              ErrorCode::kParamNotInTemplate);
    EXPECT_EQ(err(R"({"p": "number"})", R"({"p": {"to": true}})"), ErrorCode::kParamNotInTemplate);
    EXPECT_EQ(err(R"({"p": " Integer "})", R"({"p": {"to": 1e3}})"),
              ErrorCode::kParamNotInTemplate);
    EXPECT_EQ(err(R"({"p": {"type": "BOOLEAN"}})", R"({"p": {"to": "yes"}})"),
              ErrorCode::kParamNotInTemplate);
    EXPECT_EQ(err(R"({"q": "float"})", R"({"p": {"to": 1}})"), ErrorCode::kParamNotInTemplate);
    EXPECT_EQ(err(R"({"p": "float"})", R"({"p": {"from": 1}})"), ErrorCode::kParamNotInTemplate);
    EXPECT_EQ(err(R"({"p": "float"})", R"({"p": 1})"), ErrorCode::kParamNotInTemplate);
    EXPECT_EQ(err(R"({"p": "float"})", R"({"p": {"to": null}})"), ErrorCode::kParamNotInTemplate);

    EXPECT_EQ(edit(in, R"({"p": {"type": "float", "min": 0, "max": 1}})", R"({"p": {"to": 1}})"),
              "{\"x\": 1, \"p\": 1}");
    EXPECT_EQ(
        edit(in, R"({"p": {"type": "categorical", "values": [1, 2.5]}})", R"({"p": {"to": 2.5}})"),
        "{\"x\": 1, \"p\": 2.5}");
    EXPECT_EQ(edit(in, R"({"p": "categorical"})", R"({"p": {"to": "AND"}})"),
              "{\"x\": 1, \"p\": \"AND\"}");
    EXPECT_EQ(edit(in, R"({"p": "int"})", R"({"p": {"to": -3}})"), "{\"x\": 1, \"p\": -3}");
    // Upstream RelyLoop's aliases and free-form type names (docs/upstream-schema.md).
    EXPECT_EQ(edit(in, R"({"p": "number"})", R"({"p": {"to": 2}})"), "{\"x\": 1, \"p\": 2}");
    EXPECT_EQ(edit(in, R"({"p": {"type": "Double"}})", R"({"p": {"to": 0.5}})"),
              "{\"x\": 1, \"p\": 0.5}");
    EXPECT_EQ(edit(in, R"({"p": "integer"})", R"({"p": {"to": 4}})"), "{\"x\": 1, \"p\": 4}");
    EXPECT_EQ(edit(in, R"({"p": "boolean"})", R"({"p": {"to": false}})"),
              "{\"x\": 1, \"p\": false}");
    EXPECT_EQ(edit(in, R"({"p": "weird"})", R"({"p": {"to": [1]}})"), "{\"x\": 1, \"p\": [1]}");
    EXPECT_EQ(edit(in, R"({"p": {"type": 7}})", R"({"p": {"to": "s"}})"),
              "{\"x\": 1, \"p\": \"s\"}");
}

TEST(ParamsEdit, FileShapeErrors) {
    EXPECT_EQ(edit_error("[1, 2]", kFloat, R"({"size": {"to": 1}})"),
              ErrorCode::kParamsFileNotFound);
    EXPECT_EQ(edit_error("size = 10", kFloat, R"({"size": {"to": 1}})"),
              ErrorCode::kParamsFileNotFound);
    EXPECT_EQ(edit_error("{\"size\": 1, \"size\": 2}", kFloat, R"({"size": {"to": 3}})"),
              ErrorCode::kParamsFileNotFound);
    // A 0-byte file is {} (upstream RelyLoop reads it so).
    EXPECT_EQ(edit("", kFloat, R"({"size": {"to": 3}})"), "{\"size\": 3}");
    EXPECT_EQ(edit_error("{\"a\": 5}", kFloat, R"({"a.b.c": {"to": 3.0}})"),
              ErrorCode::kParamNotInTemplate);
}

TEST(ParamsEdit, OverlappingParamsRejected) {
    EXPECT_EQ(edit_error("{}", R"({"a": "categorical", "a.b": "float"})",
                         R"({"a": {"to": 1}, "a.b": {"to": 2.0}})"),
              ErrorCode::kParamNotInTemplate);
}

TEST(ParamsEdit, DeepFileUntouchedBytesIdentical) {
    std::string in =
        "{\n  \"query\": {\n    \"bool\": {\"should\": [1, {\"x\": [2, 3]}], \"boost\": 1.0}\n  "
        "},\n  \"title.boost\": 1.0,\n  \"tail\": \"\\u00e9 \\\" }\"\n}";
    std::string out = edit(in, kFloat, R"({"title.boost": {"to": 2.5}})");
    std::string expect = in;
    expect.replace(expect.find("\"title.boost\": 1.0") + 15, 3, "2.5");
    EXPECT_EQ(out, expect);
}

class ParamsFileTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/rl-params-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        base_ = tmpl;
        clone_ = base_ + "/clone";
        std::filesystem::create_directories(clone_ + "/clusters/prod");
        std::filesystem::create_directories(base_ + "/outside");
        write(clone_ + "/clusters/prod/bm25.params.json", "{\"size\": 10}\n");
        write(base_ + "/outside/bm25.params.json", "{\"size\": 10}\n");
    }
    void TearDown() override { std::filesystem::remove_all(base_); }
    static void write(const std::string &p, const std::string &s) { std::ofstream(p) << s; }
    ErrorCode resolve_error(const std::string &cp, const std::string &name = "bm25") {
        try {
            (void)resolve_params_file(clone_, cp, name);
        } catch (const Error &e) {
            return e.code();
        }
        ADD_FAILURE() << "no error for " << cp;
        return ErrorCode::kInternalError;
    }
    std::string base_, clone_;
};

TEST_F(ParamsFileTest, ResolvesNestedPathAndRoundTrips) {
    ParamsFilePath p = resolve_params_file(clone_, "clusters/prod", "bm25");
    EXPECT_EQ(p.relative, "clusters/prod/bm25.params.json");
    EXPECT_EQ(p.display, "clusters/prod/bm25.params.json");
    EXPECT_EQ(p.absolute,
              std::filesystem::canonical(clone_).string() + "/clusters/prod/bm25.params.json");
    EXPECT_EQ(resolve_params_file(clone_, "clusters/prod/", "bm25").relative,
              "clusters/prod/bm25.params.json");
}

TEST_F(ParamsFileTest, RejectsUnsafePaths) {
    EXPECT_EQ(resolve_error("../outside"), ErrorCode::kConfigPathInvalid);
    EXPECT_EQ(resolve_error("/etc"), ErrorCode::kConfigPathInvalid);
    EXPECT_EQ(resolve_error("a b"), ErrorCode::kConfigPathInvalid);
    EXPECT_EQ(resolve_error(".git"), ErrorCode::kConfigPathInvalid);
    EXPECT_EQ(resolve_error("clusters/prod", "../x"), ErrorCode::kConfigPathInvalid);
    EXPECT_EQ(resolve_error("clusters/prod", "-x"), ErrorCode::kConfigPathInvalid);
}

TEST_F(ParamsFileTest, DirectorySymlinkEscapingCloneIsInvalid) {
    ASSERT_EQ(symlink((base_ + "/outside").c_str(), (clone_ + "/escape").c_str()), 0);
    EXPECT_EQ(resolve_error("escape"), ErrorCode::kConfigPathInvalid);
}

TEST_F(ParamsFileTest, DirectorySymlinkInsideCloneResolvesToRealPath) {
    ASSERT_EQ(symlink("clusters/prod", (clone_ + "/alias").c_str()), 0);
    EXPECT_EQ(resolve_params_file(clone_, "alias", "bm25").relative,
              "clusters/prod/bm25.params.json");
}

TEST_F(ParamsFileTest, FileSymlinkIsInvalidEvenInsideClone) {
    ASSERT_EQ(symlink("prod/bm25.params.json", (clone_ + "/clusters/bm25.params.json").c_str()), 0);
    EXPECT_EQ(resolve_error("clusters"), ErrorCode::kConfigPathInvalid);
}

TEST_F(ParamsFileTest, MissingFileOrDirectoryIsNotFound) {
    EXPECT_EQ(resolve_error("clusters/staging"), ErrorCode::kParamsFileNotFound);
    EXPECT_EQ(resolve_error("clusters/prod", "other"), ErrorCode::kParamsFileNotFound);
    std::filesystem::create_directories(clone_ + "/clusters/prod/dir.params.json");
    EXPECT_EQ(resolve_error("clusters/prod", "dir"), ErrorCode::kParamsFileNotFound);
}
