#include "api/responses.hpp"

#include "common/json_writer.hpp"
#include "common/uuid.hpp"

namespace relyloop::core {

Response json_response(int status, std::string body) {
    Response r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

std::string error_body(std::string_view code, std::string_view message, bool retryable) {
    std::string b;
    b.reserve(64 + code.size() + message.size());
    b += R"({"detail":{"error_code":)";
    json::write_string(b, code);
    b += R"(,"message":)";
    json::write_string(b, message);
    b += retryable ? R"(,"retryable":true}})" : R"(,"retryable":false}})";
    return b;
}

Response error_response(ErrorCode code, std::string_view message) {
    return error_response(error_http_status(code), error_code_name(code), message,
                          error_retryable(code));
}

Response error_response(int status, std::string_view code, std::string_view message,
                        bool retryable) {
    Response r;
    r.status = status;
    r.body = error_body(code, message, retryable);
    r.error_code = code;
    r.message = message;
    return r;
}

std::string_view not_found_message(ErrorCode code) noexcept {
    switch (code) {
        case ErrorCode::kConfigRepoNotFound:
            return "Config repo not found";
        case ErrorCode::kClusterNotFound:
            return "Cluster not found";
        case ErrorCode::kTemplateNotFound:
            return "Template not found";
        case ErrorCode::kStudyNotFound:
            return "Study not found";
        case ErrorCode::kProposalNotFound:
            return "Proposal not found";
        default:
            return "Resource not found";
    }
}

Response http_error_response(int status) {
    switch (status) {
        case 413:
            return error_response(ErrorCode::kPayloadTooLarge, "Request body too large");
        case 408:
            return error_response(408, "REQUEST_TIMEOUT", "Timed out reading the request", false);
        case 411:
            return error_response(411, "LENGTH_REQUIRED", "Content-Length required", false);
        case 414:
            return error_response(414, "BAD_REQUEST", "Request URI too long", false);
        default:
            break;
    }
    if (status >= 400 && status < 494) {
        return error_response(status, "BAD_REQUEST", "Malformed request", false);
    }
    if (status >= 494 && status < 500) {
        // nginx's private codes (header too large, TLS client certificate
        // problems, plain HTTP on an HTTPS port), which it sends as 400
        return error_response(400, "BAD_REQUEST", "Malformed request", false);
    }
    return error_response(ErrorCode::kInternalError, "Internal server error");
}

bool safe_request_id(std::string_view id) noexcept {
    if (id.empty() || id.size() > 128) {
        return false;
    }
    for (char c : id) {
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

std::string pick_request_id(std::string_view client) {
    return safe_request_id(client) ? std::string(client) : uuid_v7();
}

void HeaderList::add(std::string_view name, std::string_view value) {
    headers_.push_back({{name.data(), name.size()}, {value.data(), value.size()}});
}

void HeaderList::build(const Response &r, const std::string &request_id, const CorsState &cors) {
    headers_.clear();
    headers_.reserve(10);
    if (!r.body.empty()) {
        add("Content-Type", "application/json");
    }
    add("X-Request-ID", request_id);
    if (!r.total_count.empty()) {
        add("X-Total-Count", r.total_count);
    }
    if (!r.allow.empty()) {
        add("Allow", r.allow);
    }
    if (cors.allowed) {
        add("Access-Control-Allow-Origin", cors.origin);
        add("Access-Control-Expose-Headers", "X-Total-Count, X-Request-ID");
        add("Vary", "Origin");
        if (r.preflight) {
            add("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE, OPTIONS");
            add("Access-Control-Allow-Headers", "Content-Type, Accept, X-Request-ID");
            add("Access-Control-Max-Age", "600");
        }
    }
}

const rl_header_t *HeaderList::find(std::string_view name) const noexcept {
    for (const rl_header_t &h : headers_) {
        if (std::string_view(h.name.data, h.name.len) == name) {
            return &h;
        }
    }
    return nullptr;
}

}  // namespace relyloop::core
