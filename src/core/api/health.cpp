// GET /api/v1/health: the database, then the worker (pinged even when the
// database is down, so the answer names every failing part).

#include "api/crud.hpp"
#include "api/responses.hpp"
#include "common/json_writer.hpp"

namespace relyloop::core {

namespace {

bool ping_ok(std::string_view reply) {
    json_error_t err;
    Json j(json_loadb(reply.data(), reply.size(), 0, &err));
    return j && json_is_object(j.get()) && json_is_true(json_object_get(j.get(), "ok"));
}

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
        bool worker_ok = reply != nullptr && ping_ok(*reply);
        if (!worker_ok) {
            std::string why = reply != nullptr ? "bad reply " + json::quote(reply->substr(0, 200))
                                               : json::quote(failure);
            ctx.log(RL_LOG_ERR, "health: worker unavailable: " + why);
        }
        Json body(db::new_object());
        json_t *b = body.get();
        bool ok = database_ok_ && worker_ok;
        db::put(b, "status", db::new_string(ok ? "ok" : "degraded"));
        db::put(b, "database", db::new_string(database_ok_ ? "ok" : "unavailable"));
        db::put(b, "worker", db::new_string(worker_ok ? "ok" : "unavailable"));
        if (ok) {
            return Action::respond(json_response(200, b));
        }
        const char *code = database_ok_ ? "QUEUE_UNAVAILABLE" : "DATABASE_UNAVAILABLE";
        const char *message = !database_ok_ && !worker_ok ? "Database and worker unavailable"
                              : !database_ok_             ? "Database unavailable"
                                                          : "Worker unavailable";
        json_t *detail = db::new_object();
        db::put(b, "detail", detail);
        db::put(detail, "error_code", db::new_string(code));
        db::put(detail, "message", db::new_string(message));
        db::put(detail, "retryable", json_true());
        return Action::respond(json_response(503, b));
    }

  private:
    static Action ping() { return Action::worker("{\"op\":\"ping\"}\n"); }

    bool database_ok_ = false;
};

}  // namespace

std::unique_ptr<Handler> make_health_handler() { return std::make_unique<HealthHandler>(); }

}  // namespace relyloop::core
