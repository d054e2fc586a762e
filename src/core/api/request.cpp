#include "api/request.hpp"

#include <cstring>
#include <new>
#include <stdexcept>

#include "api/router.hpp"
#include "api/validation.hpp"
#include "api/webhook.hpp"
#include "common/json_writer.hpp"
#include "common/raii.hpp"

namespace relyloop::core {

namespace {

std::string_view view(rl_str_t s) {
    return s.data != nullptr ? std::string_view(s.data, s.len) : std::string_view();
}

// A method name safe to echo: nginx only parses [A-Z_-] methods, but the
// message must stay valid JSON whatever the shim passes.
bool plain_token(std::string_view s) {
    if (s.empty() || s.size() > 32) {
        return false;
    }
    for (char c : s) {
        if (!((c >= 'A' && c <= 'Z') || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

}  // namespace

Request::Request(const CoreConf &conf, const rl_http_request_t &in, rl_log_cb log, void *log_data)
    : ctx_(conf, pick_request_id(view(in.request_id)), std::string(), view(in.args), log, log_data),
      method_(view(in.method)),
      path_(view(in.raw_path)) {
    cors_.allowed = in.cors_enabled != 0 && in.cors_allowed != 0 && in.origin.len > 0;
    if (cors_.allowed) {
        cors_.origin.assign(view(in.origin));
    }
    if (in.http_error != 0) {
        // an error_page redirect: the path may be any URI, or none at all
        respond_early(http_error_response(in.http_error));
        return;
    }
    if (in.webhook != 0) {
        // No router and no CORS: the location serves one path (docs/webhooks.md).
        if (method_ != "POST") {
            Response r = error_response(ErrorCode::kMethodNotAllowed,
                                        plain_token(method_) ? "Method " + method_ + " not allowed"
                                                             : std::string("Method not allowed"));
            r.allow = "POST";
            respond_early(std::move(r));
            return;
        }
        handler_ =
            make_webhook_handler(view(in.gh_delivery), view(in.gh_event), view(in.gh_signature));
        wants_body_ = true;
        return;
    }
    if (method_ == "OPTIONS" && cors_.allowed) {
        Response r;
        r.status = 204;
        r.preflight = true;
        respond_early(std::move(r));
        return;
    }
    RouteMatch m = match_route(method_, path_, conf.development());
    switch (m.kind) {
        case RouteMatch::Kind::kNoRoute:
            respond_early(error_response(ErrorCode::kResourceNotFound, "Resource not found"));
            return;
        case RouteMatch::Kind::kMethodNotAllowed: {
            Response r = error_response(ErrorCode::kMethodNotAllowed,
                                        plain_token(method_) ? "Method " + method_ + " not allowed"
                                                             : std::string("Method not allowed"));
            r.allow = m.route->allow;
            respond_early(std::move(r));
            return;
        }
        case RouteMatch::Kind::kOptions: {
            Response r;
            r.status = 204;
            r.allow = m.route->allow;
            respond_early(std::move(r));
            return;
        }
        case RouteMatch::Kind::kBadId:
            respond_early(
                error_response(m.route->not_found, not_found_message(m.route->not_found)));
            return;
        case RouteMatch::Kind::kEndpoint:
            break;
    }
    if (endpoint_takes_body(m.endpoint)) {
        // Only JSON bodies: a cross-site form or text/plain POST is refused
        // before its body is read. A body-less POST (open_pr, reject) may
        // omit the type (docs/api.md, "JSON in and out").
        std::string_view type = view(in.content_type);
        if (type.empty() ? in.has_body != 0 : !json_media_type(type)) {
            respond_early(error_response(ErrorCode::kUnsupportedMediaType,
                                         "Request body must be sent as application/json"));
            return;
        }
    }
    ctx_.set_id(std::move(m.id));
    handler_ = make_handler(m.endpoint);
    wants_body_ = endpoint_takes_body(m.endpoint);
}

void Request::set_body(std::string_view body) {
    if (phase_ == Phase::kNotStarted) {
        ctx_.set_body(body);
    }
}

void Request::set_http_error(int status) {
    if (phase_ == Phase::kNotStarted) {
        http_error_ = status;
    }
}

void Request::respond_early(Response r) {
    phase_ = Phase::kDone;
    adopt(Action::respond(std::move(r)));
}

std::string Request::where() const {
    return " (method " + json::quote(method_) + ", path " + json::quote(path_) + ", request id " +
           json::quote(ctx_.request_id()) + ")";
}

void Request::log_client_error(const Response &r) const {
    ctx_.log(RL_LOG_INFO, "client error " + std::to_string(r.status) + " " +
                              json::quote(r.error_code) + ": " + json::quote(r.message) + where());
}

void Request::adopt(Action a) {
    current_ = std::move(a);
    param_ptrs_.clear();
    switch (current_.kind) {
        case Action::Kind::kQuery: {
            const rl_statement_t &st = db::statement(current_.stmt);
            if (static_cast<int>(current_.params.size()) != st.nparams) {
                throw std::logic_error(std::string("parameter count mismatch for ") + st.name);
            }
            param_ptrs_.reserve(current_.params.size());
            for (const Param &p : current_.params) {
                param_ptrs_.push_back(p ? p->c_str() : nullptr);
            }
            phase_ = Phase::kWaitQuery;
            return;
        }
        case Action::Kind::kWorker:
            phase_ = Phase::kWaitWorker;
            return;
        case Action::Kind::kRespond:
            phase_ = Phase::kDone;
            headers_.build(current_.response, ctx_.request_id(), cors_);
            if (current_.response.status >= 400 && current_.response.status < 500) {
                log_client_error(current_.response);
            }
            return;
    }
}

void Request::fail_internal(std::string_view what) {
    ctx_.log(RL_LOG_ERR, "internal error: " + json::quote(what) + where());
    adopt(Action::error(ErrorCode::kInternalError, "Internal server error"));
}

template <typename F>
void Request::run(F &&next) {
    try {
        adopt(next());
    } catch (const Error &e) {
        adopt(Action::error(e.code(), e.what()));
    } catch (const std::bad_alloc &) {
        fail_internal("out of memory");
    } catch (const std::exception &e) {
        fail_internal(e.what());
    }
}

void Request::step(rl_step_t *out) {
    if (phase_ == Phase::kNotStarted) {
        if (http_error_ != 0) {
            adopt(Action::respond(http_error_response(http_error_)));
        } else {
            run([&] { return handler_->start(ctx_); });
        }
    }
    std::memset(out, 0, sizeof *out);
    switch (current_.kind) {
        case Action::Kind::kQuery:
            out->kind = RL_STEP_QUERY;
            out->stmt = static_cast<int>(current_.stmt);
            out->nparams = static_cast<int>(param_ptrs_.size());
            out->param_values = param_ptrs_.empty() ? nullptr : param_ptrs_.data();
            out->isolated = current_.isolated ? 1 : 0;
            return;
        case Action::Kind::kWorker:
            out->kind = RL_STEP_WORKER;
            out->line = {current_.line.data(), current_.line.size()};
            return;
        case Action::Kind::kRespond: {
            const Response &r = current_.response;
            out->kind = RL_STEP_RESPOND;
            out->status = r.status;
            out->headers = headers_.data();
            out->nheaders = headers_.size();
            out->body = {r.body.data(), r.body.size()};
            return;
        }
    }
}

void Request::query_result(PGresult *raw) {
    PgResult res(raw);
    if (phase_ != Phase::kWaitQuery) {
        ctx_.log(RL_LOG_WARN, "statement result while not waiting for one, dropped");
        return;
    }
    if (!res) {
        DbFailure f;
        f.kind = DbFailure::Kind::kUnavailable;
        f.detail = "no result";
        run([&] { return handler_->on_db_error(ctx_, f); });
        return;
    }
    switch (PQresultStatus(res.get())) {
        case PGRES_TUPLES_OK:
        case PGRES_COMMAND_OK:
            run([&] { return handler_->on_rows(ctx_, res.get()); });
            return;
        case PGRES_PIPELINE_ABORTED: {
            DbFailure f;
            f.kind = DbFailure::Kind::kAborted;
            f.detail = "an earlier statement of the pipeline failed";
            run([&] { return handler_->on_db_error(ctx_, f); });
            return;
        }
        default: {
            DbFailure f = db_failure_from_result(res.get());
            if (f.detail.empty()) {
                f.detail = PQresStatus(PQresultStatus(res.get()));
            }
            run([&] { return handler_->on_db_error(ctx_, f); });
            return;
        }
    }
}

void Request::query_failed(rl_db_failure_t why, const char *detail) {
    if (phase_ != Phase::kWaitQuery) {
        return;
    }
    DbFailure f;
    switch (why) {
        case RL_DB_OVERLOADED:
            f.kind = DbFailure::Kind::kOverloaded;
            break;
        case RL_DB_TIMEOUT:
            f.kind = DbFailure::Kind::kTimeout;
            break;
        default:
            f.kind = DbFailure::Kind::kUnavailable;
            break;
    }
    f.detail = detail != nullptr ? detail : "";
    run([&] { return handler_->on_db_error(ctx_, f); });
}

void Request::worker_reply(std::string_view line) {
    if (phase_ != Phase::kWaitWorker) {
        return;
    }
    std::string reply(line);
    run([&] { return handler_->on_worker(ctx_, &reply, {}); });
}

void Request::worker_failed(const char *detail) {
    if (phase_ != Phase::kWaitWorker) {
        return;
    }
    std::string_view why = detail != nullptr && *detail != '\0' ? detail : "no reply";
    run([&] { return handler_->on_worker(ctx_, nullptr, why); });
}

}  // namespace relyloop::core
