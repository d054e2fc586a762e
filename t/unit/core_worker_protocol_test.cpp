// The worker socket protocol end to end without a socket: every request line
// the core emits (through its C API, as the shim sees it) goes through the
// worker's framer and parser, and every reply the worker's encoder produces
// goes through the core's parser and back into the core. Plus the line limit
// at its boundary, on both sides (docs/worker.md, "The socket protocol").

#include <string>
#include <vector>

#include "common/worker_protocol.hpp"
#include "core_request_harness.hpp"

using namespace rltest;
namespace wp = relyloop::worker_protocol;

namespace {

// What the worker does with bytes off the socket: frame, then parse.
wp::ParsedRequest worker_reads(const std::string &bytes) {
    wp::LineFramer framer;
    framer.feed(bytes);
    std::string line;
    EXPECT_EQ(framer.next(&line), wp::LineFramer::Status::kLine) << bytes;
    EXPECT_EQ(framer.buffered(), 0u) << "one request, one line: " << bytes;
    return wp::parse_request(line);
}

// A reply line as the shim hands it to the core: without its newline.
std::string strip_newline(std::string line) {
    EXPECT_FALSE(line.empty());
    EXPECT_EQ(line.back(), '\n');
    line.pop_back();
    return line;
}

Row preflight_ok() { return {"pending", "c1", "r1", "r1", "gh-main"}; }

}  // namespace

// ---- requests: the core's encoder, the worker's parser ---------------------------

TEST(WorkerProtocolRoundTrip, EnqueueFromOpenPr) {
    Core core;
    Call c(core, "POST", "/api/v1/proposals/p-1/open_pr",
           Options{.body = "{}", .request_id = "rid-7"});
    c.expect_query();
    c.rows({preflight_ok()});
    std::string line = c.expect_worker();
    // The bytes on the wire do not change.
    EXPECT_EQ(line, "{\"op\":\"enqueue\",\"proposal_id\":\"p-1\",\"request_id\":\"rid-7\"}\n");

    wp::ParsedRequest p = worker_reads(line);
    ASSERT_TRUE(p.request) << p.error;
    EXPECT_EQ(p.request->op, wp::Op::kEnqueue);
    EXPECT_EQ(p.request->proposal_id, "p-1");
    EXPECT_EQ(p.request->request_id, "rid-7");
}

TEST(WorkerProtocolRoundTrip, EnqueueWithGeneratedRequestId) {
    Core core;
    Call c(core, "POST", "/api/v1/proposals/p2/open_pr", body("{}"));
    c.expect_query();
    c.rows({preflight_ok()});
    wp::ParsedRequest p = worker_reads(c.expect_worker());
    ASSERT_TRUE(p.request) << p.error;
    EXPECT_EQ(p.request->proposal_id, "p2");
    EXPECT_FALSE(p.request->request_id.empty());  // the core made one up
}

TEST(WorkerProtocolRoundTrip, PingFromHealth) {
    Core core;
    Call c(core, "GET", "/api/v1/health");
    c.expect_query();
    c.rows({{"1"}});
    std::string line = c.expect_worker();
    EXPECT_EQ(line, "{\"op\":\"ping\"}\n");
    wp::ParsedRequest p = worker_reads(line);
    ASSERT_TRUE(p.request) << p.error;
    EXPECT_EQ(p.request->op, wp::Op::kPing);
}

TEST(WorkerProtocolRoundTrip, EveryOpThroughTheEncoder) {
    std::vector<wp::Request> all = {
        {wp::Op::kEnqueue, "p-\"quoted\"\\é", "rq \u2603"},
        {wp::Op::kEnqueue, "p", ""},
        {wp::Op::kPing, {}, {}},
        {wp::Op::kMetrics, {}, {}},
    };
    for (const wp::Request &req : all) {
        std::string line = wp::encode_request(req);
        wp::ParsedRequest p = worker_reads(line);
        ASSERT_TRUE(p.request) << line << ": " << p.error;
        EXPECT_EQ(p.request->op, req.op) << line;
        EXPECT_EQ(p.request->proposal_id, req.proposal_id) << line;
        EXPECT_EQ(p.request->request_id, req.request_id) << line;
    }
    EXPECT_EQ(wp::encode_request({wp::Op::kMetrics, {}, {}}), "{\"op\":\"metrics\"}\n");
    EXPECT_EQ(wp::encode_request({wp::Op::kEnqueue, "p", ""}),
              "{\"op\":\"enqueue\",\"proposal_id\":\"p\",\"request_id\":\"\"}\n");
}

// ---- replies: the worker's encoder, the core's parser ----------------------------

TEST(WorkerProtocolRoundTrip, EnqueueReplies) {
    for (bool dedup : {false, true}) {
        std::string line = strip_newline(wp::reply_enqueued("j-1", dedup));
        std::optional<wp::EnqueueReply> r = wp::parse_enqueue_reply(line);
        ASSERT_TRUE(r) << line;
        EXPECT_EQ(r->job_id, "j-1");
        EXPECT_EQ(r->deduplicated, dedup);

        Core core;
        Call c(core, "POST", "/api/v1/proposals/p1/open_pr", body("{}"));
        c.expect_query();
        c.rows({preflight_ok()});
        c.expect_worker();
        c.reply(line);
        EXPECT_EQ(c.expect_response().status, 202) << line;
    }
}

TEST(WorkerProtocolRoundTrip, PingReply) {
    std::string line = strip_newline(wp::reply_ping("1.2.3", 4, 2));
    std::optional<wp::PingReply> r = wp::parse_ping_reply(line);
    ASSERT_TRUE(r) << line;
    EXPECT_EQ(r->version, "1.2.3");
    EXPECT_EQ(r->queued, 4);
    EXPECT_EQ(r->running, 2);

    Core core;
    Call c(core, "GET", "/api/v1/health");
    c.expect_query();
    c.rows({{"1"}});
    c.expect_worker();
    c.reply(line);
    EXPECT_EQ(c.expect_response().status, 200);
}

TEST(WorkerProtocolRoundTrip, MetricsReply) {
    std::string text = "# TYPE a counter\na_total{x=\"y\"} 1\n";
    std::string line = strip_newline(wp::reply_metrics(text));
    std::optional<wp::MetricsReply> r = wp::parse_metrics_reply(line);
    ASSERT_TRUE(r) << line;
    EXPECT_EQ(r->text, text);
}

TEST(WorkerProtocolRoundTrip, ErrorRepliesAreRefusals) {
    // Every error text the worker sends, and each op's parser saying no.
    std::vector<std::string> errors = {"proposal not found", "database unavailable",
                                       "worker stopping", "internal error", "too many connections"};
    errors.push_back(wp::parse_request("{}").error);
    errors.push_back(wp::parse_request(R"({"op":"drop"})").error);
    for (const std::string &e : errors) {
        std::string line = strip_newline(wp::reply_error(e));
        EXPECT_EQ(wp::parse_error_reply(line), e) << line;
        EXPECT_FALSE(wp::parse_enqueue_reply(line)) << line;
        EXPECT_FALSE(wp::parse_ping_reply(line)) << line;
        EXPECT_FALSE(wp::parse_metrics_reply(line)) << line;
    }
    std::string too_long = strip_newline(wp::reply_line_too_long());
    EXPECT_EQ(too_long, "{\"ok\":false,\"error\":\"request line longer than 65536 bytes\"}");
    EXPECT_EQ(wp::parse_error_reply(too_long), "request line longer than 65536 bytes");

    // The core answers a refused enqueue 503 QUEUE_UNAVAILABLE, a refused ping "degraded".
    Core core;
    Call c(core, "POST", "/api/v1/proposals/p1/open_pr", body("{}"));
    c.expect_query();
    c.rows({preflight_ok()});
    c.expect_worker();
    c.reply(strip_newline(wp::reply_error("proposal not found")));
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.code(), "QUEUE_UNAVAILABLE");

    Call h(core, "GET", "/api/v1/health");
    h.expect_query();
    h.rows({{"1"}});
    h.expect_worker();
    h.reply(strip_newline(wp::reply_error("database unavailable")));
    EXPECT_EQ(h.expect_response().status, 503);
}

TEST(WorkerProtocolRoundTrip, RepliesTheCoreRefuses) {
    EXPECT_FALSE(wp::parse_enqueue_reply(R"({"ok":true})"));  // no job_id
    EXPECT_FALSE(wp::parse_enqueue_reply(R"({"ok":true,"job_id":7})"));
    EXPECT_FALSE(wp::parse_metrics_reply(R"({"ok":true})"));
    EXPECT_FALSE(wp::parse_ping_reply(R"({"ok":1})"));
    EXPECT_FALSE(wp::parse_ping_reply("[true]"));
    EXPECT_FALSE(wp::parse_ping_reply("not json"));
    EXPECT_FALSE(wp::parse_error_reply(R"({"ok":true,"error":"x"})"));
    // ping needs nothing but "ok": true.
    EXPECT_TRUE(wp::parse_ping_reply(R"({"ok":true})"));
}

// ---- the line limit ----------------------------------------------------------------

TEST(WorkerProtocolLimit, OneNumberOnBothSides) {
    EXPECT_EQ(rl_worker_line_max(), wp::kMaxLine);
    EXPECT_EQ(wp::kMaxLine, 65536u);
}

TEST(WorkerProtocolLimit, RequestOfExactlyTheMaxIsAcceptedOneMoreIsNot) {
    const std::string head = R"({"op":"ping","pad":")";
    const std::string tail = "\"}";
    std::string at_max = head + std::string(wp::kMaxLine - head.size() - tail.size(), 'x') + tail;
    ASSERT_EQ(at_max.size(), wp::kMaxLine);
    wp::ParsedRequest p = worker_reads(at_max + "\n");
    ASSERT_TRUE(p.request) << p.error;
    EXPECT_EQ(p.request->op, wp::Op::kPing);

    std::string over = head + std::string(wp::kMaxLine + 1 - head.size() - tail.size(), 'x') + tail;
    ASSERT_EQ(over.size(), wp::kMaxLine + 1);
    wp::LineFramer framer;
    std::string line;
    framer.feed(over + "\n");
    EXPECT_EQ(framer.next(&line), wp::LineFramer::Status::kTooLong);

    // Unterminated: refused as soon as it is over the limit, not before.
    wp::LineFramer partial;
    partial.feed(std::string(wp::kMaxLine, 'x'));
    EXPECT_EQ(partial.next(&line), wp::LineFramer::Status::kNeedMore);
    partial.feed("x");
    EXPECT_EQ(partial.next(&line), wp::LineFramer::Status::kTooLong);
}

TEST(WorkerProtocolLimit, ReplyOfExactlyTheMaxParses) {
    // A metrics reply as long as a line may be still reads back whole.
    const size_t overhead = strip_newline(wp::reply_metrics("")).size();
    std::string text(wp::kMaxLine - overhead, 'm');
    std::string line = strip_newline(wp::reply_metrics(text));
    ASSERT_EQ(line.size(), wp::kMaxLine);
    std::optional<wp::MetricsReply> r = wp::parse_metrics_reply(line);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->text, text);
}

// ---- the shim's metrics exchange, through core.h ---------------------------------

TEST(WorkerProtocolShim, MetricsRequestAndReply) {
    rl_str_t req = rl_worker_metrics_request();
    std::string line(req.data, req.len);
    EXPECT_EQ(line, "{\"op\":\"metrics\"}\n");
    wp::ParsedRequest p = worker_reads(line);
    ASSERT_TRUE(p.request) << p.error;
    EXPECT_EQ(p.request->op, wp::Op::kMetrics);

    for (std::string text : {std::string("# TYPE a gauge\na 1\n"), std::string(),
                             std::string("esc \" \\ \u00e9 \t end")}) {
        std::string reply = strip_newline(wp::reply_metrics(text));
        std::string out(reply.size(), '\0');
        size_t out_len = 12345;
        ASSERT_EQ(rl_worker_metrics_reply(reply.data(), reply.size(), out.data(), &out_len), RL_OK)
            << reply;
        EXPECT_EQ(out.substr(0, out_len), text);
    }

    std::vector<std::string> refused = {strip_newline(wp::reply_error("database unavailable")),
                                        R"({"ok":true})", R"({"ok":true,"text":1})", "", "nope"};
    for (const std::string &reply : refused) {
        char out[64];
        size_t out_len = 0;
        EXPECT_EQ(rl_worker_metrics_reply(reply.data(), reply.size(), out, &out_len), RL_ERROR)
            << reply;
    }
    size_t out_len = 0;
    EXPECT_EQ(rl_worker_metrics_reply(nullptr, 0, nullptr, &out_len), RL_ERROR);
}
