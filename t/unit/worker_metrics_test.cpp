#include <gtest/gtest.h>
#include <jansson.h>

#include <string>

#include "common/raii.hpp"
#include "metrics.hpp"
#include "protocol.hpp"

using namespace relyloop;
using namespace relyloop::worker;

namespace {

size_t count(const std::string &text, const std::string &needle) {
    size_t n = 0;
    for (size_t pos = text.find(needle); pos != std::string::npos;
         pos = text.find(needle, pos + 1)) {
        n++;
    }
    return n;
}

}  // namespace

TEST(WorkerMetrics, ParseListen) {
    std::string host;
    int port = 0;
    EXPECT_TRUE(metrics::parse_listen("127.0.0.1:9464", &host, &port));
    EXPECT_EQ(host, "127.0.0.1");
    EXPECT_EQ(port, 9464);
    EXPECT_TRUE(metrics::parse_listen("[::1]:80", &host, &port));
    EXPECT_EQ(host, "::1");
    EXPECT_EQ(port, 80);
    for (const char *bad :
         {"", ":9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
          "localhost:9464", "::1:80", "[::1]", "[::1]80", "1.2.3.4:80x"}) {
        EXPECT_FALSE(metrics::parse_listen(bad, &host, &port)) << bad;
    }
}

TEST(WorkerMetrics, EventsFeedTheHistogramsAndCounters) {
    std::string before = metrics::render(nullptr);
    EXPECT_EQ(before.find("relyloop_jobs{"), std::string::npos) << "no database, no job gauge";

    metrics::observe_event("job_succeeded", {{"job_id", "j"}, {"duration_ms", 1500LL}});
    metrics::observe_event("job_failed", {{"job_id", "j"}, {"duration_ms", 700000LL}});
    metrics::observe_event("pr_open_complete",
                           {{"steps_ms", "loading=4,cloning=52,bad,=3,x=y,opening_pr=7"}});
    metrics::observe_event("pr_open_lock_contention", {{"job_id", "j"}});
    metrics::observe_event("job_lease_lost", {{"job_id", "j"}, {"duration_ms", 10LL}});
    metrics::observe_event("something_else", {{"duration_ms", 10LL}});
    metrics::github_response(201);
    metrics::github_response(0);

    std::string text = metrics::render(nullptr);
    EXPECT_NE(text.find("relyloop_job_duration_seconds_bucket{outcome=\"succeeded\",le=\"1\"} 0\n"),
              std::string::npos)
        << text;
    EXPECT_NE(
        text.find("relyloop_job_duration_seconds_bucket{outcome=\"succeeded\",le=\"2.5\"} 1\n"),
        std::string::npos);
    EXPECT_NE(text.find("relyloop_job_duration_seconds_sum{outcome=\"succeeded\"} 1.500\n"),
              std::string::npos);
    EXPECT_NE(text.find("relyloop_job_duration_seconds_bucket{outcome=\"failed\",le=\"600\"} 0\n"),
              std::string::npos);
    EXPECT_NE(text.find("relyloop_job_duration_seconds_bucket{outcome=\"failed\",le=\"+Inf\"} 1\n"),
              std::string::npos);
    EXPECT_EQ(count(text, "relyloop_job_step_duration_seconds_count{"), 3u) << text;
    EXPECT_NE(text.find("relyloop_job_step_duration_seconds_count{step=\"cloning\"} 1\n"),
              std::string::npos);
    EXPECT_NE(text.find("relyloop_lock_contentions_total 1\n"), std::string::npos);
    EXPECT_NE(text.find("relyloop_lease_losses_total 1\n"), std::string::npos);
    EXPECT_NE(text.find("relyloop_github_requests_total{code=\"2xx\"} 1\n"), std::string::npos);
    EXPECT_NE(text.find("relyloop_github_requests_total{code=\"error\"} 1\n"), std::string::npos);
    EXPECT_EQ(count(text, "# TYPE "), count(text, "# HELP "));
}

TEST(WorkerMetrics, ProtocolOpAndReply) {
    ParsedRequest p = parse_request(R"({"op":"metrics"})");
    ASSERT_TRUE(p.request.has_value()) << p.error;
    EXPECT_EQ(p.request->op, RequestOp::kMetrics);

    std::string line = reply_metrics("a_total 1\nb 2\n");
    ASSERT_FALSE(line.empty());
    EXPECT_EQ(line.back(), '\n');
    EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line";
    json_error_t err;
    Json doc(json_loadb(line.data(), line.size() - 1, 0, &err));
    ASSERT_TRUE(doc);
    EXPECT_TRUE(json_is_true(json_object_get(doc.get(), "ok")));
    EXPECT_STREQ(json_string_value(json_object_get(doc.get(), "text")), "a_total 1\nb 2\n");
}
