#include "metrics.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <variant>
#include <vector>

#include "common/error.hpp"
#include "common/raii.hpp"
#include "db.hpp"
#include "settings.hpp"

namespace relyloop::worker {

namespace metrics {

namespace {

// Seconds. Jobs take seconds to minutes (clone, push, GitHub); steps from
// milliseconds up.
constexpr double kJobBounds[] = {0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
constexpr double kStepBounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

// The states pr_jobs.state takes (always printed, 0 when none).
constexpr const char *kJobStates[] = {"queued", "running", "succeeded", "failed"};

struct Histogram {
    std::vector<unsigned long long> buckets;  // per bucket, +Inf last; not cumulative
    unsigned long long count = 0;
    double sum = 0;
};

struct State {
    std::mutex mu;
    std::map<std::string, Histogram> jobs;             // by outcome
    std::map<std::string, Histogram> steps;            // by step
    std::map<std::string, unsigned long long> github;  // by status class
    unsigned long long github_retries = 0;
    unsigned long long lock_contentions = 0;
    unsigned long long lease_losses = 0;
    unsigned long long jobs_claimed = 0;
    unsigned long long jobs_reclaimed = 0;
};

State &state() {
    static State s;
    return s;
}

template <size_t N>
void observe(Histogram &h, const double (&bounds)[N], double v) {
    if (h.buckets.empty()) {
        h.buckets.assign(N + 1, 0);
    }
    size_t i = 0;
    while (i < N && v > bounds[i]) {
        i++;
    }
    h.buckets[i]++;
    h.count++;
    h.sum += v;
}

const Field *field(std::initializer_list<Field> fields, const char *key) {
    for (const Field &f : fields) {
        if (std::strcmp(f.key, key) == 0) {
            return &f;
        }
    }
    return nullptr;
}

std::optional<long long> int_field(std::initializer_list<Field> fields, const char *key) {
    const Field *f = field(fields, key);
    if (f == nullptr) {
        return std::nullopt;
    }
    if (const auto *i = std::get_if<long long>(&f->value)) {
        return *i;
    }
    return std::nullopt;
}

// "loading=4,cloning=52,..." (pr_open_complete's steps_ms)
void observe_steps(State &s, std::string_view text) {
    while (!text.empty()) {
        size_t comma = text.find(',');
        std::string_view item = text.substr(0, comma);
        text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
        size_t eq = item.find('=');
        if (eq == std::string_view::npos || eq == 0) {
            continue;
        }
        std::string_view name = item.substr(0, eq);
        long long ms = 0;
        auto [ptr, ec] = std::from_chars(item.data() + eq + 1, item.data() + item.size(), ms);
        if (ec != std::errc() || ptr != item.data() + item.size() || ms < 0) {
            continue;
        }
        bool plain = true;
        for (char c : name) {
            plain = plain && ((c >= 'a' && c <= 'z') || c == '_');
        }
        if (plain) {
            observe(s.steps[std::string(name)], kStepBounds, static_cast<double>(ms) / 1000.0);
        }
    }
}

void head(std::string &out, const char *name, const char *type, const char *help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

std::string number(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

template <size_t N>
void histogram(std::string &out, const char *name, const char *label,
               const std::map<std::string, Histogram> &series, const double (&bounds)[N]) {
    for (const auto &[value, h] : series) {
        unsigned long long cum = 0;
        for (size_t i = 0; i <= N; i++) {
            cum += h.buckets[i];
            out += name;
            out += "_bucket{";
            out += label;
            out += "=\"" + value + "\",le=\"";
            out += i < N ? number(bounds[i]) : std::string("+Inf");
            out += "\"} " + std::to_string(cum) + "\n";
        }
        char sum[64];
        std::snprintf(sum, sizeof sum, "%.3f", h.sum);
        out += std::string(name) + "_sum{" + label + "=\"" + value + "\"} " + sum + "\n";
        out += std::string(name) + "_count{" + label + "=\"" + value + "\"} " +
               std::to_string(h.count) + "\n";
    }
}

void counter(std::string &out, const char *name, const char *help, unsigned long long v) {
    head(out, name, "counter", help);
    out += std::string(name) + " " + std::to_string(v) + "\n";
}

}  // namespace

void observe_event(std::string_view event, std::initializer_list<Field> fields) noexcept {
    try {
        std::string_view outcome;
        if (event == "job_succeeded") {
            outcome = "succeeded";
        } else if (event == "job_failed") {
            outcome = "failed";
        } else if (event == "job_released") {
            outcome = "released";
        } else if (event == "job_lease_lost") {
            outcome = "lease_lost";
        } else if (event != "pr_open_complete" && event != "pr_open_lock_contention" &&
                   event != "pr_open_github_retry" && event != "job_claimed" &&
                   event != "job_reclaimed") {
            return;
        }
        State &s = state();
        std::lock_guard<std::mutex> lk(s.mu);
        if (!outcome.empty()) {
            if (outcome == "lease_lost") {
                s.lease_losses++;
            }
            if (auto ms = int_field(fields, "duration_ms")) {
                observe(s.jobs[std::string(outcome)], kJobBounds,
                        static_cast<double>(*ms) / 1000.0);
            }
        } else if (event == "pr_open_complete") {
            const Field *f = field(fields, "steps_ms");
            if (f != nullptr) {
                if (const auto *text = std::get_if<std::string_view>(&f->value)) {
                    observe_steps(s, *text);
                }
            }
        } else if (event == "pr_open_lock_contention") {
            s.lock_contentions++;
        } else if (event == "pr_open_github_retry") {
            s.github_retries++;
        } else if (event == "job_claimed") {
            s.jobs_claimed++;
        } else {
            s.jobs_reclaimed++;
        }
    } catch (...) {
        // Metrics must never take a job down. Not logged: the event log
        // calls this for every event.
    }
}

void github_response(long status) noexcept {
    try {
        std::string cls = status >= 100 && status <= 599 ? std::to_string(status / 100) + "xx"
                                                         : std::string("error");
        State &s = state();
        std::lock_guard<std::mutex> lk(s.mu);
        s.github[cls]++;
    } catch (...) {
        // A lost count; the response itself is reported by its caller.
    }
}

std::string render(PGconn *conn) {
    std::string out;
    out.reserve(8192);
    if (conn != nullptr) {
        std::map<std::string, long long> by_state;
        for (const char *st : kJobStates) {
            by_state[st] = 0;
        }
        bool ok = true;
        try {
            PgResult r = db::exec(conn, "SELECT state::text, count(*) FROM pr_jobs GROUP BY 1");
            for (int i = 0; i < PQntuples(r.get()); i++) {
                // only the known states become label values (no escaping needed)
                auto it = by_state.find(PQgetvalue(r.get(), i, 0));
                if (it != by_state.end()) {
                    it->second = std::atoll(PQgetvalue(r.get(), i, 1));
                }
            }
        } catch (const DbError &) {
            ok = false;
        }
        if (ok) {
            head(out, "relyloop_jobs", "gauge", "PR jobs in PostgreSQL by state (all workers)");
            for (const auto &[st, n] : by_state) {
                out += "relyloop_jobs{state=\"" + st + "\"} " + std::to_string(n) + "\n";
            }
        }
    }

    State &s = state();
    std::lock_guard<std::mutex> lk(s.mu);
    head(out, "relyloop_job_duration_seconds", "histogram",
         "Time from claiming a job to its outcome, by outcome (this worker)");
    histogram(out, "relyloop_job_duration_seconds", "outcome", s.jobs, kJobBounds);
    head(out, "relyloop_job_step_duration_seconds", "histogram",
         "Pipeline steps of the jobs that opened a pull request, by step (this worker)");
    histogram(out, "relyloop_job_step_duration_seconds", "step", s.steps, kStepBounds);
    head(out, "relyloop_github_requests_total", "counter",
         "GitHub REST responses by status class; error: no response (this worker)");
    for (const auto &[cls, n] : s.github) {
        out += "relyloop_github_requests_total{code=\"" + cls + "\"} " + std::to_string(n) + "\n";
    }
    counter(out, "relyloop_github_request_retries_total",
            "GitHub requests retried (5xx, 429, rate limits, transport errors)", s.github_retries);
    counter(out, "relyloop_lock_contentions_total",
            "Jobs deferred because another job held their config repo's lock", s.lock_contentions);
    counter(out, "relyloop_lease_losses_total",
            "Jobs whose lease another worker took over while they ran", s.lease_losses);
    counter(out, "relyloop_jobs_claimed_total", "Jobs this worker claimed", s.jobs_claimed);
    counter(out, "relyloop_jobs_reclaimed_total",
            "Jobs this worker claimed after another worker's lease expired", s.jobs_reclaimed);
    return out;
}

bool parse_listen(std::string_view spec, std::string *host, int *port) {
    size_t colon;
    if (!spec.empty() && spec.front() == '[') {
        size_t close = spec.find(']');
        if (close == std::string_view::npos || close + 1 >= spec.size() || spec[close + 1] != ':') {
            return false;
        }
        *host = std::string(spec.substr(1, close - 1));
        colon = close + 1;
    } else {
        colon = spec.rfind(':');
        if (colon == std::string_view::npos || colon == 0) {
            return false;
        }
        *host = std::string(spec.substr(0, colon));
        if (host->find(':') != std::string::npos) {
            return false;
        }
    }
    std::string_view p = spec.substr(colon + 1);
    int n = 0;
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), n);
    if (p.empty() || ec != std::errc() || ptr != p.data() + p.size() || n < 1 || n > 65535) {
        return false;
    }
    in6_addr a6{};
    in_addr a4{};
    if (inet_pton(AF_INET, host->c_str(), &a4) != 1 &&
        inet_pton(AF_INET6, host->c_str(), &a6) != 1) {
        return false;
    }
    *port = n;
    return true;
}

}  // namespace metrics

MetricsListener::MetricsListener(const Settings &settings, EventLog &log)
    : settings_(settings), log_(log) {}

MetricsListener::~MetricsListener() { stop(); }

bool MetricsListener::start(std::string *err) {
    std::string host;
    int port = 0;
    if (!metrics::parse_listen(settings_.metrics_listen, &host, &port)) {
        *err = "--metrics-listen: expected ADDR:PORT";
        return false;
    }
    sockaddr_storage ss{};
    socklen_t len;
    auto *s4 = reinterpret_cast<sockaddr_in *>(&ss);
    auto *s6 = reinterpret_cast<sockaddr_in6 *>(&ss);
    if (inet_pton(AF_INET, host.c_str(), &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(static_cast<uint16_t>(port));
        len = sizeof(sockaddr_in);
    } else {
        (void)inet_pton(AF_INET6, host.c_str(), &s6->sin6_addr);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(static_cast<uint16_t>(port));
        len = sizeof(sockaddr_in6);
    }
    listen_fd_.reset(socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!listen_fd_) {
        *err = std::string("metrics listener: socket: ") + std::strerror(errno);
        return false;
    }
    int one = 1;
    (void)setsockopt(listen_fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listen_fd_.get(), reinterpret_cast<sockaddr *>(&ss), len) != 0 ||
        listen(listen_fd_.get(), 16) != 0) {
        *err = "metrics listener: cannot listen on " + settings_.metrics_listen + ": " +
               std::strerror(errno);
        listen_fd_.reset();
        return false;
    }
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
        *err = std::string("metrics listener: pipe: ") + std::strerror(errno);
        listen_fd_.reset();
        return false;
    }
    wake_read_.reset(pipe_fds[0]);
    wake_write_.reset(pipe_fds[1]);
    thread_ = std::thread([this] { run(); });
    return true;
}

void MetricsListener::stop() noexcept {
    if (thread_.joinable()) {
        char c = 'x';
        (void)!write(wake_write_.get(), &c, 1);
        thread_.join();
    }
    listen_fd_.reset();
    wake_read_.reset();
    wake_write_.reset();
}

void MetricsListener::run() noexcept {
    PgConn conn;
    for (;;) {
        pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {wake_read_.get(), POLLIN, 0}};
        int n = poll(fds, 2, -1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (fds[1].revents != 0) {
            break;
        }
        Fd fd(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!fd) {
            continue;
        }
        serve(fd.get(), &conn);
    }
}

void MetricsListener::serve(int fd, PgConn *conn) noexcept {
    try {
        timeval tv{2, 0};
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        // One deadline for the whole request, and the wake pipe watched
        // while waiting: a client trickling bytes can neither hold the
        // listener for long nor delay shutdown.
        std::string req;
        char buf[2048];
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
        while (req.find("\r\n\r\n") == std::string::npos && req.size() < 8192) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now())
                            .count();
            if (left <= 0) {
                return;
            }
            pollfd fds[2] = {{fd, POLLIN, 0}, {wake_read_.get(), POLLIN, 0}};
            int n = poll(fds, 2, static_cast<int>(left));
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0 || (fds[1].revents & POLLIN) != 0) {
                return;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0) {
                return;
            }
            req.append(buf, static_cast<size_t>(r));
        }
        std::string_view line(req);
        line = line.substr(0, line.find("\r\n"));
        std::string status = "200 OK";
        std::string body;
        bool head_only = line.starts_with("HEAD ");
        if (!line.starts_with("GET ") && !head_only) {
            status = "405 Method Not Allowed";
            body = "only GET\n";
        } else {
            std::string_view target = line.substr(line.find(' ') + 1);
            target = target.substr(0, target.find(' '));
            target = target.substr(0, target.find('?'));
            if (target != "/metrics") {
                status = "404 Not Found";
                body = "see /metrics\n";
            } else {
                if (*conn != nullptr && PQstatus(conn->get()) != CONNECTION_OK) {
                    conn->reset();
                }
                if (*conn == nullptr) {
                    std::string err;
                    *conn =
                        db::connect(settings_.pg_conninfo, "relyloop-worker metrics", &log_, &err);
                }
                body = metrics::render(conn->get());
            }
        }
        std::string resp = "HTTP/1.1 " + status +
                           "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                           "Content-Length: " +
                           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
        if (!head_only) {
            resp += body;
        }
        size_t off = 0;
        while (off < resp.size()) {
            ssize_t w = send(fd, resp.data() + off, resp.size() - off, MSG_NOSIGNAL);
            if (w <= 0) {
                return;
            }
            off += static_cast<size_t>(w);
        }
    } catch (const std::exception &e) {
        // A failed scrape only loses that scrape.
        log_.warn("metrics_scrape_failed", {{"message", e.what()}});
    } catch (...) {
        log_.warn("metrics_scrape_failed", {{"message", "unexpected error"}});
    }
}

}  // namespace relyloop::worker
