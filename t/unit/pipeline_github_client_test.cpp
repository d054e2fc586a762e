#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <vector>

#include "pipeline/cancel.hpp"
#include "pipeline/github_client.hpp"

using namespace relyloop;
using namespace relyloop::github;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

HttpResponse resp(long status, std::string body = "{}",
                  std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    r.headers = std::move(headers);
    if (status == 0) r.transport_error = "Connection refused";
    return r;
}

const Clock::time_point kNow = Clock::from_time_t(1'700'000'000);

class FakeTransport : public Transport {
  public:
    std::deque<HttpResponse> script;
    std::vector<HttpRequest> seen;
    HttpResponse send(const HttpRequest &r) override {
        seen.push_back(r);
        if (script.empty()) return resp(500, R"({"message":"script exhausted"})");
        HttpResponse out = script.front();
        script.pop_front();
        return out;
    }
};

struct Harness {
    FakeTransport transport;
    std::vector<milliseconds> sleeps;
    Client client{"https://api.example.com/", transport,
                  Timing{[] { return kNow; }, [this](milliseconds d) { sleeps.push_back(d); }}};
};

const char kPull[] =
    R"({"number": 7, "html_url": "https://github.com/acme/cfg/pull/7", "state": "open",
        "head": {"ref": "relyloop/study-1"}, "base": {"ref": "main"}})";

}  // namespace

TEST(RetryPolicy, SuccessNeverRetried) { EXPECT_FALSE(retry_decision(resp(201), 1, kNow).retry); }

TEST(RetryPolicy, TransportAnd5xxBackOff124) {
    EXPECT_TRUE(retry_decision(resp(0), 1, kNow).retry);
    EXPECT_EQ(retry_decision(resp(0), 1, kNow).delay, seconds(1));
    EXPECT_EQ(retry_decision(resp(502), 2, kNow).delay, seconds(2));
    EXPECT_FALSE(retry_decision(resp(503), 3, kNow).retry);
}

TEST(RetryPolicy, TooManyRequestsHonoursRetryAfter) {
    EXPECT_EQ(retry_decision(resp(429, "{}", {{"retry-after", "7"}}), 1, kNow).delay, seconds(7));
    EXPECT_EQ(retry_decision(resp(429), 1, kNow).delay, seconds(1));
    EXPECT_EQ(retry_decision(resp(429, "{}", {{"retry-after", "600"}}), 1, kNow).delay,
              seconds(60));
    EXPECT_TRUE(retry_decision(resp(429), 2, kNow).retry);
    EXPECT_FALSE(retry_decision(resp(429), 3, kNow).retry);
}

TEST(RetryPolicy, ForbiddenRateLimits) {
    auto reset_in = [](long s) { return std::to_string(Clock::to_time_t(kNow) + s); };
    RetryDecision d = retry_decision(
        resp(403, "{}", {{"x-ratelimit-remaining", "0"}, {"x-ratelimit-reset", reset_in(12)}}), 1,
        kNow);
    EXPECT_TRUE(d.retry);
    EXPECT_EQ(d.delay, seconds(12));
    d = retry_decision(
        resp(403, "{}", {{"x-ratelimit-remaining", "0"}, {"x-ratelimit-reset", reset_in(3600)}}), 1,
        kNow);
    EXPECT_EQ(d.delay, seconds(60));
    d = retry_decision(resp(403, "{}", {{"retry-after", "3"}}), 1, kNow);
    EXPECT_TRUE(d.retry);
    EXPECT_EQ(d.delay, seconds(3));
    d = retry_decision(
        resp(403, R"({"message":"You have exceeded a secondary rate limit. Please wait."})"), 1,
        kNow);
    EXPECT_TRUE(d.retry);
    EXPECT_EQ(d.delay, seconds(1));
    EXPECT_TRUE(
        retry_decision(resp(403, R"({"message":"abuse detection mechanism"})"), 2, kNow).retry);
    EXPECT_FALSE(
        retry_decision(resp(403, R"({"message":"Resource not accessible"})"), 1, kNow).retry);
    EXPECT_FALSE(retry_decision(resp(403, "{}", {{"x-ratelimit-remaining", "12"}}), 1, kNow).retry);
}

TEST(RetryPolicy, RetryAfterHttpDate) {
    EXPECT_EQ(
        retry_decision(resp(429, "{}", {{"retry-after", "Tue, 14 Nov 2023 22:13:30 GMT"}}), 1, kNow)
            .delay,
        seconds(10));
}

TEST(RetryPolicy, OtherClientErrorsTerminal) {
    for (long s : {400L, 401L, 404L, 409L, 422L, 301L}) {
        EXPECT_FALSE(retry_decision(resp(s), 1, kNow).retry) << s;
    }
}

TEST(GithubClient, FiveHundredTwiceThenCreated) {
    Harness h;
    h.transport.script = {resp(500), resp(502), resp(201, kPull)};
    Client::Opened o =
        h.client.open_or_adopt_pull("acme", "cfg", "t", "relyloop/study-1", "main", "b");
    EXPECT_FALSE(o.adopted);
    EXPECT_EQ(o.pr.number, 7);
    EXPECT_EQ(o.pr.html_url, "https://github.com/acme/cfg/pull/7");
    ASSERT_EQ(h.transport.seen.size(), 3u);
    EXPECT_EQ(h.transport.seen[0].method, "POST");
    EXPECT_EQ(h.transport.seen[0].url, "https://api.example.com/repos/acme/cfg/pulls");
    EXPECT_EQ(h.sleeps, (std::vector<milliseconds>{seconds(1), seconds(2)}));
    EXPECT_NE(h.transport.seen[0].body.find(R"("head":"relyloop/study-1")"), std::string::npos);
    EXPECT_NE(h.transport.seen[0].body.find(R"("base":"main")"), std::string::npos);
}

TEST(GithubClient, ThreeFailuresAreFinal) {
    Harness h;
    h.transport.script = {resp(500), resp(500), resp(503, R"({"message":"Service Unavailable"})")};
    try {
        (void)h.client.create_pull("acme", "cfg", "t", "h", "main", "b");
        FAIL();
    } catch (const ApiError &e) {
        EXPECT_EQ(e.status(), 503);
        EXPECT_STREQ(e.what(), "503: Service Unavailable");
    }
    EXPECT_EQ(h.transport.seen.size(), 3u);
}

TEST(GithubClient, TransportErrorMessage) {
    Harness h;
    h.transport.script = {resp(0), resp(0), resp(0)};
    try {
        (void)h.client.create_pull("acme", "cfg", "t", "h", "main", "b");
        FAIL();
    } catch (const ApiError &e) {
        EXPECT_EQ(e.status(), 0);
        EXPECT_STREQ(e.what(), "transport error: Connection refused");
    }
}

TEST(GithubClient, NotFoundIsTerminalWithGithubMessage) {
    Harness h;
    h.transport.script = {resp(404, R"({"message":"Not Found","documentation_url":"x"})")};
    try {
        (void)h.client.create_pull("acme", "cfg", "t", "h", "main", "b");
        FAIL();
    } catch (const ApiError &e) {
        EXPECT_STREQ(e.what(), "404: Not Found");
    }
    EXPECT_EQ(h.transport.seen.size(), 1u);
    EXPECT_TRUE(h.sleeps.empty());
}

TEST(GithubClient, ValidationErrorDetails) {
    Harness h;
    h.transport.script = {resp(
        422,
        R"({"message":"Validation Failed","errors":[{"resource":"PullRequest","field":"base","code":"invalid"}]})")};
    try {
        (void)h.client.open_or_adopt_pull("acme", "cfg", "t", "h", "nope", "b");
        FAIL();
    } catch (const ApiError &e) {
        EXPECT_STREQ(e.what(), "422: Validation Failed: invalid (base)");
    }
    EXPECT_EQ(h.transport.seen.size(), 1u);
}

TEST(GithubClient, AlreadyExistsAdoptsOpenPull) {
    Harness h;
    h.transport.script = {
        resp(
            422,
            R"({"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"custom","message":"A pull request already exists for acme:relyloop/study-1."}]})"),
        resp(200, std::string("[") + kPull + "]")};
    Client::Opened o =
        h.client.open_or_adopt_pull("acme", "cfg", "t", "relyloop/study-1", "main", "b");
    EXPECT_TRUE(o.adopted);
    EXPECT_EQ(o.pr.number, 7);
    ASSERT_EQ(h.transport.seen.size(), 2u);
    EXPECT_EQ(h.transport.seen[1].method, "GET");
    EXPECT_EQ(h.transport.seen[1].url,
              "https://api.example.com/repos/acme/cfg/pulls?state=open&per_page=100&head=acme%3A"
              "relyloop%2Fstudy-1");
}

TEST(GithubClient, AlreadyExistsButNoneOpen) {
    Harness h;
    h.transport.script = {
        resp(
            422,
            R"({"message":"Validation Failed","errors":[{"message":"A pull request already exists for acme:x."}]})"),
        resp(200, "[]")};
    EXPECT_THROW((void)h.client.open_or_adopt_pull("acme", "cfg", "t", "x", "main", "b"), ApiError);
}

TEST(GithubClient, MalformedSuccessIsAnError) {
    for (const char *body :
         {"not json", "{}", R"({"number": "7", "html_url": "u"})", R"({"number": 7})"}) {
        Harness h;
        h.transport.script = {resp(201, body)};
        EXPECT_THROW((void)h.client.create_pull("acme", "cfg", "t", "h", "main", "b"), ApiError)
            << body;
    }
}

TEST(GithubClient, SecondaryLimitThenCreated) {
    Harness h;
    h.transport.script = {resp(403, R"({"message":"You have exceeded a secondary rate limit."})"),
                          resp(429, "{}", {{"retry-after", "2"}}), resp(201, kPull)};
    EXPECT_EQ(h.client.create_pull("acme", "cfg", "t", "h", "main", "b").number, 7);
    EXPECT_EQ(h.sleeps, (std::vector<milliseconds>{seconds(1), seconds(2)}));
}

TEST(GithubClient, CommentAndGetPull) {
    Harness h;
    h.transport.script = {resp(201, R"({"id": 1})"), resp(200, kPull)};
    h.client.create_issue_comment("acme", "cfg", 7, "![x](y)");
    EXPECT_EQ(h.transport.seen[0].url, "https://api.example.com/repos/acme/cfg/issues/7/comments");
    EXPECT_EQ(h.transport.seen[0].body, R"J({"body":"![x](y)"})J");
    EXPECT_EQ(h.client.get_pull("acme", "cfg", 7).state, "open");
}

TEST(GithubClient, MessagesAreRedacted) {
    Harness h;
    h.transport.script = {resp(
        401, R"({"message":"Bad credentials for ghp_abcdefghijklmnopqrstuvwxyz0123456789AB"})")};
    try {
        (void)h.client.create_pull("acme", "cfg", "t", "h", "main", "b");
        FAIL();
    } catch (const ApiError &e) {
        EXPECT_STREQ(e.what(), "401: Bad credentials for [REDACTED-GH-TOKEN]");
    }
}

TEST(GithubClient, SleepCancellationPropagates) {
    FakeTransport t;
    t.script = {resp(500), resp(201, kPull)};
    Client c("https://api.example.com", t,
             Timing{[] { return kNow; }, [](milliseconds) { throw worker::Cancelled(); }});
    EXPECT_THROW((void)c.create_pull("acme", "cfg", "t", "h", "main", "b"), worker::Cancelled);
}

TEST(GithubClient, RealTimingHonoursCancel) {
    std::atomic<bool> cancel{true};
    Timing t = Timing::real(&cancel);
    EXPECT_THROW(t.sleep(seconds(10)), worker::Cancelled);
}

TEST(GithubClient, ConditionalGetReturns304WithoutRetrying) {
    Harness h;
    h.transport.script = {resp(304, "", {{"etag", "\"abc\""}})};
    HttpResponse r = h.client.call({"GET", "https://api.example.com/x", "", "\"abc\""});
    EXPECT_EQ(r.status, 304);
    EXPECT_EQ(h.transport.seen.size(), 1u);
    EXPECT_EQ(h.transport.seen[0].if_none_match, "\"abc\"");
    // Without If-None-Match a 304 is a terminal failure like any 3xx.
    h.transport.script = {resp(304)};
    EXPECT_THROW((void)h.client.call({"GET", "https://api.example.com/x", ""}), ApiError);
}

TEST(GithubClient, CallFinalKeepsTheFailureHeaders) {
    Harness h;
    std::vector<std::pair<std::string, std::string>> hdr{{"retry-after", "0"},
                                                         {"x-ratelimit-reset", "1999999999"}};
    h.transport.script = {resp(429, "{}", hdr), resp(429, "{}", hdr), resp(429, "{}", hdr)};
    HttpResponse r = h.client.call_final({"GET", "https://api.example.com/x", ""});
    EXPECT_EQ(r.status, 429);
    ASSERT_NE(r.header("x-ratelimit-reset"), nullptr);
    EXPECT_EQ(*r.header("x-ratelimit-reset"), "1999999999");
    EXPECT_EQ(h.transport.seen.size(), 3u);
}
