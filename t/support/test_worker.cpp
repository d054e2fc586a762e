// relyloop-test-worker: the worker daemon with a scripted Pipeline instead of
// the PR pipeline. A test double for the job-runner integration tests only
// (t/worker_*.t); never installed or shipped.
//
// Behaviour per proposal comes from the control directory named by
// RELYLOOP_TEST_PIPELINE_DIR: the first line of `<dir>/<proposal_id>`, else of
// `<dir>/default`, else "succeed":
//   succeed              docs/worker.md step 12's conditional update; pr_url
//                        https://github.com/test/test/pull/<n>
//   fail CODE message    PipelineOutcome::kFailed with that error code
//   block                wait until the cancel flag is set (→ kCancelled) or
//                        the file `<dir>/release-<proposal_id>` exists (→ succeed)
//   sleep MS             wait MS milliseconds (cancel-aware), then succeed
//   sleep MS fail CODE message   the same, then fail
//   notpending           PipelineOutcome::kNotPending
// Every run appends one JSON line at start and one at end to `<dir>/calls.log`
// with single O_APPEND writes, so several workers can share the file.

#include <fcntl.h>
#include <jansson.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "commands.hpp"
#include "common/error.hpp"
#include "common/raii.hpp"
#include "db.hpp"
#include "event_log.hpp"
#include "pipeline.hpp"

namespace relyloop::worker::test {

namespace {

long long now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

bool safe_name(const std::string &s) {
    if (s.empty() || s.size() > 128 || s[0] == '.') {
        return false;
    }
    for (char c : s) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) {
            return false;
        }
    }
    return true;
}

std::string first_line(const std::string &path) {
    std::ifstream in(path);
    std::string line;
    if (!in || !std::getline(in, line)) {
        return {};
    }
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
        line.pop_back();
    }
    return line;
}

bool file_exists(const std::string &path) { return access(path.c_str(), F_OK) == 0; }

bool error_code_from_name(const std::string &name, ErrorCode *out) {
    for (int i = 0; i <= static_cast<int>(ErrorCode::kJobTimeout); i++) {
        auto c = static_cast<ErrorCode>(i);
        if (error_code_name(c) == name) {
            *out = c;
            return true;
        }
    }
    return false;
}

class TestPipeline final : public Pipeline {
  public:
    TestPipeline(std::string dir, EventLog &log) : dir_(std::move(dir)), log_(log) {}

    PipelineResult run(const JobContext &ctx) noexcept override {
        try {
            return run_script(ctx);
        } catch (const std::exception &e) {
            PipelineResult r;
            r.outcome = PipelineOutcome::kFailed;
            r.code = ErrorCode::kInternalError;
            r.message = std::string("test pipeline: ") + e.what();
            return r;
        }
    }

  private:
    PipelineResult run_script(const JobContext &ctx) {
        std::string script = behaviour(ctx.proposal_id);
        long long started = now_ms();
        record(ctx, "start", script, started, nullptr, locks_held(ctx.db));
        ctx.report("test_pipeline_running");

        PipelineResult res;
        std::istringstream words(script);
        std::string verb;
        words >> verb;
        if (verb == "sleep") {
            long long ms = 0;
            words >> ms;
            if (!wait_until(ctx, now_ms() + ms, {})) {
                res.outcome = PipelineOutcome::kCancelled;
                return finish(ctx, script, started, res);
            }
            if (!(words >> verb)) {
                verb = "succeed";
            }
        }
        if (verb == "hang") {
            // Stuck where the cancel flag cannot reach (a blocking call):
            // sleeps MS ms regardless, then stops at the next step boundary.
            long long ms = 0;
            words >> ms;
            std::this_thread::sleep_for(std::chrono::milliseconds(ms));
            if (ctx.cancelled()) {
                res.outcome = PipelineOutcome::kCancelled;
                return finish(ctx, script, started, res);
            }
            verb = "succeed";
        }
        if (verb == "block") {
            std::string release = dir_ + "/release-" + ctx.proposal_id;
            if (!wait_until(ctx, -1, release)) {
                res.outcome = PipelineOutcome::kCancelled;
                return finish(ctx, script, started, res);
            }
            verb = "succeed";
        }
        if (verb == "fail") {
            std::string code;
            words >> code;
            std::string message;
            std::getline(words, message);
            if (!message.empty() && message[0] == ' ') {
                message.erase(0, 1);
            }
            res.outcome = PipelineOutcome::kFailed;
            if (!error_code_from_name(code, &res.code)) {
                res.code = ErrorCode::kInternalError;
                message = "unknown code " + code + ": " + message;
            }
            res.message = message.empty() ? "scripted failure" : message;
        } else if (verb == "notpending") {
            log_.info("pr_open_proposal_no_longer_pending",
                      {{"job_id", ctx.job_id}, {"proposal_id", ctx.proposal_id}});
            res.outcome = PipelineOutcome::kNotPending;
        } else {
            res = open_pr(ctx, started);
        }
        return finish(ctx, script, started, res);
    }

    // docs/worker.md, Pipeline steps 12.
    PipelineResult open_pr(const JobContext &ctx, long long started) {
        PipelineResult res;
        PgResult r = db::exec(ctx.db, R"SQL(
UPDATE proposals
SET status = 'pr_opened',
    pr_url = 'https://github.com/test/test/pull/' ||
             (SELECT count(*) + 1 FROM proposals WHERE pr_url IS NOT NULL),
    pr_state = 'open',
    pr_open_error = NULL
WHERE id = $1 AND status = 'pending'
RETURNING pr_url
)SQL",
                              {ctx.proposal_id});
        res.branch = "relyloop/proposal-" + ctx.proposal_id;
        if (PQntuples(r.get()) == 0) {
            log_.info("pr_open_proposal_no_longer_pending",
                      {{"job_id", ctx.job_id}, {"proposal_id", ctx.proposal_id}});
            res.outcome = PipelineOutcome::kNotPending;
            return res;
        }
        res.outcome = PipelineOutcome::kOpened;
        res.pr_url = db::get_or(r.get(), 0, 0);
        log_.info("pr_open_complete", {{"job_id", ctx.job_id},
                                       {"proposal_id", ctx.proposal_id},
                                       {"config_repo_id", ctx.config_repo_id},
                                       {"branch", res.branch},
                                       {"pr_url", res.pr_url},
                                       {"duration_ms", now_ms() - started}});
        return res;
    }

    // False when cancelled first. deadline_ms < 0: no deadline.
    bool wait_until(const JobContext &ctx, long long deadline_ms, const std::string &file) {
        for (;;) {
            if (ctx.cancelled()) {
                return false;
            }
            if (deadline_ms >= 0 && now_ms() >= deadline_ms) {
                return true;
            }
            if (!file.empty() && file_exists(file)) {
                return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }

    PipelineResult finish(const JobContext &ctx, const std::string &script, long long started,
                          const PipelineResult &res) {
        const char *outcome = "failed";
        switch (res.outcome) {
            case PipelineOutcome::kOpened:
                outcome = "opened";
                break;
            case PipelineOutcome::kNotPending:
                outcome = "not_pending";
                break;
            case PipelineOutcome::kFailed:
                outcome = "failed";
                break;
            case PipelineOutcome::kCancelled:
                outcome = "cancelled";
                break;
            case PipelineOutcome::kDryRun:
                outcome = "dry_run";
                break;
        }
        record(ctx, "end", script, started, outcome, -1);
        return res;
    }

    std::string behaviour(const std::string &proposal_id) const {
        if (dir_.empty()) {
            return "succeed";
        }
        std::string b;
        if (safe_name(proposal_id)) {
            b = first_line(dir_ + "/" + proposal_id);
        }
        if (b.empty()) {
            b = first_line(dir_ + "/default");
        }
        return b.empty() ? "succeed" : b;
    }

    static long long locks_held(PGconn *conn) {
        try {
            PgResult r = db::exec(conn, R"SQL(
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
)SQL");
            return db::get_int(r.get(), 0, 0, -1);
        } catch (...) {
            return -1;
        }
    }

    void record(const JobContext &ctx, const char *phase, const std::string &script,
                long long started, const char *outcome, long long locks) {
        if (dir_.empty()) {
            return;
        }
        Json obj(json_object());
        json_object_set_new(obj.get(), "phase", json_string(phase));
        json_object_set_new(obj.get(), "proposal_id", json_string(ctx.proposal_id.c_str()));
        json_object_set_new(obj.get(), "job_id", json_string(ctx.job_id.c_str()));
        json_object_set_new(obj.get(), "config_repo_id", json_string(ctx.config_repo_id.c_str()));
        json_object_set_new(obj.get(), "attempt", json_integer(ctx.attempt));
        json_object_set_new(obj.get(), "pid", json_integer(getpid()));
        json_object_set_new(obj.get(), "behaviour", json_string(script.c_str()));
        json_object_set_new(obj.get(), "start_ms", json_integer(started));
        if (outcome != nullptr) {
            json_object_set_new(obj.get(), "end_ms", json_integer(now_ms()));
            json_object_set_new(obj.get(), "outcome", json_string(outcome));
        } else {
            json_object_set_new(obj.get(), "advisory_locks", json_integer(locks));
        }
        CString text(json_dumps(obj.get(), JSON_COMPACT | JSON_PRESERVE_ORDER));
        if (!text) {
            return;
        }
        std::string line = std::string(text.get()) + "\n";
        int fd =
            ::open((dir_ + "/calls.log").c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            return;
        }
        ssize_t n = ::write(fd, line.data(), line.size());
        (void)n;
        ::close(fd);
    }

    std::string dir_;
    EventLog &log_;
};

}  // namespace

}  // namespace relyloop::worker::test

int main(int argc, char **argv) {
    using namespace relyloop::worker;
    return worker_main(
        argc, argv, [](const Settings &, EventLog &log) -> std::unique_ptr<Pipeline> {
            const char *dir = std::getenv("RELYLOOP_TEST_PIPELINE_DIR");
            return std::make_unique<test::TestPipeline>(dir != nullptr ? dir : "", log);
        });
}
