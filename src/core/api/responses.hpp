#pragma once

// Responses as the shim sends them: status, headers, JSON body. Every
// response carries X-Request-ID; CORS headers when the origin is allowed.

#include <jansson.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "relyloop/core.h"

namespace relyloop::core {

struct Response {
    int status = 200;
    std::string body;         // JSON text; empty → no body and no Content-Type
    std::string total_count;  // X-Total-Count of lists
    std::string allow;        // Allow (405, OPTIONS)
    bool preflight = false;   // a CORS preflight answer
    // Errors only, for the log line: the envelope's code and message.
    std::string error_code;
    std::string message;
};

// 2xx with a JSON body (its text).
[[nodiscard]] Response json_response(int status, std::string body);

// The error envelope {"detail":{"error_code","message","retryable"}}.
[[nodiscard]] std::string error_body(std::string_view code, std::string_view message,
                                     bool retryable);
[[nodiscard]] Response error_response(ErrorCode code, std::string_view message);
// An envelope for a code outside ErrorCode (body-read failures).
[[nodiscard]] Response error_response(int status, std::string_view code, std::string_view message,
                                      bool retryable);

// "Cluster not found" etc. for a *_NOT_FOUND code; "Resource not found" otherwise.
[[nodiscard]] std::string_view not_found_message(ErrorCode code) noexcept;

// An error nginx raised and the shim reported (rl_request_set_http_error):
// a failed body read, or an error_page redirect of one of nginx's own
// errors (malformed request line, header too large, URI too long, ...).
// nginx's private 494-499 become 400, as nginx itself answers them (its
// error_page already turns them into 400 unless told otherwise).
[[nodiscard]] Response http_error_response(int status);

// X-Request-ID: the client's value is echoed when it is 1..128 characters of
// [A-Za-z0-9._:-] — enough for UUIDs, ULIDs and "svc:trace.span" forms, and
// nothing that could split a header or a log line; anything else gets a
// fresh UUIDv7.
[[nodiscard]] bool safe_request_id(std::string_view id) noexcept;
[[nodiscard]] std::string pick_request_id(std::string_view client);

struct CorsState {
    bool allowed = false;  // the shim matched Origin against relyloop_cors_origins
    std::string origin;
};

// The header array handed to the shim. Names are static; values point into
// the response, the request id and the origin, which must outlive the list.
class HeaderList {
  public:
    void build(const Response &r, const std::string &request_id, const CorsState &cors);
    [[nodiscard]] const rl_header_t *data() const noexcept { return headers_.data(); }
    [[nodiscard]] size_t size() const noexcept { return headers_.size(); }
    // Test helper: the value of a header, or nullptr.
    [[nodiscard]] const rl_header_t *find(std::string_view name) const noexcept;

  private:
    void add(std::string_view name, std::string_view value);

    std::vector<rl_header_t> headers_;
};

}  // namespace relyloop::core
