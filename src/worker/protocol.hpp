#pragma once

// The worker socket protocol (docs/worker.md, "The socket protocol"):
// newline-delimited JSON, one request
// and one reply per line, several requests per connection. Pure logic, so it
// is unit-tested without sockets.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace relyloop::worker {

// The longest request line accepted, without its newline.
inline constexpr size_t kMaxRequestLine = 64 * 1024;

enum class RequestOp { kEnqueue, kPing, kMetrics };

struct Request {
    RequestOp op = RequestOp::kPing;
    std::string proposal_id;  // enqueue only
    std::string request_id;   // optional; logged with the job
};

struct ParsedRequest {
    std::optional<Request> request;  // set on success
    std::string error;               // the reply's "error" otherwise
};

// `{"op":"enqueue","proposal_id":"…","request_id":"…"}` or `{"op":"ping"}`.
// Unknown members are ignored. Never throws.
[[nodiscard]] ParsedRequest parse_request(std::string_view line) noexcept;

// Reply lines, each ending in '\n'.
[[nodiscard]] std::string reply_error(std::string_view message);
[[nodiscard]] std::string reply_enqueued(std::string_view job_id, bool deduplicated);
[[nodiscard]] std::string reply_ping(std::string_view version, long long queued, long long running);
// {"op":"metrics"}: {"ok":true,"text":"<Prometheus text>"} (docs/metrics.md).
[[nodiscard]] std::string reply_metrics(std::string_view text);

// Splits a byte stream into lines without buffering without bound: bytes
// are appended with feed(), complete lines taken with next(). A line longer
// than the limit (or an unterminated remainder longer than it) is reported
// as kTooLong, after which the connection should be answered and closed.
class LineFramer {
  public:
    enum class Status { kLine, kNeedMore, kTooLong };

    explicit LineFramer(size_t max_line = kMaxRequestLine) : max_line_(max_line) {}

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

}  // namespace relyloop::worker
