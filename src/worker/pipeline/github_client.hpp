#pragma once

// A small GitHub REST client (docs/worker.md, "Pipeline steps" 10–11): libcurl, one easy handle
// per request, GitHub's REST headers, 30 s timeout, and the retry policy (docs/runbook.md)
//   max 3 attempts, backoff 1, 2, 4 s: transport errors and 5xx;
//   429: Retry-After (default 1 s, cap 60 s);
//   403 with Retry-After, or x-ratelimit-remaining: 0 (until x-ratelimit-reset,
//   cap 60 s), or a body mentioning "rate limit"/"abuse";
//   every other 4xx (and 3xx) is terminal.
// The transport and the clock/sleeper are injectable so tests neither sleep
// nor need a server. Written for reuse by a PR-state reconciler (get_pull,
// list_pulls).

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/secret.hpp"

namespace relyloop::github {

using Clock = std::chrono::system_clock;

struct HttpRequest {
    std::string method;  // "GET" or "POST"
    std::string url;
    std::string body;  // JSON (POST)
    // A conditional GET (docs/worker.md, "PR state reconciler"): sent as
    // If-None-Match; Client::call then returns a 304 instead of failing.
    std::string if_none_match;
};

struct HttpResponse {
    long status = 0;  // 0: the request never got an HTTP answer
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
    std::string transport_error;                               // redacted; status 0 only
    // status 0 only: one word for the failure kind — timeout, connect, tls,
    // dns or io (docs/worker.md, "Webhook registration").
    std::string transport_class;

    [[nodiscard]] const std::string *header(std::string_view lower_name) const;
};

// Sends one request, never retries. Throws worker::Cancelled only.
class Transport {
  public:
    virtual ~Transport() = default;
    [[nodiscard]] virtual HttpResponse send(const HttpRequest &request) = 0;
};

struct CurlOptions {
    std::string ca_file;  // "" = the system bundle
    std::chrono::milliseconds timeout{30000};
    std::chrono::milliseconds connect_timeout{10000};
};

// libcurl with `Authorization: Bearer <PAT>`, `Accept: application/vnd.github+json`,
// `X-GitHub-Api-Version: 2022-11-28`, `User-Agent: relyloop-pr/<version>`.
// No redirects are followed (the token never travels to another host); only
// http/https. Aborts the transfer when *cancel becomes true. The token is
// referenced, never copied beyond the header list, which is wiped after use.
class CurlTransport final : public Transport {
  public:
    CurlTransport(CurlOptions options, const Secret &token, const std::atomic<bool> *cancel);
    [[nodiscard]] HttpResponse send(const HttpRequest &request) override;

  private:
    CurlOptions options_;
    const Secret &token_;
    const std::atomic<bool> *cancel_;
};

inline constexpr int kMaxAttempts = 3;
inline constexpr std::chrono::seconds kMaxRetryDelay{60};

struct RetryDecision {
    bool retry = false;
    std::chrono::milliseconds delay{0};
    std::string reason;  // for the event log
};

// What to do after attempt number `attempt` (1-based) got `response`. 2xx is
// never retried; after kMaxAttempts nothing is.
[[nodiscard]] RetryDecision retry_decision(const HttpResponse &response, int attempt,
                                           Clock::time_point now);

struct Timing {
    std::function<Clock::time_point()> now;
    std::function<void(std::chrono::milliseconds)> sleep;  // may throw worker::Cancelled

    // The wall clock, and a sleep that wakes every 50 ms to honour *cancel.
    [[nodiscard]] static Timing real(const std::atomic<bool> *cancel);
};

// A request that failed for good: "<status>: <GitHub's message>", or
// "transport error: <curl's message>"; always redacted.
class ApiError : public std::runtime_error {
  public:
    ApiError(long status, const std::string &message);
    [[nodiscard]] long status() const noexcept { return status_; }

  private:
    long status_;
};

// The JSON body of POST /repos/{o}/{r}/pulls, compact: what create_pull
// sends, and what a dry run records instead of sending (docs/worker.md).
[[nodiscard]] std::string create_pull_payload(std::string_view title, std::string_view head,
                                              std::string_view base, std::string_view body);

struct PullRequest {
    long long number = 0;
    std::string html_url;
    std::string state;
    std::string head_ref;
};

class Client {
  public:
    // api_url: "https://api.github.com" or "https://HOST/api/v3".
    Client(std::string api_url, Transport &transport, Timing timing);

    // One logical request with the retry policy: the final 2xx response (or
    // 304 for a request with if_none_match), or ApiError. `on_retry`
    // (optional) hears each retry decision.
    [[nodiscard]] HttpResponse call(const HttpRequest &request);
    // The same retry policy, but the final response whatever its status
    // (status 0: transport failure): for callers that need the headers of a
    // failure (the reconciler's rate-limit stop).
    [[nodiscard]] HttpResponse call_final(const HttpRequest &request);

    // POST /repos/{o}/{r}/pulls. A 422 "A pull request already exists" is an
    // ApiError with status 422; see open_or_adopt_pull.
    [[nodiscard]] PullRequest create_pull(std::string_view owner, std::string_view repo,
                                          std::string_view title, std::string_view head,
                                          std::string_view base, std::string_view body);
    // GET /repos/{o}/{r}/pulls?head=<head_owner>:<branch>&state=open → first match.
    [[nodiscard]] std::optional<PullRequest> find_open_pull(std::string_view owner,
                                                            std::string_view repo,
                                                            std::string_view branch);
    [[nodiscard]] PullRequest get_pull(std::string_view owner, std::string_view repo,
                                       long long number);
    // state: "open", "closed" or "all"; head: "owner:branch" or "" for any.
    [[nodiscard]] std::vector<PullRequest> list_pulls(std::string_view owner, std::string_view repo,
                                                      std::string_view state,
                                                      std::string_view head);
    // POST /repos/{o}/{r}/issues/{number}/comments
    void create_issue_comment(std::string_view owner, std::string_view repo, long long number,
                              std::string_view body);

    struct Opened {
        PullRequest pr;
        bool adopted = false;  // it already existed for this head
    };
    // create_pull; on 422 "already exists", find the open PR of the head and adopt it.
    [[nodiscard]] Opened open_or_adopt_pull(std::string_view owner, std::string_view repo,
                                            std::string_view title, std::string_view head,
                                            std::string_view base, std::string_view body);

    void set_retry_listener(std::function<void(const RetryDecision &, int attempt)> f) {
        on_retry_ = std::move(f);
    }

    // <api>/repos/<owner>/<repo>, both percent-encoded.
    [[nodiscard]] std::string repo_url(std::string_view owner, std::string_view repo) const;

  private:
    std::string api_url_;
    Transport &transport_;
    Timing timing_;
    std::function<void(const RetryDecision &, int)> on_retry_;
};

// GitHub's error text of a response: `message`, plus the `errors[].message`
// entries when there are some; a short excerpt of a non-JSON body.
[[nodiscard]] std::string github_error_message(const HttpResponse &response);

// Parses a pull request object; nullopt when number/html_url are missing.
[[nodiscard]] std::optional<PullRequest> parse_pull(std::string_view json);

// RAII for curl_global_init/cleanup: construct once in main before threads.
class CurlGlobal {
  public:
    CurlGlobal();
    ~CurlGlobal();
    CurlGlobal(const CurlGlobal &) = delete;
    CurlGlobal &operator=(const CurlGlobal &) = delete;
};

}  // namespace relyloop::github
