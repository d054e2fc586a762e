#pragma once

// The worker's Prometheus metrics (docs/metrics.md): counters and histograms
// of this process, fed by the events it logs (job outcomes and durations,
// step durations, lock contentions, lease losses, GitHub retries) and by the
// GitHub client (responses by status class), plus the jobs by state read
// from PostgreSQL when the text is rendered. Served by the socket's
// {"op":"metrics"} (nginx's relyloop_metrics location appends it) and, with
// --metrics-listen, over HTTP by the worker itself.

#include <libpq-fe.h>

#include <atomic>
#include <initializer_list>
#include <string>
#include <string_view>
#include <thread>

#include "common/raii.hpp"
#include "event_log.hpp"

namespace relyloop::worker {

struct Settings;

namespace metrics {

// An event the worker logged, with its fields. Never throws.
void observe_event(std::string_view event, std::initializer_list<Field> fields) noexcept;

// One HTTP exchange with GitHub: its status, 0 for a transport error.
void github_response(long status) noexcept;

// The text exposition format 0.0.4. With conn, also relyloop_jobs{state}
// (a failed query only leaves that family out). Throws std::bad_alloc.
[[nodiscard]] std::string render(PGconn *conn);

// "host:port" or "[v6]:port" → true and the parts; false when malformed.
[[nodiscard]] bool parse_listen(std::string_view spec, std::string *host, int *port);

}  // namespace metrics

// --metrics-listen: GET /metrics over HTTP/1.x, one request per connection,
// on a thread of its own with its own PostgreSQL connection.
class MetricsListener {
  public:
    MetricsListener(const Settings &settings, EventLog &log);
    ~MetricsListener();
    MetricsListener(const MetricsListener &) = delete;
    MetricsListener &operator=(const MetricsListener &) = delete;

    // Binds and starts the thread; false with *err when it cannot listen.
    bool start(std::string *err);
    void stop() noexcept;

  private:
    void run() noexcept;
    void serve(int fd, PgConn *conn) noexcept;

    const Settings &settings_;
    EventLog &log_;
    Fd listen_fd_;
    Fd wake_read_;  // a pipe: stop() wakes run()'s poll()
    Fd wake_write_;
    std::thread thread_;
};

}  // namespace relyloop::worker
