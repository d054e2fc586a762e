// The C API of include/relyloop/core.h. Every entry point is noexcept and
// catches everything: no exception ever unwinds into nginx's C code.

#include "relyloop/core.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <string_view>

#include "api/handler.hpp"
#include "api/openapi.hpp"
#include "api/request.hpp"
#include "api/router.hpp"
#include "common/defaults.hpp"
#include "common/raii.hpp"
#include "common/strings.hpp"
#include "common/validate.hpp"
#include "common/worker_protocol.hpp"
#include "db/statements.hpp"

struct rl_core_s {
    relyloop::core::CoreConf conf;
};

struct rl_request_s {
    rl_request_s(const relyloop::core::CoreConf &conf, const rl_http_request_t &in, rl_log_cb log,
                 void *log_data)
        : req(conf, in, log, log_data) {}

    relyloop::core::Request req;
};

// The shim's copies of the shared defaults (relyloop/core.h) are the owner's.
static_assert(std::string_view(RL_DEFAULT_WORKER_SOCKET) == relyloop::defaults::kWorkerSocket);
static_assert(std::string_view(RL_DEFAULT_SECRETS_DIR) == relyloop::defaults::kSecretsDir);
static_assert(std::string_view(RL_DEFAULT_GITHUB_WEB_URL) == relyloop::defaults::kGithubWebUrl);
static_assert(std::string_view(RL_DEFAULT_ENVIRONMENT) == relyloop::defaults::kEnvironment);
static_assert(RL_DEFAULT_WEBHOOK_REPLAY_WINDOW_S == relyloop::defaults::kWebhookReplayWindowS);

namespace {

constexpr char kInternalErrorBody[] =
    R"({"detail":{"error_code":"INTERNAL_ERROR","message":"Internal server error","retryable":false}})";

std::string conf_string(const char *s, const char *fallback) {
    return s != nullptr && *s != '\0' ? std::string(s) : std::string(fallback);
}

// A handler of bad_alloc must not allocate: the line is formatted on the stack.
size_t format_failure(char (&buf)[512], const char *prefix, const char *what) noexcept {
    int n = std::snprintf(buf, sizeof buf, "%s: \"%s\"", prefix, what);
    return n < 0 ? 0 : std::min(static_cast<size_t>(n), sizeof buf - 1);
}

void log_failure(const rl_request_t *req, const char *where, const char *what) noexcept {
    char prefix[64];
    std::snprintf(prefix, sizeof prefix, "internal error in %s", where);
    char buf[512];
    size_t n = format_failure(buf, prefix, what);
    try {
        req->req.context().log(RL_LOG_ERR, std::string_view(buf, n));
    } catch (...) {
        // Nothing more can be done without memory.
    }
}

template <typename F>
rl_status_t guarded(rl_request_t *req, const char *where, F &&f) noexcept {
    try {
        f();
        return RL_OK;
    } catch (const std::exception &e) {
        log_failure(req, where, e.what());
    } catch (...) {
        log_failure(req, where, "unknown exception");
    }
    return RL_ERROR;
}

}  // namespace

extern "C" {

rl_status_t rl_core_new(rl_core_t **out, const rl_core_conf_t *conf) noexcept {
    if (out == nullptr) {
        return RL_ERROR;
    }
    *out = nullptr;
    try {
        auto core = std::make_unique<rl_core_s>();
        static constexpr rl_core_conf_t kDefaults{};
        const rl_core_conf_t &c = conf != nullptr ? *conf : kDefaults;
        core->conf.environment = conf_string(c.environment, relyloop::defaults::kEnvironment);
        core->conf.secrets_dir = conf_string(c.secrets_dir, relyloop::defaults::kSecretsDir);
        core->conf.github_web_url =
            conf_string(c.github_web_url, relyloop::defaults::kGithubWebUrl);
        core->conf.github_web_url.resize(
            relyloop::strip_trailing_slashes(core->conf.github_web_url, 1).size());
        if (c.webhook_replay_window_s > 0) {
            core->conf.webhook_replay_window_s = c.webhook_replay_window_s;
        }
        // Built (and checked) once now rather than on the first request.
        (void)relyloop::core::openapi_body();
        *out = core.release();
        return RL_OK;
    } catch (...) {
        return RL_ERROR;  // no log callback yet: the shim logs the failure
    }
}

void rl_core_free(rl_core_t *core) noexcept { delete core; }

rl_status_t rl_web_url_check(size_t *base_len, rl_str_t url) noexcept {
    if (base_len == nullptr || url.data == nullptr) {
        return RL_ERROR;
    }
    // normalize_web_url is noexcept and allocates nothing.
    auto base = relyloop::normalize_web_url(std::string_view(url.data, url.len));
    if (!base) {
        return RL_ERROR;
    }
    *base_len = base->size();
    return RL_OK;
}

size_t rl_route_count(void) noexcept { return relyloop::core::routes().size(); }

const char *rl_route_path(size_t i) noexcept {
    auto table = relyloop::core::routes();
    return i < table.size() ? table[i].path : nullptr;
}

int rl_route_index(const rl_core_t *core, rl_str_t method, rl_str_t raw_path) noexcept {
    (void)method;  // a route's label covers all its methods
    if (core == nullptr || raw_path.data == nullptr) {
        return -1;
    }
    try {
        const relyloop::core::RouteDef *route = relyloop::core::find_route(
            std::string_view(raw_path.data, raw_path.len), core->conf.development());
        return route != nullptr ? static_cast<int>(route - relyloop::core::routes().data()) : -1;
    } catch (...) {
        return -1;  // only a metrics label is lost; the request itself logs failures
    }
}

size_t rl_core_statements(const rl_statement_t **out) noexcept {
    auto table = relyloop::core::db::statements();
    if (out != nullptr) {
        *out = table.data();
    }
    return table.size();
}

rl_status_t rl_request_new(rl_request_t **out, rl_core_t *core, const rl_http_request_t *in,
                           rl_log_cb log, void *log_data) noexcept {
    if (out == nullptr) {
        return RL_ERROR;
    }
    *out = nullptr;
    if (core == nullptr || in == nullptr) {
        return RL_ERROR;
    }
    try {
        *out = new rl_request_s(core->conf, *in, log, log_data);
        return RL_OK;
    } catch (const std::exception &e) {
        if (log != nullptr) {
            char buf[512];
            size_t n = format_failure(buf, "internal error creating a request", e.what());
            log(RL_LOG_ERR, buf, n, log_data);
        }
    } catch (...) {
        if (log != nullptr) {
            char buf[512];
            size_t n =
                format_failure(buf, "internal error creating a request", "unknown exception");
            log(RL_LOG_ERR, buf, n, log_data);
        }
    }
    return RL_ERROR;
}

void rl_request_free(rl_request_t *req) noexcept { delete req; }

int rl_request_wants_body(const rl_request_t *req) noexcept {
    return req != nullptr && req->req.wants_body() ? 1 : 0;
}

void rl_request_set_body(rl_request_t *req, const char *data, size_t len) noexcept {
    if (req == nullptr) {
        return;
    }
    (void)guarded(req, "set_body", [&] {
        req->req.set_body(data != nullptr ? std::string_view(data, len) : std::string_view());
    });
}

void rl_request_set_http_error(rl_request_t *req, int status) noexcept {
    if (req != nullptr) {
        req->req.set_http_error(status);
    }
}

rl_status_t rl_request_step(rl_request_t *req, rl_step_t *out) noexcept {
    if (req == nullptr || out == nullptr) {
        return RL_ERROR;
    }
    return guarded(req, "step", [&] { req->req.step(out); });
}

void rl_request_query_result(rl_request_t *req, struct pg_result *res) noexcept {
    if (req == nullptr) {
        relyloop::PgResult dropped(res);  // the result is ours either way
        return;
    }
    (void)guarded(req, "query_result", [&] { req->req.query_result(res); });
}

void rl_request_query_failed(rl_request_t *req, rl_db_failure_t why, const char *detail) noexcept {
    if (req == nullptr) {
        return;
    }
    (void)guarded(req, "query_failed", [&] { req->req.query_failed(why, detail); });
}

void rl_request_worker_reply(rl_request_t *req, const char *line, size_t len) noexcept {
    if (req == nullptr) {
        return;
    }
    (void)guarded(req, "worker_reply", [&] {
        req->req.worker_reply(line != nullptr ? std::string_view(line, len) : std::string_view());
    });
}

void rl_request_worker_failed(rl_request_t *req, const char *detail) noexcept {
    if (req == nullptr) {
        return;
    }
    (void)guarded(req, "worker_failed", [&] { req->req.worker_failed(detail); });
}

const char *rl_internal_error_body(size_t *len) noexcept {
    if (len != nullptr) {
        *len = sizeof kInternalErrorBody - 1;
    }
    return kInternalErrorBody;
}

size_t rl_worker_line_max(void) noexcept { return relyloop::worker_protocol::kMaxLine; }

rl_str_t rl_worker_metrics_request(void) noexcept {
    std::string_view line = relyloop::worker_protocol::kMetricsRequest;
    return {line.data(), line.size()};
}

rl_status_t rl_worker_metrics_reply(const char *line, size_t len, char *out,
                                    size_t *out_len) noexcept {
    if (line == nullptr || out == nullptr || out_len == nullptr) {
        return RL_ERROR;
    }
    try {
        std::optional<relyloop::worker_protocol::MetricsReply> reply =
            relyloop::worker_protocol::parse_metrics_reply(std::string_view(line, len));
        if (!reply || reply->text.size() > len) {
            return RL_ERROR;
        }
        std::memcpy(out, reply->text.data(), reply->text.size());
        *out_len = reply->text.size();
        return RL_OK;
    } catch (...) {
        // Out of memory while parsing: the shim logs the reply as invalid.
        return RL_ERROR;
    }
}

}  // extern "C"
