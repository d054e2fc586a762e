#pragma once

// One API request as the shim drives it (core.h): route, then handler steps
// until a response. Everything a step points to lives here until the next
// call on the request.

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "api/handler.hpp"
#include "api/responses.hpp"
#include "relyloop/core.h"

namespace relyloop::core {

class Request {
  public:
    Request(const CoreConf &conf, const rl_http_request_t &in, rl_log_cb log, void *log_data);
    Request(const Request &) = delete;
    Request &operator=(const Request &) = delete;

    [[nodiscard]] bool wants_body() const noexcept { return wants_body_; }
    void set_body(std::string_view body);
    void set_http_error(int status);

    void step(rl_step_t *out);

    // Outcome of an RL_STEP_QUERY; takes ownership of res.
    void query_result(PGresult *res);
    void query_failed(rl_db_failure_t why, const char *detail);
    // Outcome of an RL_STEP_WORKER.
    void worker_reply(std::string_view line);
    void worker_failed(const char *detail);

    [[nodiscard]] const Context &context() const noexcept { return ctx_; }

  private:
    enum class Phase { kNotStarted, kWaitQuery, kWaitWorker, kDone };

    template <typename F>
    void run(F &&next);
    void adopt(Action a);
    void respond_early(Response r);
    void fail_internal(std::string_view what);
    void log_client_error(const Response &r) const;
    [[nodiscard]] std::string where() const;

    Context ctx_;
    std::string method_;
    std::string path_;
    CorsState cors_;
    std::unique_ptr<Handler> handler_;
    bool wants_body_ = false;
    int http_error_ = 0;
    Phase phase_ = Phase::kNotStarted;
    Action current_;
    std::vector<const char *> param_ptrs_;
    HeaderList headers_;
};

}  // namespace relyloop::core
