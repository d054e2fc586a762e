#include "pipeline/github_client.hpp"

#include <curl/curl.h>
#include <jansson.h>
#include <strings.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <thread>

#include "common/c_callback.hpp"
#include "common/raii.hpp"
#include "common/raii_curl.hpp"
#include "common/redact.hpp"
#include "common/strings.hpp"
#include "metrics.hpp"
#include "pipeline/cancel.hpp"
#include "pipeline/json_text.hpp"
#include "relyloop/version.hpp"

namespace relyloop::github {

namespace {

// The header list holds a copy of the token: wipe every entry before freeing.
void wipe_slist(curl_slist *list) noexcept {
    for (curl_slist *p = list; p != nullptr; p = p->next) {
        if (p->data != nullptr) {
            explicit_bzero(p->data, std::strlen(p->data));
        }
    }
    curl_slist_free_all(list);
}
using WipedSlist = std::unique_ptr<curl_slist, c_free<wipe_slist>>;

constexpr size_t kMaxBodyBytes = 8 * 1024 * 1024;

struct Transfer {
    HttpResponse *response = nullptr;
    const std::atomic<bool> *cancel = nullptr;
    bool too_large = false;
    CallbackFault fault;  // reported as the transfer's error
};

size_t on_body(char *data, size_t size, size_t nmemb, void *user) noexcept {
    auto *t = static_cast<Transfer *>(user);
    size_t n = size * nmemb;
    if (t->response->body.size() + n > kMaxBodyBytes) {
        t->too_large = true;
        return 0;
    }
    // Nothing may cross libcurl: out of memory ends the transfer.
    return guard_callback(&t->fault, size_t{0}, [&] {
        t->response->body.append(data, n);
        return n;
    });
}

size_t on_header_line(Transfer *t, char *data, size_t n);

// Nothing may cross libcurl: out of memory ends the transfer.
size_t on_header(char *data, size_t size, size_t nmemb, void *user) noexcept {
    auto *t = static_cast<Transfer *>(user);
    return guard_callback(&t->fault, size_t{0},
                          [&] { return on_header_line(t, data, size * nmemb); });
}

size_t on_header_line(Transfer *t, char *data, size_t n) {
    std::string_view line(data, n);
    if (line.starts_with("HTTP/")) {
        t->response->headers.clear();  // a new response (after 100 Continue, ...)
        return n;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
        return n;
    }
    std::string name = ascii_lower(line.substr(0, colon));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.remove_prefix(1);
    while (!value.empty() &&
           (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
        value.remove_suffix(1);
    }
    t->response->headers.emplace_back(std::move(name), std::string(value));
    return n;
}

int on_progress(void *user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) noexcept {
    auto *t = static_cast<Transfer *>(user);
    return t->cancel != nullptr && t->cancel->load(std::memory_order_relaxed) ? 1 : 0;
}

const char *transport_class(CURLcode rc) {
    switch (rc) {
        case CURLE_OPERATION_TIMEDOUT:
            return "timeout";
        case CURLE_COULDNT_CONNECT:
            return "connect";
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
            return "dns";
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_ENGINE_NOTFOUND:
        case CURLE_SSL_ENGINE_SETFAILED:
        case CURLE_SSL_SHUTDOWN_FAILED:
        case CURLE_SSL_CRL_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
        case CURLE_SSL_CLIENTCERT:
            return "tls";
        default:
            return "io";
    }
}

bool parse_seconds(const std::string &s, long long *out) {
    if (s.empty() || s.size() > 18) return false;
    for (char c : s) {
        if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    }
    *out = std::stoll(s);
    return true;
}

bool mentions_rate_limit(const std::string &body) {
    std::string lower = ascii_lower(std::string_view(body).substr(0, 64 * 1024));
    return lower.find("rate limit") != std::string::npos ||
           lower.find("abuse") != std::string::npos;
}

std::chrono::milliseconds capped(std::chrono::milliseconds d) {
    return std::clamp(d, std::chrono::milliseconds(0),
                      std::chrono::duration_cast<std::chrono::milliseconds>(kMaxRetryDelay));
}

std::chrono::milliseconds backoff(int attempt) {
    return std::chrono::seconds(1LL << std::clamp(attempt - 1, 0, 2));  // 1, 2, 4 s
}

// Retry-After: delta-seconds or an HTTP date.
std::optional<std::chrono::milliseconds> retry_after(const HttpResponse &r, Clock::time_point now) {
    const std::string *v = r.header("retry-after");
    if (v == nullptr) return std::nullopt;
    long long secs = 0;
    if (parse_seconds(*v, &secs)) {
        return capped(std::chrono::seconds(std::min(secs, 3600LL)));
    }
    time_t when = curl_getdate(v->c_str(), nullptr);
    if (when < 0) return std::chrono::seconds(1);
    auto delta =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::from_time_t(when) - now);
    return capped(delta);
}

// x-ratelimit-remaining: 0 → until x-ratelimit-reset (epoch seconds).
std::optional<std::chrono::milliseconds> until_reset(const HttpResponse &r, Clock::time_point now) {
    const std::string *remaining = r.header("x-ratelimit-remaining");
    if (remaining == nullptr || *remaining != "0") return std::nullopt;
    const std::string *reset = r.header("x-ratelimit-reset");
    long long epoch = 0;
    if (reset == nullptr || !parse_seconds(*reset, &epoch)) return std::chrono::seconds(1);
    auto delta = std::chrono::duration_cast<std::chrono::milliseconds>(
        Clock::from_time_t(static_cast<time_t>(epoch)) - now);
    return std::max(capped(delta), std::chrono::milliseconds(1000));
}

// RFC 3986 percent-encoding of everything but the unreserved characters.
std::string url_escape(std::string_view s) {
    CurlText e(curl_easy_escape(nullptr, s.data(), static_cast<int>(s.size())));
    if (!e) {
        throw std::bad_alloc();
    }
    return e.get();
}

std::string str_field(const json_t *obj, const char *key) {
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

std::optional<PullRequest> pull_from_json(const json_t *obj) {
    if (!json_is_object(obj)) return std::nullopt;
    const json_t *number = json_object_get(obj, "number");
    const json_t *url = json_object_get(obj, "html_url");
    if (!json_is_integer(number) || !json_is_string(url) || json_string_length(url) == 0) {
        return std::nullopt;
    }
    PullRequest pr;
    pr.number = json_integer_value(number);
    pr.html_url = json_string_value(url);
    pr.state = str_field(obj, "state");
    pr.head_ref = str_field(json_object_get(obj, "head"), "ref");
    return pr;
}

}  // namespace

const std::string *HttpResponse::header(std::string_view lower_name) const {
    for (const auto &[name, value] : headers) {
        if (name == lower_name) return &value;
    }
    return nullptr;
}

CurlTransport::CurlTransport(CurlOptions options, const Secret &token,
                             const std::atomic<bool> *cancel)
    : options_(std::move(options)), token_(token), cancel_(cancel) {}

HttpResponse CurlTransport::send(const HttpRequest &request) {
    // Every GitHub call is a side effect: none starts after a cancel (a lost
    // lease, the job timeout; docs/worker.md).
    if (cancel_ != nullptr && cancel_->load()) {
        throw worker::Cancelled();
    }
    HttpResponse response;
    CurlEasy easy(curl_easy_init());
    if (!easy) {
        response.transport_error = "curl_easy_init failed";
        return response;
    }
    CURL *h = easy.get();
    char errbuf[CURL_ERROR_SIZE] = {0};
    Transfer transfer{&response, cancel_, false, {}};

    WipedSlist headers;
    auto add = [&](const std::string &line) {
        curl_slist *next = curl_slist_append(headers.get(), line.c_str());
        if (next != nullptr) {
            (void)headers.release();
            headers.reset(next);
        }
        return next != nullptr;
    };
    {
        // The only string the token is ever formatted into (docs/security.md).
        std::string auth = "Authorization: Bearer " + token_.reveal();
        bool ok = add(auth);
        explicit_bzero(auth.data(), auth.size());
        if (!ok) {
            response.transport_error = "out of memory";
            return response;
        }
    }
    add("Accept: application/vnd.github+json");
    add("X-GitHub-Api-Version: 2022-11-28");
    add("Expect:");
    if (request.method == "POST") {
        add("Content-Type: application/json");
    }
    if (!request.if_none_match.empty() &&
        request.if_none_match.find_first_of("\r\n") == std::string::npos) {
        add("If-None-Match: " + request.if_none_match);
    }
    std::string user_agent = std::string("relyloop-pr/") + kVersion;

    curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count()));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(options_.connect_timeout.count()));
    curl_easy_setopt(h, CURLOPT_USERAGENT, user_agent.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &transfer);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &transfer);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &transfer);
    if (!options_.ca_file.empty()) {
        curl_easy_setopt(h, CURLOPT_CAINFO, options_.ca_file.c_str());
    }
    if (request.method == "POST") {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.body.c_str());
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(request.body.size()));
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }

    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_ABORTED_BY_CALLBACK && cancel_ != nullptr && cancel_->load()) {
        throw worker::Cancelled();
    }
    if (rc != CURLE_OK) {
        std::string why = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
        if (transfer.too_large) why = "response body larger than 8 MiB";
        if (transfer.fault.set()) {
            why = std::string("libcurl callback failed: ") + transfer.fault.what();
        }
        response.status = 0;
        response.body.clear();
        response.transport_error = redact(why, token_.reveal());
        worker::metrics::github_response(0);
        response.transport_class = transport_class(rc);
        return response;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    response.status = status;
    worker::metrics::github_response(status);
    return response;
}

RetryDecision retry_decision(const HttpResponse &r, int attempt, Clock::time_point now) {
    RetryDecision d;
    if (r.status >= 200 && r.status < 300) {
        return d;
    }
    if (r.status == 0) {
        d.retry = true;
        d.delay = backoff(attempt);
        d.reason = "transport error";
    } else if (r.status >= 500) {
        d.retry = true;
        d.delay = backoff(attempt);
        d.reason = "server error " + std::to_string(r.status);
    } else if (r.status == 429) {
        d.retry = true;
        if (auto ra = retry_after(r, now)) {
            d.delay = *ra;
        } else if (auto ur = until_reset(r, now)) {
            d.delay = *ur;
        } else {
            d.delay = std::chrono::seconds(1);
        }
        d.reason = "rate limited (429)";
    } else if (r.status == 403) {
        if (auto ra = retry_after(r, now)) {
            d.retry = true;
            d.delay = *ra;
            d.reason = "rate limited (403, Retry-After)";
        } else if (auto ur = until_reset(r, now)) {
            d.retry = true;
            d.delay = *ur;
            d.reason = "rate limited (403, x-ratelimit-remaining: 0)";
        } else if (mentions_rate_limit(r.body)) {
            d.retry = true;
            d.delay = backoff(attempt);
            d.reason = "secondary rate limit (403)";
        }
    }
    if (attempt >= kMaxAttempts) {
        d.retry = false;
    }
    return d;
}

Timing Timing::real(const std::atomic<bool> *cancel) {
    Timing t;
    t.now = [] { return Clock::now(); };
    t.sleep = [cancel](std::chrono::milliseconds d) {
        auto until = std::chrono::steady_clock::now() + d;
        for (;;) {
            if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) {
                throw worker::Cancelled();
            }
            auto left = until - std::chrono::steady_clock::now();
            if (left <= std::chrono::steady_clock::duration::zero()) return;
            std::this_thread::sleep_for(
                std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(50)));
        }
    };
    return t;
}

ApiError::ApiError(long status, const std::string &message)
    : std::runtime_error(redact(status == 0 ? "transport error: " + message
                                            : std::to_string(status) + ": " + message)),
      status_(status) {}

std::string github_error_message(const HttpResponse &r) {
    if (r.status == 0) {
        return r.transport_error.empty() ? "no response" : r.transport_error;
    }
    Json doc = worker::json_parse(r.body);
    std::string msg;
    if (json_is_object(doc.get())) {
        msg = str_field(doc.get(), "message");
        const json_t *errors = json_object_get(doc.get(), "errors");
        std::string details;
        for (size_t i = 0; json_is_array(errors) && i < json_array_size(errors); i++) {
            const json_t *e = json_array_get(errors, i);
            std::string m = json_is_string(e) ? json_string_value(e) : str_field(e, "message");
            if (m.empty() && json_is_object(e)) {
                m = str_field(e, "code");
                std::string field = str_field(e, "field");
                if (!field.empty()) m += " (" + field + ")";
            }
            if (!m.empty()) details += (details.empty() ? "" : "; ") + m;
        }
        if (!details.empty()) msg += (msg.empty() ? "" : ": ") + details;
    }
    if (msg.empty()) {
        // Redact the whole body, then cut (docs/security.md): a token cut
        // inside would match neither the token patterns nor the PAT.
        std::string excerpt = redact_truncate(r.body, 200);
        for (char &c : excerpt) {
            if (c == '\n' || c == '\r' || c == '\t') c = ' ';
        }
        msg = excerpt.empty() ? "empty response" : excerpt;
    }
    return redact(msg);
}

std::optional<PullRequest> parse_pull(std::string_view json) {
    Json doc = worker::json_parse(json);
    return pull_from_json(doc.get());
}

Client::Client(std::string api_url, Transport &transport, Timing timing)
    : api_url_(std::move(api_url)), transport_(transport), timing_(std::move(timing)) {
    api_url_.resize(strip_trailing_slashes(api_url_).size());
}

std::string Client::repo_url(std::string_view owner, std::string_view repo) const {
    return api_url_ + "/repos/" + url_escape(owner) + "/" + url_escape(repo);
}

HttpResponse Client::call_final(const HttpRequest &request) {
    for (int attempt = 1;; attempt++) {
        HttpResponse r = transport_.send(request);
        if ((r.status >= 200 && r.status < 300) ||
            (r.status == 304 && !request.if_none_match.empty())) {
            return r;
        }
        RetryDecision d = retry_decision(r, attempt, timing_.now());
        if (!d.retry) {
            return r;
        }
        if (on_retry_) on_retry_(d, attempt);
        timing_.sleep(d.delay);
    }
}

HttpResponse Client::call(const HttpRequest &request) {
    HttpResponse r = call_final(request);
    if ((r.status >= 200 && r.status < 300) ||
        (r.status == 304 && !request.if_none_match.empty())) {
        return r;
    }
    throw ApiError(r.status, github_error_message(r));
}

std::string create_pull_payload(std::string_view title, std::string_view head,
                                std::string_view base, std::string_view body) {
    Json req(json_object());
    json_object_set_new(req.get(), "title", json_stringn(title.data(), title.size()));
    json_object_set_new(req.get(), "head", json_stringn(head.data(), head.size()));
    json_object_set_new(req.get(), "base", json_stringn(base.data(), base.size()));
    json_object_set_new(req.get(), "body", json_stringn(body.data(), body.size()));
    json_object_set_new(req.get(), "maintainer_can_modify", json_false());
    CString text(json_dumps(req.get(), JSON_COMPACT));
    if (!text) throw std::bad_alloc();
    return text.get();
}

PullRequest Client::create_pull(std::string_view owner, std::string_view repo,
                                std::string_view title, std::string_view head,
                                std::string_view base, std::string_view body) {
    HttpResponse r = call(
        {"POST", repo_url(owner, repo) + "/pulls", create_pull_payload(title, head, base, body)});
    auto pr = parse_pull(r.body);
    if (!pr) {
        throw ApiError(r.status, "malformed pull request in the response");
    }
    return *pr;
}

std::vector<PullRequest> Client::list_pulls(std::string_view owner, std::string_view repo,
                                            std::string_view state, std::string_view head) {
    std::string url = repo_url(owner, repo) + "/pulls?state=" + url_escape(state) + "&per_page=100";
    if (!head.empty()) url += "&head=" + url_escape(head);
    HttpResponse r = call({"GET", url, ""});
    Json doc = worker::json_parse(r.body);
    if (!json_is_array(doc.get())) {
        throw ApiError(r.status, "malformed pull request list in the response");
    }
    std::vector<PullRequest> out;
    for (size_t i = 0; i < json_array_size(doc.get()); i++) {
        auto pr = pull_from_json(json_array_get(doc.get(), i));
        if (!pr) throw ApiError(r.status, "malformed pull request in the list");
        out.push_back(std::move(*pr));
    }
    return out;
}

std::optional<PullRequest> Client::find_open_pull(std::string_view owner, std::string_view repo,
                                                  std::string_view branch) {
    std::string head = std::string(owner) + ":" + std::string(branch);
    for (PullRequest &pr : list_pulls(owner, repo, "open", head)) {
        if (pr.head_ref.empty() || pr.head_ref == branch) return std::move(pr);
    }
    return std::nullopt;
}

PullRequest Client::get_pull(std::string_view owner, std::string_view repo, long long number) {
    HttpResponse r = call({"GET", repo_url(owner, repo) + "/pulls/" + std::to_string(number), ""});
    auto pr = parse_pull(r.body);
    if (!pr) throw ApiError(r.status, "malformed pull request in the response");
    return *pr;
}

void Client::create_issue_comment(std::string_view owner, std::string_view repo, long long number,
                                  std::string_view body) {
    Json req(json_object());
    json_object_set_new(req.get(), "body", json_stringn(body.data(), body.size()));
    CString text(json_dumps(req.get(), JSON_COMPACT));
    if (!text) throw std::bad_alloc();
    (void)call({"POST", repo_url(owner, repo) + "/issues/" + std::to_string(number) + "/comments",
                text.get()});
}

Client::Opened Client::open_or_adopt_pull(std::string_view owner, std::string_view repo,
                                          std::string_view title, std::string_view head,
                                          std::string_view base, std::string_view body) {
    try {
        return Opened{create_pull(owner, repo, title, head, base, body), false};
    } catch (const ApiError &e) {
        if (e.status() != 422 || std::string_view(e.what()).find("pull request already exists") ==
                                     std::string_view::npos) {
            throw;
        }
        auto pr = find_open_pull(owner, repo, head);
        if (!pr) {
            throw ApiError(422, "a pull request already exists for " + std::string(head) +
                                    " but no open one was found");
        }
        return Opened{std::move(*pr), true};
    }
}

CurlGlobal::CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
CurlGlobal::~CurlGlobal() { curl_global_cleanup(); }

}  // namespace relyloop::github
