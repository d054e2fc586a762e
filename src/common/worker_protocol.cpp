#include "common/worker_protocol.hpp"

#include <jansson.h>

#include <algorithm>
#include <cstring>

#include "common/json_writer.hpp"
#include "common/raii.hpp"
#include "common/redact.hpp"

namespace relyloop::worker_protocol {

namespace {

// Echoed text (an unknown op) stays short and printable ASCII.
std::string sanitize(std::string_view s) {
    std::string out;
    // Redact, then cut (docs/security.md).
    for (char c : redact_truncate(s, 64)) {
        auto u = static_cast<unsigned char>(c);
        out.push_back(u >= 0x20 && u < 0x7f && c != '"' && c != '\\' ? c : '?');
    }
    if (s.size() > 64) {
        out += "...";
    }
    return out;
}

std::string dump_line(json_t *obj) {
    CString text(json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER));
    if (!text) {
        return "{\"ok\":false,\"error\":\"internal error\"}\n";
    }
    std::string line(text.get());
    line.push_back('\n');
    return line;
}

ParsedRequest fail(std::string message) {
    ParsedRequest r;
    r.error = std::move(message);
    return r;
}

// A reply line as the core reads it: a JSON object with "ok": true.
Json load_ok_reply(std::string_view line) {
    json_error_t err{};
    Json root(json_loadb(line.data(), line.size(), 0, &err));
    if (!root || !json_is_object(root.get()) || !json_is_true(json_object_get(root.get(), "ok"))) {
        return nullptr;
    }
    return root;
}

std::string string_member(const json_t *obj, const char *key) {
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? std::string(json_string_value(v), json_string_length(v))
                             : std::string();
}

long long integer_member(const json_t *obj, const char *key) {
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

// read(root) of a reply line whose "ok" is true and whose `required` member,
// when one is named, is a string; std::nullopt otherwise.
template <typename T, typename Read>
std::optional<T> read_ok_reply(std::string_view line, const char *required, Read read) noexcept {
    try {
        Json root = load_ok_reply(line);
        if (!root ||
            (required != nullptr && !json_is_string(json_object_get(root.get(), required)))) {
            return std::nullopt;
        }
        return read(root.get());
    } catch (...) {
        // Out of memory: the caller reports the reply as unreadable.
        return std::nullopt;
    }
}

}  // namespace

std::string encode_request(const Request &req) {
    switch (req.op) {
        case Op::kPing:
            return std::string(kPingRequest);
        case Op::kMetrics:
            return std::string(kMetricsRequest);
        case Op::kEnqueue:
            break;
    }
    std::string line = R"({"op":"enqueue","proposal_id":)";
    json::write_string(line, req.proposal_id);
    line += R"(,"request_id":)";
    json::write_string(line, req.request_id);
    line += "}\n";
    return line;
}

ParsedRequest parse_request(std::string_view line) noexcept {
    try {
        size_t first = line.find_first_not_of(" \t");
        if (first == std::string_view::npos) {
            return fail("empty request");
        }
        json_error_t err{};
        Json root(
            json_loadb(line.data(), line.size(), JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err));
        if (!root) {
            return fail(std::string("invalid JSON: ") + err.text);
        }
        if (!json_is_object(root.get())) {
            return fail("request must be a JSON object");
        }
        json_t *op = json_object_get(root.get(), "op");
        if (op == nullptr) {
            return fail("missing op");
        }
        if (!json_is_string(op)) {
            return fail("op must be a string");
        }
        std::string_view op_name(json_string_value(op), json_string_length(op));
        Request req;
        if (op_name == "ping") {
            req.op = Op::kPing;
        } else if (op_name == "metrics") {
            req.op = Op::kMetrics;
        } else if (op_name == "enqueue") {
            req.op = Op::kEnqueue;
            json_t *pid = json_object_get(root.get(), "proposal_id");
            if (pid == nullptr || json_is_null(pid)) {
                return fail("missing proposal_id");
            }
            if (!json_is_string(pid)) {
                return fail("proposal_id must be a string");
            }
            req.proposal_id.assign(json_string_value(pid), json_string_length(pid));
            if (req.proposal_id.empty()) {
                return fail("proposal_id must not be empty");
            }
            if (req.proposal_id.size() > kMaxIdLength) {
                return fail("proposal_id is longer than 128 bytes");
            }
        } else {
            return fail("unknown op \"" + sanitize(op_name) + "\"");
        }
        json_t *rid = json_object_get(root.get(), "request_id");
        if (rid != nullptr && !json_is_null(rid)) {
            if (!json_is_string(rid)) {
                return fail("request_id must be a string");
            }
            req.request_id.assign(json_string_value(rid),
                                  std::min(json_string_length(rid), kMaxIdLength));
        }
        ParsedRequest r;
        r.request = std::move(req);
        return r;
    } catch (...) {
        // Out of memory: the error reply says so, and the client logs it.
        return fail("internal error");
    }
}

std::string reply_error(std::string_view message) {
    Json obj(json_object());
    if (!obj) {
        return "{\"ok\":false,\"error\":\"internal error\"}\n";
    }
    json_object_set_new(obj.get(), "ok", json_false());
    json_t *m = json_stringn(message.data(), message.size());
    json_object_set_new(obj.get(), "error", m != nullptr ? m : json_string("error"));
    return dump_line(obj.get());
}

std::string reply_enqueued(std::string_view job_id, bool deduplicated) {
    Json obj(json_object());
    if (!obj) {
        return reply_error("internal error");
    }
    json_object_set_new(obj.get(), "ok", json_true());
    json_object_set_new(obj.get(), "job_id", json_stringn(job_id.data(), job_id.size()));
    json_object_set_new(obj.get(), "deduplicated", json_boolean(deduplicated));
    return dump_line(obj.get());
}

std::string reply_ping(std::string_view version, long long queued, long long running) {
    Json obj(json_object());
    if (!obj) {
        return reply_error("internal error");
    }
    json_object_set_new(obj.get(), "ok", json_true());
    json_object_set_new(obj.get(), "version", json_stringn(version.data(), version.size()));
    json_object_set_new(obj.get(), "queued", json_integer(queued));
    json_object_set_new(obj.get(), "running", json_integer(running));
    return dump_line(obj.get());
}

std::string reply_metrics(std::string_view text) {
    Json obj(json_object());
    if (!obj) {
        return reply_error("internal error");
    }
    json_object_set_new(obj.get(), "ok", json_true());
    json_t *t = json_stringn(text.data(), text.size());
    if (t == nullptr) {
        return reply_error("internal error");
    }
    json_object_set_new(obj.get(), "text", t);
    return dump_line(obj.get());
}

std::string reply_line_too_long() {
    return reply_error("request line longer than " + std::to_string(kMaxLine) + " bytes");
}

std::optional<EnqueueReply> parse_enqueue_reply(std::string_view line) noexcept {
    return read_ok_reply<EnqueueReply>(line, "job_id", [](const json_t *root) {
        return EnqueueReply{string_member(root, "job_id"),
                            json_is_true(json_object_get(root, "deduplicated"))};
    });
}

std::optional<PingReply> parse_ping_reply(std::string_view line) noexcept {
    return read_ok_reply<PingReply>(line, nullptr, [](const json_t *root) {
        return PingReply{string_member(root, "version"), integer_member(root, "queued"),
                         integer_member(root, "running")};
    });
}

std::optional<MetricsReply> parse_metrics_reply(std::string_view line) noexcept {
    return read_ok_reply<MetricsReply>(
        line, "text", [](const json_t *root) { return MetricsReply{string_member(root, "text")}; });
}

std::optional<std::string> parse_error_reply(std::string_view line) noexcept {
    try {
        json_error_t err{};
        Json root(json_loadb(line.data(), line.size(), 0, &err));
        if (!root || !json_is_object(root.get()) ||
            !json_is_false(json_object_get(root.get(), "ok"))) {
            return std::nullopt;
        }
        const json_t *error = json_object_get(root.get(), "error");
        if (!json_is_string(error)) {
            return std::nullopt;
        }
        return std::string(json_string_value(error), json_string_length(error));
    } catch (...) {
        // Out of memory: the caller reports the reply as unreadable.
        return std::nullopt;
    }
}

void LineFramer::feed(std::string_view bytes) {
    if (start_ > 0 && start_ >= buf_.size() / 2) {
        buf_.erase(0, start_);
        start_ = 0;
    }
    buf_.append(bytes);
}

bool LineFramer::has_line() const noexcept {
    size_t avail = buf_.size() - start_;
    return std::memchr(buf_.data() + start_, '\n', avail) != nullptr || avail > max_line_;
}

LineFramer::Status LineFramer::next(std::string *line) {
    size_t avail = buf_.size() - start_;
    const char *base = buf_.data() + start_;
    const void *nl = std::memchr(base, '\n', avail);
    if (nl == nullptr) {
        return avail > max_line_ ? Status::kTooLong : Status::kNeedMore;
    }
    size_t len = static_cast<size_t>(static_cast<const char *>(nl) - base);
    size_t consumed = len + 1;
    if (len > 0 && base[len - 1] == '\r') {
        len--;
    }
    if (len > max_line_) {
        start_ += consumed;
        return Status::kTooLong;
    }
    line->assign(base, len);
    start_ += consumed;
    if (start_ == buf_.size()) {
        buf_.clear();
        start_ = 0;
    }
    return Status::kLine;
}

}  // namespace relyloop::worker_protocol
