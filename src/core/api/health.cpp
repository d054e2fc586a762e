// GET /api/v1/health: the database, then the worker (pinged even when the
// database is down, so the answer names every failing part).

#include "api/crud.hpp"
#include "api/responses.hpp"
#include "common/json_writer.hpp"
#include "common/worker_protocol.hpp"

namespace relyloop::core {

namespace {

class HealthHandler : public Handler {
  public:
    HealthHandler() : Handler(Endpoint::kHealth) {}

    Action start(Context &) override { return Action::query(db::Stmt::kHealthPing, {}); }

    Action on_rows(Context &, const PGresult *) override {
        database_ok_ = true;
        return ping();
    }

    Action on_db_error(Context &ctx, const DbFailure &f) override {
        ctx.log(RL_LOG_ERR, "health: database unavailable: " + json::quote(f.detail));
        database_ok_ = false;
        return ping();
    }

    Action on_worker(Context &ctx, const std::string *reply, std::string_view failure) override {
        bool worker_ok = reply != nullptr && worker_protocol::parse_ping_reply(*reply).has_value();
        if (!worker_ok) {
            std::string why = reply != nullptr ? "bad reply " + worker_reply_excerpt(*reply)
                                               : json::quote(failure);
            ctx.log(RL_LOG_ERR, "health: worker unavailable: " + why);
        }
        bool ok = database_ok_ && worker_ok;
        std::string body = R"({"status":")";
        body += ok ? "ok" : "degraded";
        body += R"(","database":")";
        body += database_ok_ ? "ok" : "unavailable";
        body += R"(","worker":")";
        body += worker_ok ? "ok" : "unavailable";
        body += '"';
        if (ok) {
            body += '}';
            return Action::respond(json_response(200, std::move(body)));
        }
        // The health object plus the error envelope's "detail".
        Response r = error_response(
            database_ok_ ? ErrorCode::kQueueUnavailable : ErrorCode::kDatabaseUnavailable,
            !database_ok_ && !worker_ok ? "Database and worker unavailable"
            : !database_ok_             ? "Database unavailable"
                                        : "Worker unavailable");
        body += ',';
        body.append(r.body, 1);  // {"detail":{...}} without its '{'
        r.body = std::move(body);
        return Action::respond(std::move(r));
    }

  private:
    static Action ping() {
        return Action::worker(
            worker_protocol::encode_request({worker_protocol::Op::kPing, {}, {}}));
    }

    bool database_ok_ = false;
};

}  // namespace

std::unique_ptr<Handler> make_health_handler() { return std::make_unique<HealthHandler>(); }

}  // namespace relyloop::core
