#pragma once

// The worker socket protocol (docs/worker.md, "The socket protocol"), in one
// place: newline-delimited JSON, one request and one reply per line. Both
// sides use this file — the core (inside nginx) encodes requests and parses
// replies, the worker parses requests and encodes replies — and the line
// limit lives here too (the nginx shim reads it through core.h,
// rl_worker_line_max()). Pure logic, unit-tested without sockets.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace relyloop::worker_protocol {

// The longest line accepted in either direction, without its newline.
inline constexpr size_t kMaxLine = size_t{64} * 1024;

// The longest proposal_id accepted, and the cut applied to a request_id.
inline constexpr size_t kMaxIdLength = 128;

enum class Op { kEnqueue, kPing, kMetrics };

struct Request {
    Op op = Op::kPing;
    std::string proposal_id;  // enqueue only
    std::string request_id;   // enqueue only; optional; logged with the job
};

// ---- requests: the core encodes, the worker parses ------------------------

// The two request lines without arguments, as encode_request() sends them.
inline constexpr std::string_view kPingRequest = "{\"op\":\"ping\"}\n";
inline constexpr std::string_view kMetricsRequest = "{\"op\":\"metrics\"}\n";

// The request line, ending in '\n':
//   {"op":"enqueue","proposal_id":"…","request_id":"…"}  (request_id always sent)
//   {"op":"ping"}
//   {"op":"metrics"}
// proposal_id and request_id must be valid UTF-8.
[[nodiscard]] std::string encode_request(const Request &req);

struct ParsedRequest {
    std::optional<Request> request;  // set on success
    std::string error;               // the reply's "error" otherwise
};

// A request line without its newline. Unknown members are ignored. Never
// throws.
[[nodiscard]] ParsedRequest parse_request(std::string_view line) noexcept;

// ---- replies: the worker encodes, the core parses -------------------------

struct EnqueueReply {
    std::string job_id;
    bool deduplicated = false;
};

struct PingReply {
    std::string version;
    long long queued = 0;
    long long running = 0;
};

struct MetricsReply {
    std::string text;  // Prometheus text (docs/metrics.md)
};

// Reply lines, each ending in '\n'.
// {"ok":false,"error":"…"}
[[nodiscard]] std::string reply_error(std::string_view message);
// {"ok":true,"job_id":"…","deduplicated":false}
[[nodiscard]] std::string reply_enqueued(std::string_view job_id, bool deduplicated);
// {"ok":true,"version":"…","queued":N,"running":N}
[[nodiscard]] std::string reply_ping(std::string_view version, long long queued, long long running);
// {"ok":true,"text":"<Prometheus text>"}
[[nodiscard]] std::string reply_metrics(std::string_view text);
// The error answering a line over kMaxLine (the connection is then closed).
[[nodiscard]] std::string reply_line_too_long();

// A reply line (without its newline), read the way the core reads it: a JSON
// object whose "ok" is true, plus the members the op cannot do without.
// Unknown members are ignored; a member of the wrong type is left at its
// default unless it is required. std::nullopt otherwise. Never throw.
//   enqueue: "job_id" (string) required; "deduplicated" read when a boolean.
//   ping:    nothing more required; "version", "queued", "running" read when
//            of their type.
//   metrics: "text" (string) required.
[[nodiscard]] std::optional<EnqueueReply> parse_enqueue_reply(std::string_view line) noexcept;
[[nodiscard]] std::optional<PingReply> parse_ping_reply(std::string_view line) noexcept;
[[nodiscard]] std::optional<MetricsReply> parse_metrics_reply(std::string_view line) noexcept;
// {"ok":false,"error":"…"}: the error text; std::nullopt for anything else.
[[nodiscard]] std::optional<std::string> parse_error_reply(std::string_view line) noexcept;

// ---- framing ---------------------------------------------------------------

// Splits a byte stream into lines without buffering without bound: bytes
// are appended with feed(), complete lines taken with next(). A line longer
// than the limit (or an unterminated remainder longer than it) is reported
// as kTooLong, after which the connection should be answered and closed.
class LineFramer {
  public:
    enum class Status { kLine, kNeedMore, kTooLong };

    explicit LineFramer(size_t max_line = kMaxLine) : max_line_(max_line) {}

    void feed(std::string_view bytes);

    // The next complete line, without "\n" or a trailing "\r".
    [[nodiscard]] Status next(std::string *line);

    // Bytes held (complete lines not yet taken plus a partial line).
    [[nodiscard]] size_t buffered() const noexcept { return buf_.size() - start_; }

    // True when a complete line is waiting (next() would return kLine or kTooLong).
    [[nodiscard]] bool has_line() const noexcept;

  private:
    size_t max_line_;
    std::string buf_;
    size_t start_ = 0;  // first byte not yet taken
};

}  // namespace relyloop::worker_protocol
