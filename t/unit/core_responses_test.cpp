#include <gtest/gtest.h>

#include <string>

#include "api/responses.hpp"
#include "common/uuid.hpp"

using namespace relyloop;
using namespace relyloop::core;

namespace {

std::string header(const HeaderList &h, const char *name) {
    const rl_header_t *v = h.find(name);
    return v == nullptr ? "<absent>" : std::string(v->value.data, v->value.len);
}

}  // namespace

TEST(ErrorEnvelope, ExactShape) {
    EXPECT_EQ(
        error_body("X_CODE", "a \"quoted\" message", false),
        R"({"detail":{"error_code":"X_CODE","message":"a \"quoted\" message","retryable":false}})");
    Response r = error_response(ErrorCode::kDatabaseUnavailable, "Database unavailable");
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(
        r.body,
        R"({"detail":{"error_code":"DATABASE_UNAVAILABLE","message":"Database unavailable","retryable":true}})");
    EXPECT_EQ(r.error_code, "DATABASE_UNAVAILABLE");
}

TEST(ErrorEnvelope, StatusAndRetryableFollowTheCode) {
    EXPECT_EQ(error_response(ErrorCode::kAuthRefNotFound, "m").status, 400);
    EXPECT_NE(error_response(ErrorCode::kAuthRefNotFound, "m").body.find("\"retryable\":true"),
              std::string::npos);
    EXPECT_EQ(error_response(ErrorCode::kDigestNotReady, "m").status, 404);
    EXPECT_NE(error_response(ErrorCode::kDigestNotReady, "m").body.find("\"retryable\":true"),
              std::string::npos);
    EXPECT_EQ(error_response(ErrorCode::kClusterHasNoConfigRepo, "m").status, 422);
    EXPECT_EQ(error_response(ErrorCode::kMethodNotAllowed, "m").status, 405);
}

TEST(NginxErrors, MappedToEnvelopes) {
    Response r = http_error_response(413);
    EXPECT_EQ(r.status, 413);
    EXPECT_EQ(
        r.body,
        R"({"detail":{"error_code":"PAYLOAD_TOO_LARGE","message":"Request body too large","retryable":false}})");
    r = http_error_response(408);
    EXPECT_EQ(r.status, 408);
    EXPECT_EQ(r.error_code, "REQUEST_TIMEOUT");
    r = http_error_response(411);
    EXPECT_EQ(r.error_code, "LENGTH_REQUIRED");
    r = http_error_response(400);
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.error_code, "BAD_REQUEST");
    EXPECT_EQ(r.message, "Malformed request");
    r = http_error_response(414);
    EXPECT_EQ(r.status, 414);
    EXPECT_EQ(r.message, "Request URI too long");
    r = http_error_response(494);
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.error_code, "BAD_REQUEST");
    EXPECT_EQ(r.message, "Malformed request");
    r = http_error_response(497);
    EXPECT_EQ(r.status, 400);
    r = http_error_response(499);
    EXPECT_EQ(r.status, 400);
    r = http_error_response(415);
    EXPECT_EQ(r.status, 415);
    EXPECT_EQ(r.error_code, "BAD_REQUEST");
    r = http_error_response(500);
    EXPECT_EQ(r.status, 500);
    EXPECT_EQ(r.error_code, "INTERNAL_ERROR");
    r = http_error_response(0);
    EXPECT_EQ(r.status, 500);
}

TEST(RequestId, SafeValuesAreEchoed) {
    EXPECT_TRUE(safe_request_id("abc-123"));
    EXPECT_TRUE(safe_request_id("0196c0de-0000-7000-8000-000000000001"));
    EXPECT_TRUE(safe_request_id("svc:trace.span_1"));
    EXPECT_TRUE(safe_request_id(std::string(128, 'a')));
    EXPECT_EQ(pick_request_id("client-id-1"), "client-id-1");
}

TEST(RequestId, UnsafeValuesGetAFreshUuid) {
    for (const std::string &bad :
         {std::string(), std::string(129, 'a'), std::string("a b"), std::string("a\r\nX-Evil: 1"),
          std::string("a/b"), std::string("é"), std::string("a\"b"), std::string("a,b")}) {
        EXPECT_FALSE(safe_request_id(bad)) << bad;
        std::string id = pick_request_id(bad);
        EXPECT_TRUE(is_uuid(id)) << id;
        EXPECT_EQ(id[14], '7');
    }
}

TEST(Headers, PlainResponse) {
    Response r;
    r.status = 200;
    r.body = "{}";
    r.total_count = "7";
    // The list points into these: they must outlive it.
    std::string rid = "rid-1";
    CorsState cors;
    HeaderList h;
    h.build(r, rid, cors);
    EXPECT_EQ(header(h, "Content-Type"), "application/json");
    EXPECT_EQ(header(h, "X-Request-ID"), "rid-1");
    EXPECT_EQ(header(h, "X-Total-Count"), "7");
    EXPECT_EQ(header(h, "Allow"), "<absent>");
    EXPECT_EQ(header(h, "Access-Control-Allow-Origin"), "<absent>");
    EXPECT_EQ(header(h, "Vary"), "<absent>");
    EXPECT_EQ(h.size(), 3u);
}

TEST(Headers, NoContentTypeWithoutBody) {
    Response r;
    r.status = 204;
    r.allow = "GET, OPTIONS";
    std::string rid = "rid";
    CorsState cors;
    HeaderList h;
    h.build(r, rid, cors);
    EXPECT_EQ(header(h, "Content-Type"), "<absent>");
    EXPECT_EQ(header(h, "Allow"), "GET, OPTIONS");
}

TEST(Headers, CorsOnEveryResponseForAnAllowedOrigin) {
    Response r = error_response(ErrorCode::kResourceNotFound, "x");
    std::string rid = "rid";
    CorsState cors{true, "https://ui.example.com"};
    HeaderList h;
    h.build(r, rid, cors);
    EXPECT_EQ(header(h, "Access-Control-Allow-Origin"), "https://ui.example.com");
    EXPECT_EQ(header(h, "Access-Control-Expose-Headers"), "X-Total-Count, X-Request-ID");
    EXPECT_EQ(header(h, "Vary"), "Origin");
    EXPECT_EQ(header(h, "Access-Control-Allow-Methods"), "<absent>");
    EXPECT_EQ(header(h, "Access-Control-Max-Age"), "<absent>");
}

TEST(Headers, Preflight) {
    Response r;
    r.status = 204;
    r.preflight = true;
    std::string rid = "rid";
    CorsState cors{true, "http://localhost:5173"};
    HeaderList h;
    h.build(r, rid, cors);
    EXPECT_EQ(header(h, "Access-Control-Allow-Origin"), "http://localhost:5173");
    EXPECT_EQ(header(h, "Access-Control-Allow-Methods"), "GET, POST, PATCH, DELETE, OPTIONS");
    EXPECT_EQ(header(h, "Access-Control-Allow-Headers"), "Content-Type, Accept, X-Request-ID");
    EXPECT_EQ(header(h, "Access-Control-Max-Age"), "600");
    EXPECT_EQ(header(h, "Vary"), "Origin");
    EXPECT_EQ(header(h, "Content-Type"), "<absent>");
}
