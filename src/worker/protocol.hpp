#pragma once

// The worker's names for the socket protocol. The protocol itself — encode
// and parse of every request and reply, the line limit, the framer — lives in
// common/worker_protocol.hpp, shared with the core (docs/worker.md, "The
// socket protocol").

#include "common/worker_protocol.hpp"

namespace relyloop::worker {

inline constexpr size_t kMaxRequestLine = worker_protocol::kMaxLine;

using RequestOp = worker_protocol::Op;
using worker_protocol::LineFramer;
using worker_protocol::ParsedRequest;
using worker_protocol::Request;

using worker_protocol::parse_request;
using worker_protocol::reply_enqueued;
using worker_protocol::reply_error;
using worker_protocol::reply_line_too_long;
using worker_protocol::reply_metrics;
using worker_protocol::reply_ping;

}  // namespace relyloop::worker
