#pragma once

// The per-endpoint state machines. A handler reads like the endpoint's story:
// start() validates the request and asks for a statement; on_rows() turns the
// result into the response (or asks for the next step). Request (request.cpp)
// drives them and owns everything the shim sees.

#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/responses.hpp"
#include "api/router.hpp"
#include "api/uri.hpp"
#include "common/defaults.hpp"
#include "common/error.hpp"
#include "common/sql_param.hpp"
#include "db/statements.hpp"
#include "relyloop/core.h"

namespace relyloop::core {

struct CoreConf {
    std::string environment;
    std::string secrets_dir;
    std::string github_web_url;
    long long webhook_replay_window_s = defaults::kWebhookReplayWindowS;

    [[nodiscard]] bool development() const noexcept { return environment == "development"; }
};

// What a handler wants next.
struct Action {
    enum class Kind { kQuery, kWorker, kRespond };

    Kind kind = Kind::kRespond;
    db::Stmt stmt = db::Stmt::kHealthPing;
    std::vector<Param> params;
    bool isolated = false;  // a write (see rl_step_t.isolated)
    std::string line;       // worker request line, ending '\n'
    Response response;

    [[nodiscard]] static Action query(db::Stmt s, std::vector<Param> p) {
        Action a;
        a.kind = Kind::kQuery;
        a.stmt = s;
        a.params = std::move(p);
        return a;
    }
    [[nodiscard]] static Action write(db::Stmt s, std::vector<Param> p) {
        Action a = query(s, std::move(p));
        a.isolated = true;
        return a;
    }
    [[nodiscard]] static Action worker(std::string l) {
        Action a;
        a.kind = Kind::kWorker;
        a.line = std::move(l);
        return a;
    }
    [[nodiscard]] static Action respond(Response r) {
        Action a;
        a.response = std::move(r);
        return a;
    }
    [[nodiscard]] static Action error(ErrorCode code, std::string_view message) {
        return respond(error_response(code, message));
    }
    // `<what> "<id>" not found`, e.g. not_found(kClusterNotFound, "Cluster", id).
    [[nodiscard]] static Action not_found(ErrorCode code, std::string_view what,
                                          std::string_view id) {
        std::string message(what);
        message += " \"";
        message += id;
        message += "\" not found";
        return error(code, message);
    }
};

// A failed statement: the shim could not run it, or PostgreSQL refused it.
struct DbFailure {
    enum class Kind { kUnavailable, kOverloaded, kTimeout, kStatement, kAborted };
    Kind kind = Kind::kUnavailable;
    std::string sqlstate;    // kStatement only
    std::string constraint;  // kStatement only
    std::string detail;      // for the error log (redacted before logging)
};

// What handlers may look at and use.
class Context {
  public:
    Context(const CoreConf &conf, std::string request_id, std::string id, std::string_view args,
            rl_log_cb log, void *log_data)
        : conf_(&conf),
          request_id_(std::move(request_id)),
          id_(std::move(id)),
          args_(args),
          log_(log),
          log_data_(log_data) {}

    [[nodiscard]] const CoreConf &conf() const noexcept { return *conf_; }
    [[nodiscard]] const std::string &request_id() const noexcept { return request_id_; }
    // The decoded {id} of the path (valid_id_text), empty for other routes.
    [[nodiscard]] const std::string &id() const noexcept { return id_; }
    [[nodiscard]] const QueryArgs &args() const noexcept { return args_; }
    [[nodiscard]] std::string_view body() const noexcept { return body_; }

    void set_body(std::string_view body) { body_.assign(body.data(), body.size()); }
    void set_id(std::string id) { id_ = std::move(id); }

    // One log line through the shim's callback, redacted (docs/security.md).
    void log(rl_log_level_t level, std::string_view msg) const;

  private:
    const CoreConf *conf_;
    std::string request_id_;
    std::string id_;
    QueryArgs args_;
    std::string body_;
    rl_log_cb log_;
    void *log_data_;
};

class Handler {
  public:
    explicit Handler(Endpoint endpoint) noexcept : endpoint_(endpoint) {}
    virtual ~Handler() = default;
    Handler(const Handler &) = delete;
    Handler &operator=(const Handler &) = delete;

    // The first step, after the body (if any) arrived.
    virtual Action start(Context &ctx) = 0;
    // The rows of the last statement (PGRES_TUPLES_OK or PGRES_COMMAND_OK).
    virtual Action on_rows(Context &ctx, const PGresult *res);
    // The last statement failed. Default: the endpoint's mapping of
    // db_error_code(), 5xx logged with the detail.
    virtual Action on_db_error(Context &ctx, const DbFailure &failure);
    // The worker's reply line, or nullptr with a reason when it failed.
    virtual Action on_worker(Context &ctx, const std::string *reply, std::string_view failure);

  protected:
    // The message of a 409/404 that a statement failure maps to.
    virtual std::string conflict_message(ErrorCode code);

  private:
    Endpoint endpoint_;
};

// The handler of an endpoint (never nullptr for a real endpoint).
[[nodiscard]] std::unique_ptr<Handler> make_handler(Endpoint e);

// Per-resource factories (api/<resource>.cpp).
[[nodiscard]] std::unique_ptr<Handler> make_config_repo_handler(Endpoint e);
[[nodiscard]] std::unique_ptr<Handler> make_cluster_handler(Endpoint e);
[[nodiscard]] std::unique_ptr<Handler> make_template_handler(Endpoint e);
[[nodiscard]] std::unique_ptr<Handler> make_study_handler(Endpoint e);
[[nodiscard]] std::unique_ptr<Handler> make_proposal_handler(Endpoint e);
[[nodiscard]] std::unique_ptr<Handler> make_open_pr_handler();
[[nodiscard]] std::unique_ptr<Handler> make_seed_handler();
[[nodiscard]] std::unique_ptr<Handler> make_health_handler();
[[nodiscard]] std::unique_ptr<Handler> make_openapi_handler();

// Statement-failure → API error, per endpoint (the seam the unit tests use):
// unique violations of the endpoint's name constraint become its 409,
// foreign-key violations of a referenced row its 404, connection trouble,
// cancellation (statement_timeout) and serialization failures 503
// DATABASE_UNAVAILABLE, anything else 500 INTERNAL_ERROR.
[[nodiscard]] ErrorCode db_error_code(Endpoint e, std::string_view sqlstate,
                                      std::string_view constraint) noexcept;
[[nodiscard]] ErrorCode db_error_code(Endpoint e, const DbFailure &f) noexcept;

// Reads the SQLSTATE, constraint and message of a failed result.
[[nodiscard]] DbFailure db_failure_from_result(const PGresult *res);

// A worker reply for a log line: at most 200 bytes, quoted.
[[nodiscard]] std::string worker_reply_excerpt(std::string_view reply);

// Fails with INTERNAL_ERROR unless res has at least ncols columns.
void expect_columns(const PGresult *res, int ncols);
// The same, and exactly one row (an INSERT ... RETURNING and the like); `what`
// names the statement in the error.
void expect_one_row(const PGresult *res, int ncols, const char *what);

}  // namespace relyloop::core
