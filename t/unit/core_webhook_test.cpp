// The pure parts of POST /webhooks/github (api/webhook.hpp): repository
// normalisation, the signature header, HMAC-SHA256 against known vectors,
// the delivery id, and the event dispatch.

#include <gtest/gtest.h>

#include "api/webhook.hpp"
#include "common/raii.hpp"

namespace relyloop::core {
namespace {

TEST(WebhookRepository, Normalises) {
    EXPECT_EQ(webhook_repository("Acme/Search-Config"), "acme/search-config");
    EXPECT_EQ(webhook_repository("  acme/repo.git \n"), "acme/repo");
    EXPECT_EQ(webhook_repository("my.org/re_po.git.git"), "my.org/re_po.git");
    EXPECT_EQ(webhook_repository("a/b"), "a/b");
}

TEST(WebhookRepository, Refuses) {
    EXPECT_FALSE(webhook_repository(""));
    EXPECT_FALSE(webhook_repository("acme"));
    EXPECT_FALSE(webhook_repository("/repo"));
    EXPECT_FALSE(webhook_repository("acme/"));
    EXPECT_FALSE(webhook_repository("acme/a/b"));
    EXPECT_FALSE(webhook_repository("acme/re po"));
    EXPECT_FALSE(webhook_repository("ac%me/repo"));
}

TEST(WebhookSignature, Header) {
    std::string hex64(64, 'a');
    auto s = webhook_signature("sha256=" + hex64);
    ASSERT_TRUE(s);
    EXPECT_EQ((*s)[0], 0xaa);
    EXPECT_TRUE(webhook_signature("sha256=" + std::string(64, 'F')));
    EXPECT_FALSE(webhook_signature(""));
    EXPECT_FALSE(webhook_signature("sha256=" + std::string(63, 'a')));
    EXPECT_FALSE(webhook_signature("sha256=" + std::string(65, 'a')));
    EXPECT_FALSE(webhook_signature("sha256=" + std::string(62, 'a') + "zz"));
    EXPECT_FALSE(webhook_signature("SHA256=" + hex64));
    EXPECT_FALSE(webhook_signature("sha1=" + std::string(40, 'a')));
}

// RFC 4231 test case 2, and GitHub's documented example
// (secret "It's a Secret to Everybody", payload "Hello, World!").
TEST(WebhookSignature, KnownVectors) {
    auto rfc = webhook_signature(
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    ASSERT_TRUE(rfc);
    EXPECT_TRUE(webhook_signature_matches("Jefe", "what do ya want for nothing?", *rfc));
    EXPECT_FALSE(webhook_signature_matches("Jefe", "what do ya want for nothing!", *rfc));
    EXPECT_FALSE(webhook_signature_matches("jefe", "what do ya want for nothing?", *rfc));
    auto gh = webhook_signature(
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
    ASSERT_TRUE(gh);
    EXPECT_TRUE(webhook_signature_matches("It's a Secret to Everybody", "Hello, World!", *gh));
}

TEST(WebhookDelivery, Id) {
    EXPECT_EQ(webhook_delivery_id("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
              "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    EXPECT_EQ(webhook_delivery_id(std::string(64, 'a')), std::string(64, 'a'));
    EXPECT_EQ(webhook_delivery_id(std::string(65, 'a')), "");
    EXPECT_EQ(webhook_delivery_id("a b"), "");
    EXPECT_EQ(webhook_delivery_id("a_b"), "");
    EXPECT_EQ(webhook_delivery_id(""), "");
}

WebhookEvent event(std::string_view gh_event, const char *json) {
    json_error_t err;
    Json j(json_loads(json, 0, &err));
    return webhook_event(gh_event, j.get());
}

TEST(WebhookEvent, Dispatch) {
    constexpr const char *kUrl = R"("html_url":"https://github.com/o/r/pull/1")";
    EXPECT_EQ(event("ping", "{}").kind, "ping");
    EXPECT_EQ(event("issues", R"({"action":"closed"})").kind, "noop");
    auto merged =
        event("pull_request", (std::string(R"({"action":"closed","pull_request":{)") + kUrl +
                               R"(,"merged":true,"merged_at":"2026-01-12T10:00:00Z"}})")
                                  .c_str());
    EXPECT_EQ(merged.kind, "merged");
    EXPECT_EQ(merged.html_url, "https://github.com/o/r/pull/1");
    ASSERT_TRUE(merged.merged_at);
    auto no_at = event("pull_request", (std::string(R"({"action":"closed","pull_request":{)") +
                                        kUrl + R"(,"merged":true,"merged_at":null}})")
                                           .c_str());
    EXPECT_EQ(no_at.kind, "closed");
    EXPECT_FALSE(no_at.merged_at);
    auto truthy =
        event("pull_request", (std::string(R"({"action":"closed","pull_request":{)") + kUrl +
                               R"(,"merged":1,"merged_at":"2026-01-12T10:00:00Z"}})")
                                  .c_str());
    EXPECT_EQ(truthy.kind, "closed") << "merged must be exactly true";
    EXPECT_EQ(event("pull_request",
                    (std::string(R"({"action":"reopened","pull_request":{)") + kUrl + "}}").c_str())
                  .kind,
              "reopened");
    EXPECT_EQ(event("pull_request",
                    (std::string(R"({"action":"labeled","pull_request":{)") + kUrl + "}}").c_str())
                  .kind,
              "noop");
    EXPECT_EQ(event("pull_request", R"({"action":"closed","pull_request":{"html_url":""}})").kind,
              "noop");
    EXPECT_EQ(event("pull_request", R"({"action":"closed","pull_request":{"html_url":5}})").kind,
              "noop");
    auto upd =
        event("pull_request",
              R"({"action":"labeled","pull_request":{"updated_at":"2020-01-01T00:00:00Z"}})");
    ASSERT_TRUE(upd.updated_at);
    EXPECT_EQ(*upd.updated_at, "2020-01-01T00:00:00+00:00");
}

}  // namespace
}  // namespace relyloop::core
