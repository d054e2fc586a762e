#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "api/openapi.hpp"
#include "api/pagination.hpp"
#include "api/router.hpp"
#include "common/raii.hpp"
#include "relyloop/version.hpp"

using namespace relyloop;
using namespace relyloop::core;

namespace {

Json served() {
    json_error_t err;
    const std::string &body = openapi_body();
    Json doc(json_loadb(body.data(), body.size(), JSON_REJECT_DUPLICATES, &err));
    EXPECT_TRUE(doc) << err.text << " at line " << err.line << " column " << err.column;
    return doc;
}

// Resolves "#/a/b/c" inside doc.
const json_t *resolve(const json_t *doc, const std::string &ref) {
    if (!ref.starts_with("#/")) {
        return nullptr;
    }
    const json_t *cur = doc;
    size_t pos = 2;
    while (cur != nullptr && pos <= ref.size()) {
        size_t slash = ref.find('/', pos);
        std::string key =
            ref.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
        cur = json_object_get(cur, key.c_str());
        if (slash == std::string::npos) {
            break;
        }
        pos = slash + 1;
    }
    return cur;
}

std::string dump(const json_t *j) {
    CString s(json_dumps(j, 0));
    return s ? std::string(s.get()) : std::string();
}

void walk_refs(const json_t *doc, const json_t *node, int &count) {
    if (json_is_object(node)) {
        const char *key;
        json_t *value;
        json_object_foreach(const_cast<json_t *>(node), key, value) {
            if (std::string(key) == "$ref") {
                ASSERT_TRUE(json_is_string(value));
                EXPECT_NE(resolve(doc, json_string_value(value)), nullptr)
                    << "dangling $ref " << json_string_value(value);
                count++;
            } else {
                walk_refs(doc, value, count);
            }
        }
    } else if (json_is_array(node)) {
        for (size_t i = 0; i < json_array_size(node); i++) {
            walk_refs(doc, json_array_get(node, i), count);
        }
    }
}

}  // namespace

TEST(OpenApi, EmbeddedTextIsValidJson) {
    json_error_t err;
    Json doc(json_loads(openapi_template(), JSON_REJECT_DUPLICATES, &err));
    EXPECT_TRUE(doc) << err.text << " at line " << err.line << " column " << err.column;
}

TEST(OpenApi, ServedDocumentIsCompactWithTheVersion) {
    Json doc = served();
    ASSERT_TRUE(doc);
    EXPECT_STREQ(json_string_value(json_object_get(doc.get(), "openapi")), "3.0.3");
    const json_t *info = json_object_get(doc.get(), "info");
    EXPECT_STREQ(json_string_value(json_object_get(info, "version")), kVersion);
    EXPECT_EQ(openapi_body().find('\n'), std::string::npos);
    EXPECT_EQ(openapi_body().find("@VERSION@"), std::string::npos);
}

TEST(OpenApi, EveryRouteAndMethodIsDescribed) {
    Json doc = served();
    ASSERT_TRUE(doc);
    const json_t *paths = json_object_get(doc.get(), "paths");
    ASSERT_TRUE(json_is_object(paths));
    size_t described = 0;
    for (const RouteDef &r : routes()) {
        const json_t *item = json_object_get(paths, r.path);
        ASSERT_TRUE(json_is_object(item)) << r.path;
        described++;
        auto check = [&](Endpoint e, const char *method) {
            const json_t *op = json_object_get(item, method);
            if (e == Endpoint::kNone) {
                EXPECT_EQ(op, nullptr) << r.path << " " << method;
                return;
            }
            ASSERT_TRUE(json_is_object(op)) << r.path << " " << method;
            EXPECT_TRUE(json_is_string(json_object_get(op, "operationId"))) << r.path;
            EXPECT_TRUE(json_is_object(json_object_get(op, "responses"))) << r.path;
            if (std::string(r.path).find("{id}") != std::string::npos) {
                std::string params = dump(json_object_get(op, "parameters"));
                EXPECT_NE(params.find("#/components/parameters/Id"), std::string::npos)
                    << r.path << " " << method;
            }
        };
        check(r.get, "get");
        check(r.post, "post");
        check(r.patch, "patch");
        check(r.del, "delete");
    }
    EXPECT_EQ(json_object_size(paths), described) << "paths the router does not know";
}

TEST(OpenApi, ErrorEnvelopeAndRefsResolve) {
    Json doc = served();
    ASSERT_TRUE(doc);
    const json_t *env = resolve(doc.get(), "#/components/schemas/ErrorEnvelope");
    ASSERT_NE(env, nullptr);
    std::string text = dump(env);
    for (const char *field : {"error_code", "message", "retryable", "VALIDATION_ERROR",
                              "CLUSTER_HAS_NO_CONFIG_REPO", "QUEUE_UNAVAILABLE"}) {
        EXPECT_NE(text.find(field), std::string::npos) << field;
    }
    int refs = 0;
    walk_refs(doc.get(), doc.get(), refs);
    EXPECT_GT(refs, 100);
}

// The document states the page size rule the code applies (api/pagination.hpp).
TEST(OpenApi, LimitDefaultAndMaximumAreTheCodes) {
    Json doc = served();
    const json_t *schema = resolve(doc.get(), "#/components/parameters/Limit/schema");
    ASSERT_NE(schema, nullptr);
    EXPECT_EQ(json_integer_value(json_object_get(schema, "default")), kDefaultLimit);
    EXPECT_EQ(json_integer_value(json_object_get(schema, "maximum")), kMaxLimit);
    EXPECT_EQ(json_integer_value(json_object_get(schema, "minimum")), 1);
}
