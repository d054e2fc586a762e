#include <gtest/gtest.h>

#include <string>

#include "job_store.hpp"
#include "protocol.hpp"

using namespace relyloop::worker;

TEST(ParseRequest, EnqueueWithRequestId) {
    ParsedRequest r = parse_request(R"({"op":"enqueue","proposal_id":"p-1","request_id":"rq"})");
    ASSERT_TRUE(r.request) << r.error;
    EXPECT_EQ(r.request->op, RequestOp::kEnqueue);
    EXPECT_EQ(r.request->proposal_id, "p-1");
    EXPECT_EQ(r.request->request_id, "rq");
}

TEST(ParseRequest, PingAndUnknownMembersIgnored) {
    ParsedRequest r = parse_request(R"( {"op":"ping","extra":[1,2,{"x":null}]} )");
    ASSERT_TRUE(r.request) << r.error;
    EXPECT_EQ(r.request->op, RequestOp::kPing);
}

TEST(ParseRequest, RequestIdIsOptional) {
    ParsedRequest r = parse_request(R"({"op":"enqueue","proposal_id":"p","request_id":null})");
    ASSERT_TRUE(r.request);
    EXPECT_EQ(r.request->request_id, "");
    EXPECT_EQ(parse_request(R"({"op":"enqueue","proposal_id":"p","request_id":5})").error,
              "request_id must be a string");
}

TEST(ParseRequest, BadJsonIsAnError) {
    EXPECT_EQ(parse_request("garbage").error.rfind("invalid JSON: ", 0), 0u);
    EXPECT_EQ(parse_request("{\"op\":\"ping\"").error.rfind("invalid JSON: ", 0), 0u);
    EXPECT_EQ(parse_request("{\"op\":\"ping\"} trailing").error.rfind("invalid JSON: ", 0), 0u);
    EXPECT_EQ(parse_request(std::string("{\"op\":\"pi\0ng\"}", 14)).error.rfind("invalid JSON", 0),
              0u);
    EXPECT_EQ(parse_request(R"({"op":"ping","op":"enqueue"})").error.rfind("invalid JSON", 0), 0u);
    EXPECT_FALSE(parse_request("\xff\xfe").request);
}

TEST(ParseRequest, ShapeErrors) {
    EXPECT_EQ(parse_request("").error, "empty request");
    EXPECT_EQ(parse_request("   ").error, "empty request");
    EXPECT_EQ(parse_request("[1]").error, "request must be a JSON object");
    EXPECT_EQ(parse_request("\"ping\"").error, "request must be a JSON object");
    EXPECT_EQ(parse_request("{}").error, "missing op");
    EXPECT_EQ(parse_request(R"({"op":1})").error, "op must be a string");
    EXPECT_EQ(parse_request(R"({"op":"drop"})").error, "unknown op \"drop\"");
    EXPECT_EQ(parse_request(R"({"op":"enqueue"})").error, "missing proposal_id");
    EXPECT_EQ(parse_request(R"({"op":"enqueue","proposal_id":null})").error, "missing proposal_id");
    EXPECT_EQ(parse_request(R"({"op":"enqueue","proposal_id":7})").error,
              "proposal_id must be a string");
    EXPECT_EQ(parse_request(R"({"op":"enqueue","proposal_id":""})").error,
              "proposal_id must not be empty");
    std::string long_id(129, 'a');
    EXPECT_EQ(parse_request(R"({"op":"enqueue","proposal_id":")" + long_id + "\"}").error,
              "proposal_id is longer than 128 bytes");
}

TEST(ParseRequest, UnknownOpIsEchoedSafely) {
    std::string e = parse_request(R"({"op":"a\"b\nc"})").error;
    EXPECT_EQ(e, "unknown op \"a?b?c\"");
    std::string big(200, 'x');
    e = parse_request(R"({"op":")" + big + "\"}").error;
    EXPECT_LT(e.size(), 100u);
}

TEST(Replies, ExactShapes) {
    EXPECT_EQ(reply_enqueued("j1", false),
              "{\"ok\":true,\"job_id\":\"j1\",\"deduplicated\":false}\n");
    EXPECT_EQ(reply_enqueued("j1", true),
              "{\"ok\":true,\"job_id\":\"j1\",\"deduplicated\":true}\n");
    EXPECT_EQ(reply_ping("0.1.0", 3, 1),
              "{\"ok\":true,\"version\":\"0.1.0\",\"queued\":3,\"running\":1}\n");
    EXPECT_EQ(reply_error("proposal not found"),
              "{\"ok\":false,\"error\":\"proposal not found\"}\n");
    EXPECT_EQ(reply_error("quote \" and \\"), "{\"ok\":false,\"error\":\"quote \\\" and \\\\\"}\n");
}

TEST(LineFramer, SeveralLinesInOneRead) {
    LineFramer f;
    f.feed("a\nbb\r\nccc\n");
    std::string line;
    ASSERT_EQ(f.next(&line), LineFramer::Status::kLine);
    EXPECT_EQ(line, "a");
    ASSERT_EQ(f.next(&line), LineFramer::Status::kLine);
    EXPECT_EQ(line, "bb");
    ASSERT_EQ(f.next(&line), LineFramer::Status::kLine);
    EXPECT_EQ(line, "ccc");
    EXPECT_EQ(f.next(&line), LineFramer::Status::kNeedMore);
    EXPECT_EQ(f.buffered(), 0u);
}

TEST(LineFramer, PartialLinesAcrossReads) {
    LineFramer f;
    std::string line;
    f.feed("{\"op\":");
    EXPECT_FALSE(f.has_line());
    EXPECT_EQ(f.next(&line), LineFramer::Status::kNeedMore);
    f.feed("\"ping\"}");
    EXPECT_EQ(f.next(&line), LineFramer::Status::kNeedMore);
    f.feed("\n{\"op\"");
    EXPECT_TRUE(f.has_line());
    ASSERT_EQ(f.next(&line), LineFramer::Status::kLine);
    EXPECT_EQ(line, "{\"op\":\"ping\"}");
    EXPECT_EQ(f.next(&line), LineFramer::Status::kNeedMore);
    EXPECT_EQ(f.buffered(), 5u);
    f.feed(":1}\n");
    ASSERT_EQ(f.next(&line), LineFramer::Status::kLine);
    EXPECT_EQ(line, "{\"op\":1}");
}

TEST(LineFramer, EmptyLines) {
    LineFramer f;
    std::string line = "x";
    f.feed("\n\r\n");
    ASSERT_EQ(f.next(&line), LineFramer::Status::kLine);
    EXPECT_EQ(line, "");
    ASSERT_EQ(f.next(&line), LineFramer::Status::kLine);
    EXPECT_EQ(line, "");
}

TEST(LineFramer, LimitIs64KiB) {
    EXPECT_EQ(kMaxRequestLine, 65536u);
    LineFramer f;
    std::string line;
    f.feed(std::string(kMaxRequestLine, 'x') + "\n");
    ASSERT_EQ(f.next(&line), LineFramer::Status::kLine);
    EXPECT_EQ(line.size(), kMaxRequestLine);

    f.feed(std::string(kMaxRequestLine + 1, 'y') + "\nnext\n");
    EXPECT_EQ(f.next(&line), LineFramer::Status::kTooLong);
    // The oversized line is consumed; what follows is intact.
    ASSERT_EQ(f.next(&line), LineFramer::Status::kLine);
    EXPECT_EQ(line, "next");
}

TEST(LineFramer, UnterminatedOverLimitIsTooLongWithoutWaiting) {
    LineFramer f;
    std::string line;
    f.feed(std::string(kMaxRequestLine, 'z'));
    EXPECT_EQ(f.next(&line), LineFramer::Status::kNeedMore);
    EXPECT_FALSE(f.has_line());
    f.feed("z");
    EXPECT_TRUE(f.has_line());
    EXPECT_EQ(f.next(&line), LineFramer::Status::kTooLong);
}

TEST(LineFramer, SmallLimitForTests) {
    LineFramer f(4);
    std::string line;
    f.feed("1234\n12345\n");
    ASSERT_EQ(f.next(&line), LineFramer::Status::kLine);
    EXPECT_EQ(f.next(&line), LineFramer::Status::kTooLong);
}

TEST(LineFramer, CompactsWhileStreaming) {
    LineFramer f(16);
    std::string line;
    for (int i = 0; i < 10000; i++) {
        f.feed("0123456789\n");
        ASSERT_EQ(f.next(&line), LineFramer::Status::kLine);
        ASSERT_EQ(line, "0123456789");
    }
    EXPECT_EQ(f.buffered(), 0u);
}

TEST(FormatError, CodeMessageRedactedAndBounded) {
    EXPECT_EQ(jobs::format_error("PUSH_FAILED", "rejected"), "PUSH_FAILED: rejected");
    EXPECT_EQ(jobs::format_error("CLONE_FAILED", "https://x:ghp_" + std::string(36, 'a') + "@h/"),
              "CLONE_FAILED: https://x:[REDACTED-URL-PASSWORD]@h/");
    std::string big = jobs::format_error("INTERNAL_ERROR", std::string(5000, 'e'));
    EXPECT_EQ(big.size(), 2000u);
    // Cut on a character boundary: "é" is two bytes.
    std::string accents;
    for (int i = 0; i < 1500; i++) {
        accents += "\xc3\xa9";
    }
    std::string cut = jobs::format_error("X", accents);
    EXPECT_LE(cut.size(), 2000u);
    EXPECT_NE(static_cast<unsigned char>(cut.back()), 0xc3);
}
