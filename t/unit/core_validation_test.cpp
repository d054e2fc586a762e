#include <gtest/gtest.h>

#include <string>

#include "api/validation.hpp"
#include "common/error.hpp"
#include "common/validate.hpp"

using namespace relyloop;
using namespace relyloop::core;

namespace {

// The VALIDATION_ERROR message that f throws, or "" when it does not throw.
template <typename F>
std::string failure(F &&f) {
    try {
        f();
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), ErrorCode::kValidationError);
        return e.what();
    }
    return "";
}

Json obj(const char *text) {
    json_error_t err;
    Json j(json_loads(text, 0, &err));
    EXPECT_TRUE(j) << text << ": " << err.text;
    return j;
}

constexpr StringRule kNameRule{128, 1, valid_config_repo_name, "must match ^[a-z0-9][a-z0-9-]*$"};

// Runs one reader over body with a fixed field set and returns the message.
std::string read_config_repo_like(const char *body) {
    Json j = obj(body);
    Problems p;
    ObjectReader r(j.get(), "body", p);
    (void)r.string("name", true, kNameRule);
    (void)r.string("notes", false, StringRule{10, 1});
    (void)r.one_of("engine_type", true, kEngineTypes);
    (void)r.integer("version", false, 1, 2147483647);
    (void)r.boolean("flag", false);
    (void)r.object("config", false);
    r.finish();
    return p.empty() ? "" : p.message();
}

}  // namespace

TEST(ParseBody, EmptyBodyIsFieldRequiredForCreates) {
    EXPECT_EQ(failure([] { (void)parse_body_object("", true); }),
              "Request validation failed: body: field required");
    EXPECT_EQ(failure([] { (void)parse_body_object(" \r\n\t", true); }),
              "Request validation failed: body: field required");
    Json j = parse_body_object("", false);
    EXPECT_TRUE(json_is_object(j.get()));
    EXPECT_EQ(json_object_size(j.get()), 0u);
}

TEST(ParseBody, MalformedJsonNamesLineAndColumn) {
    EXPECT_EQ(failure([] { (void)parse_body_object("{\n  \"a\": 1,\n  \"b\" 2}", true); }),
              "Request validation failed: body: invalid JSON: ':' expected near '2' "
              "(line 3, column 7)");
    std::string m = failure([] { (void)parse_body_object("{\"a\":", true); });
    EXPECT_TRUE(m.starts_with("Request validation failed: body: invalid JSON: ")) << m;
    EXPECT_NE(m.find("(line 1, column"), std::string::npos) << m;
}

TEST(ParseBody, DuplicateKeysAndNulAreRejected) {
    std::string m = failure([] { (void)parse_body_object(R"({"a":1,"a":2})", true); });
    EXPECT_NE(m.find("duplicate object key"), std::string::npos) << m;
    m = failure([] { (void)parse_body_object(R"({"a":"x\u0000y"})", true); });
    EXPECT_NE(m.find("invalid JSON"), std::string::npos) << m;
    m = failure([] { (void)parse_body_object("{\"a\":\"\xff\"}", true); });
    EXPECT_NE(m.find("invalid JSON"), std::string::npos) << m;
}

TEST(ParseBody, TopLevelMustBeAnObject) {
    for (const char *b : {"[]", "[1]", "1", "\"x\"", "null", "true"}) {
        EXPECT_EQ(failure([&] { (void)parse_body_object(b, true); }),
                  "Request validation failed: body: must be an object")
            << b;
    }
}

TEST(ObjectReader, ValidBodyHasNoProblems) {
    EXPECT_EQ(read_config_repo_like(R"({"name":"shop-1","engine_type":"opensearch"})"), "");
    EXPECT_EQ(
        read_config_repo_like(
            R"({"name":"a","engine_type":"opensearch","notes":null,"version":null,"flag":true,"config":{}})"),
        "");
}

TEST(ObjectReader, MissingRequiredFields) {
    EXPECT_EQ(read_config_repo_like("{}"),
              "Request validation failed: body.name: field required; "
              "body.engine_type: field required");
}

TEST(ObjectReader, WrongTypes) {
    EXPECT_EQ(read_config_repo_like(
                  R"({"name":5,"engine_type":null,"notes":[],"version":"1","flag":1,"config":[]})"),
              "Request validation failed: body.name: must be a string; "
              "body.notes: must be a string; body.engine_type: must be a string; "
              "body.version: must be an integer; body.flag: must be a boolean; "
              "body.config: must be an object");
    EXPECT_EQ(read_config_repo_like(R"({"name":"a","engine_type":"opensearch","version":1.0})"),
              "Request validation failed: body.version: must be an integer");
}

TEST(ObjectReader, LengthsAreCountedInCharacters) {
    std::string ten_e;
    for (int i = 0; i < 10; i++) {
        ten_e += "é";
    }
    std::string ok = R"({"name":"a","engine_type":"opensearch","notes":")" + ten_e + "\"}";
    EXPECT_EQ(read_config_repo_like(ok.c_str()), "");
    std::string too_long = R"({"name":"a","engine_type":"opensearch","notes":")" + ten_e + "x\"}";
    EXPECT_EQ(read_config_repo_like(too_long.c_str()),
              "Request validation failed: body.notes: must be at most 10 characters");
    std::string long_name =
        R"({"engine_type":"opensearch","name":")" + std::string(129, 'a') + "\"}";
    EXPECT_EQ(read_config_repo_like(long_name.c_str()),
              "Request validation failed: body.name: must be at most 128 characters");
    EXPECT_EQ(read_config_repo_like(R"({"name":"","engine_type":"opensearch"})"),
              "Request validation failed: body.name: must not be empty");
}

TEST(ObjectReader, PatternsEnumsAndRanges) {
    EXPECT_EQ(read_config_repo_like(R"({"name":"Shop","engine_type":"solr","version":0})"),
              "Request validation failed: body.name: must match ^[a-z0-9][a-z0-9-]*$; "
              "body.engine_type: must be one of: elasticsearch, opensearch; "
              "body.version: must be greater than or equal to 1");
    EXPECT_EQ(
        read_config_repo_like(R"({"name":"a","engine_type":"opensearch","version":2147483648})"),
        "Request validation failed: body.version: must be less than or equal to 2147483647");
}

TEST(ObjectReader, ExtraFieldsAreReportedLastInBodyOrder) {
    EXPECT_EQ(read_config_repo_like(
                  R"({"zeta":1,"name":"a","provider":"github","engine_type":"opensearch"})"),
              "Request validation failed: body.zeta: extra fields not permitted; "
              "body.provider: extra fields not permitted");
}

TEST(ObjectReader, PatchDistinguishesAbsentNullAndValue) {
    Json j = obj(R"({"a":null,"b":"x","c":"","d":3})");
    Problems p;
    ObjectReader r(j.get(), "body", p);
    StringRule rule{10, 1};
    Patch a = r.patch_string("a", rule);
    Patch b = r.patch_string("b", rule);
    Patch c = r.patch_string("c", rule);
    Patch d = r.patch_string("d", rule);
    Patch e = r.patch_string("e", rule);
    EXPECT_TRUE(a.present);
    EXPECT_FALSE(a.value);
    EXPECT_TRUE(b.present);
    EXPECT_EQ(b.value, "x");
    EXPECT_FALSE(c.present);
    EXPECT_FALSE(d.present);
    EXPECT_FALSE(e.present);
    EXPECT_EQ(p.message(),
              "Request validation failed: body.c: must not be empty; body.d: must be a string");
}

TEST(Problems, RaiseThrowsOnlyWithProblems) {
    Problems p;
    EXPECT_NO_THROW(p.raise_if_any());
    p.add("query.limit", "must be an integer");
    p.add("query.cursor", "invalid cursor");
    EXPECT_EQ(failure([&] { p.raise_if_any(); }),
              "Request validation failed: query.limit: must be an integer; "
              "query.cursor: invalid cursor");
}

namespace {

std::string declared(const char *params) {
    Json j = obj(params);
    Problems p;
    validate_declared_params(j.get(), "body.declared_params", p);
    return p.empty() ? "" : p.message();
}

std::string diff(const char *d) {
    Json j = obj(d);
    Problems p;
    validate_config_diff(j.get(), "body.config_diff", p);
    return p.empty() ? "" : p.message();
}

}  // namespace

TEST(DeclaredParams, AcceptsTypeStringsAndHintObjects) {
    EXPECT_EQ(declared("{}"), "");
    EXPECT_EQ(declared(R"({"a":"float","b":"int","c":"bool","d":"string","e":"categorical"})"), "");
    EXPECT_EQ(declared(R"({"title.boost":{"type":"float","min":0.1,"max":10},
                           "op":{"type":"categorical","values":["AND","OR"]},
                           "n":{"type":"int","min":null}})"),
              "");
}

TEST(DeclaredParams, RejectsBadHints) {
    EXPECT_EQ(declared(R"({"a":"double"})"),
              "Request validation failed: body.declared_params.a: must be one of: float, int, "
              "bool, string, categorical");
    EXPECT_EQ(declared(R"({"a":5})"),
              "Request validation failed: body.declared_params.a: must be a type name or an "
              "object");
    EXPECT_EQ(declared(R"({"a":{"min":1}})"),
              "Request validation failed: body.declared_params.a.type: field required");
    EXPECT_EQ(declared(R"({"a":{"type":"float","min":"0","max":true,"step":1}})"),
              "Request validation failed: body.declared_params.a.min: must be a number; "
              "body.declared_params.a.max: must be a number; "
              "body.declared_params.a.step: extra fields not permitted");
    EXPECT_EQ(declared(R"({"a":{"type":"categorical"}})"),
              "Request validation failed: body.declared_params.a.values: field required");
    EXPECT_EQ(declared(R"({"a":{"type":"categorical","values":[]}})"),
              "Request validation failed: body.declared_params.a.values: must not be empty");
    EXPECT_EQ(declared(R"({"a":{"type":"float","values":{}}})"),
              "Request validation failed: body.declared_params.a.values: must be an array");
    EXPECT_EQ(declared(R"({"a":{"type":"float","min":2,"max":1}})"),
              "Request validation failed: body.declared_params.a: min must not be greater than "
              "max");
    EXPECT_EQ(declared(R"({"":"int"})"),
              "Request validation failed: body.declared_params: parameter names must not be "
              "empty");
}

TEST(ConfigDiff, RequiresToAndNothingElse) {
    EXPECT_EQ(diff(R"({"title.boost":{"from":1.0,"to":2.5},"op":{"to":"AND"},"x":{"to":null}})"),
              "");
    EXPECT_EQ(diff("{}"), "Request validation failed: body.config_diff: must not be empty");
    EXPECT_EQ(diff(R"({"a":{"from":1}})"),
              "Request validation failed: body.config_diff.a.to: field required");
    EXPECT_EQ(diff(R"({"a":2})"),
              "Request validation failed: body.config_diff.a: must be an object");
    EXPECT_EQ(diff(R"({"a":{"to":1,"by":2}})"),
              "Request validation failed: body.config_diff.a.by: extra fields not permitted");
    std::string long_key = "{\"" + std::string(257, 'k') + "\":{\"to\":1}}";
    EXPECT_EQ(diff(long_key.c_str()), "Request validation failed: body.config_diff." +
                                          std::string(257, 'k') +
                                          ": parameter name must be at most 256 characters");
}

TEST(IdText, AcceptsOpaqueIdsUpTo128Characters) {
    EXPECT_TRUE(valid_id_text("0196c0de-0000-7000-8000-000000000001"));
    EXPECT_TRUE(valid_id_text("any text / with ünïcødé"));
    EXPECT_TRUE(valid_id_text(std::string(128, 'x')));
    EXPECT_FALSE(valid_id_text(std::string(129, 'x')));
    EXPECT_FALSE(valid_id_text(""));
    EXPECT_FALSE(valid_id_text(std::string("a\0b", 3)));
    EXPECT_FALSE(valid_id_text("\xff"));
}
