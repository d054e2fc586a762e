#include "job_runner.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/lock_key.hpp"
#include "db.hpp"

namespace relyloop::worker {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const char *outcome_name(PipelineOutcome o) {
    switch (o) {
        case PipelineOutcome::kOpened:
            return "opened";
        case PipelineOutcome::kNotPending:
            return "not_pending";
        case PipelineOutcome::kFailed:
            return "failed";
        case PipelineOutcome::kCancelled:
            return "cancelled";
        case PipelineOutcome::kDryRun:
            return "dry_run";
    }
    return "unknown";
}

// What on_progress() needs to store ctx.report() steps as pr_jobs.last_event.
struct ProgressData {
    PGconn *conn;
    const jobs::Fence *fence;
    const std::atomic<bool> *cancel;  // set: no more writes for the job
};

int64_t ticks(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

void JobRunner::ActiveJob::request_cancel(CancelReason r) noexcept {
    int expected = static_cast<int>(CancelReason::kNone);
    reason.compare_exchange_strong(expected, static_cast<int>(r));
    cancel.store(true);
}

// Makes a claimed job visible to the heartbeat and the watchdog for as long
// as the runner holds it.
class JobRunner::Registration {
  public:
    Registration(JobRunner &r, ActiveJob &a) : r_(r), a_(a) {
        std::lock_guard<std::mutex> lk(r_.active_mu_);
        r_.active_.push_back(&a_);
    }
    ~Registration() {
        std::lock_guard<std::mutex> lk(r_.active_mu_);
        r_.active_.erase(std::remove(r_.active_.begin(), r_.active_.end(), &a_), r_.active_.end());
    }
    Registration(const Registration &) = delete;
    Registration &operator=(const Registration &) = delete;

  private:
    JobRunner &r_;
    ActiveJob &a_;
};

// The session-level advisory lock of one config repo, held on the runner's
// connection. Unlocked on every path; when that connection died the lock
// died with it and there is nothing to unlock.
class JobRunner::RepoLock {
  public:
    RepoLock(PgConn &conn, ActiveJob &a, EventLog &log)
        : conn_(conn), held_on_(conn.get()), a_(a), log_(log) {
        a_.lock_held.store(true);
    }
    ~RepoLock() { unlock(); }
    RepoLock(const RepoLock &) = delete;
    RepoLock &operator=(const RepoLock &) = delete;

    void unlock() noexcept {
        if (!a_.lock_held.exchange(false)) {
            return;
        }
        if (conn_.get() != held_on_ || PQstatus(held_on_) != CONNECTION_OK) {
            return;
        }
        try {
            if (!jobs::unlock(held_on_, a_.lock_key.load())) {
                log_.warn("repo_lock_not_held",
                          {{"job_id", a_.fence.job_id},
                           {"config_repo_id", a_.config_repo_id},
                           {"message",
                            "the runner's session did not hold the repo lock at unlock: "
                            "is a transaction-pooling proxy in front? "
                            "(docs/worker.md, \"Connection poolers\")"}});
            }
        } catch (const DbError &e) {
            log_.warn("repo_unlock_failed", {{"job_id", a_.fence.job_id},
                                             {"config_repo_id", a_.config_repo_id},
                                             {"message", e.what()}});
        } catch (...) {
        }
    }

  private:
    PgConn &conn_;
    PGconn *held_on_;
    ActiveJob &a_;
    EventLog &log_;
};

JobRunner::JobRunner(const Settings &settings, Pipeline &pipeline, EventLog &log)
    : settings_(settings),
      pipeline_(pipeline),
      log_(log),
      lease_ttl_(std::chrono::duration_cast<milliseconds>(settings.lease_ttl)),
      lease_margin_(std::max(lease_ttl_ / 6, milliseconds(100))) {
    stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

JobRunner::~JobRunner() {
    if (started_) {
        request_stop(true);
        join();
    }
    if (stop_fd_ >= 0) {
        close(stop_fd_);
    }
}

void JobRunner::start() {
    started_ = true;
    runners_alive_.store(settings_.threads);
    for (int i = 0; i < settings_.threads; i++) {
        runners_.emplace_back([this, i] { runner_main(i); });
    }
    dispatcher_ = std::thread([this] { dispatcher_main(); });
    heartbeat_ = std::thread([this] { heartbeat_main(); });
    watchdog_ = std::thread([this] { watchdog_main(); });
}

void JobRunner::kick() noexcept {
    {
        std::lock_guard<std::mutex> lk(wake_mu_);
        kick_seq_++;
    }
    wake_cv_.notify_all();
}

void JobRunner::request_stop(bool immediate) noexcept {
    {
        std::lock_guard<std::mutex> lk(active_mu_);
        auto deadline = Clock::now() + (immediate ? Clock::duration::zero()
                                                  : Clock::duration(settings_.shutdown_grace));
        if (!grace_deadline_ || deadline < *grace_deadline_) {
            grace_deadline_ = deadline;
        }
    }
    {
        std::lock_guard<std::mutex> lk(wake_mu_);
        stopping_.store(true);
    }
    wake_cv_.notify_all();
    aux_cv_.notify_all();
}

void JobRunner::join() noexcept {
    for (std::thread &t : runners_) {
        if (t.joinable()) {
            t.join();
        }
    }
    {
        std::lock_guard<std::mutex> lk(aux_mu_);
        aux_stop_.store(true);
    }
    aux_cv_.notify_all();
    if (stop_fd_ >= 0) {
        uint64_t one = 1;
        ssize_t n = write(stop_fd_, &one, sizeof one);
        (void)n;
    }
    for (std::thread *t : {&dispatcher_, &heartbeat_, &watchdog_}) {
        if (t->joinable()) {
            t->join();
        }
    }
    started_ = false;
}

size_t JobRunner::active_jobs() const {
    std::lock_guard<std::mutex> lk(active_mu_);
    return active_.size();
}

PgConn JobRunner::connect(const char *role) {
    std::string err;
    std::string app = std::string("relyloop-worker ") + role;
    PgConn c = db::connect(settings_.pg_conninfo, app.c_str(), &log_, &err);
    if (!c) {
        throw DbError("", err);
    }
    return c;
}

void JobRunner::pause(milliseconds d) {
    std::unique_lock<std::mutex> lk(wake_mu_);
    wake_cv_.wait_for(lk, d, [this] { return stopping_.load(); });
}

void JobRunner::aux_pause(milliseconds d) {
    std::unique_lock<std::mutex> lk(aux_mu_);
    aux_cv_.wait_for(lk, d, [this] { return aux_stop_.load(); });
}

void JobRunner::wait_for_work(uint64_t seen, std::optional<long long> due_ms) {
    // Poll fallback: never sleep more than 1 s, and wake for the nearest
    // run_after or lease expiry. A job due now but not claimable is locked by
    // another worker's claim in flight; look again shortly.
    long long ms = due_ms ? std::clamp(*due_ms, 20LL, 1000LL) : 1000;
    std::unique_lock<std::mutex> lk(wake_mu_);
    wake_cv_.wait_for(lk, milliseconds(ms), [&] { return stopping_.load() || kick_seq_ != seen; });
}

long long JobRunner::elapsed_ms(const ActiveJob &a) const {
    return std::chrono::duration_cast<milliseconds>(Clock::now() - a.claimed_at).count();
}

void JobRunner::runner_main(int index) noexcept {
    PgConn conn;
    db::Backoff backoff;
    while (!stopping_.load()) {
        try {
            if (!conn) {
                conn = connect("runner");
                if (backoff.failing()) {
                    log_.info("db_reconnected", {{"message", "runner " + std::to_string(index)}});
                }
                backoff.reset();
            }
            uint64_t seen;
            {
                std::lock_guard<std::mutex> lk(wake_mu_);
                seen = kick_seq_;
            }
            auto claim_sent = Clock::now();
            std::optional<jobs::ClaimedJob> job =
                jobs::claim(conn.get(), settings_.worker_id, lease_ttl_);
            if (job) {
                handle_job(conn, *job, claim_sent);
                continue;
            }
            wait_for_work(seen, jobs::next_due_ms(conn.get()));
        } catch (const DbError &e) {
            bool lost = db::is_connection_error(e, conn.get());
            if (!backoff.failing()) {
                log_.error(lost ? "db_unavailable" : "db_error",
                           {{"message", "runner " + std::to_string(index) + ": " + e.what()}});
            }
            if (lost) {
                conn.reset();
            }
            pause(backoff.next());
        } catch (const std::exception &e) {
            log_.error("runner_error", {{"message", e.what()}});
            pause(backoff.next());
        } catch (...) {
            pause(backoff.next());
        }
    }
    runners_alive_.fetch_sub(1);
}

void JobRunner::handle_job(PgConn &conn, const jobs::ClaimedJob &job,
                           Clock::time_point claim_sent) noexcept {
    ActiveJob a;
    a.fence = {job.id, settings_.worker_id, job.attempts};
    a.proposal_id = job.proposal_id;
    a.lease_valid_until.store(ticks(claim_sent + lease_ttl_));
    a.claimed_at = Clock::now();
    a.deadline = a.claimed_at + settings_.job_timeout;
    Registration reg(*this, a);

    if (job.reclaimed) {
        log_.warn("job_reclaimed", {{"job_id", job.id},
                                    {"proposal_id", job.proposal_id},
                                    {"attempts", job.attempts},
                                    {"message", "lease of " + job.previous_worker + " expired"}});
    }
    log_.info("job_claimed", {{"job_id", job.id},
                              {"proposal_id", job.proposal_id},
                              {"attempts", job.attempts},
                              {"lock_waits", job.lock_waits}});
    try {
        run_job(conn, a, job);
    } catch (const DbError &e) {
        // The connection (and with it the repo lock) is gone, or a statement
        // failed: hand the job back if we can, else the lease expires and any
        // worker re-claims it.
        log_.error("job_db_error", {{"job_id", a.fence.job_id},
                                    {"proposal_id", a.proposal_id},
                                    {"config_repo_id", a.config_repo_id},
                                    {"message", e.what()}});
        bool transient = db::is_transient(e, conn.get());
        if (db::is_connection_error(e, conn.get())) {
            conn.reset();
        }
        if (transient) {
            with_retry(conn, "retry", a, [&](PGconn *c) {
                retry_later(c, a, std::string("database error: ") + e.what());
            });
        } else {
            with_retry(conn, "fail", a, [&](PGconn *c) {
                fail(c, a, ErrorCode::kInternalError, std::string("database error: ") + e.what());
            });
        }
    } catch (const std::exception &e) {
        with_retry(conn, "fail", a, [&](PGconn *c) {
            fail(c, a, ErrorCode::kInternalError, std::string("unexpected error: ") + e.what());
        });
    } catch (...) {
        with_retry(conn, "fail", a,
                   [&](PGconn *c) { fail(c, a, ErrorCode::kInternalError, "unexpected error"); });
    }
}

void JobRunner::run_job(PgConn &conn, ActiveJob &a, const jobs::ClaimedJob &job) {
    // Poison protection: a job whose workers kept dying is not run again.
    if (job.attempts > jobs::kMaxAttempts) {
        fail(conn.get(), a, ErrorCode::kInternalError,
             "abandoned after " + std::to_string(jobs::kMaxAttempts) + " attempts");
        return;
    }
    if (stopping_.load()) {
        release(conn.get(), a, "worker stopping");
        return;
    }

    // Pipeline step 1 (docs/worker.md).
    jobs::ProposalInfo p = jobs::read_proposal(conn.get(), job.proposal_id);
    if (!p.found || p.status != "pending") {
        log_.info("pr_open_proposal_no_longer_pending",
                  {{"job_id", a.fence.job_id},
                   {"proposal_id", a.proposal_id},
                   {"message", p.found ? "proposal status is " + p.status : "proposal deleted"}});
        succeed(conn.get(), a, "pr_open_proposal_no_longer_pending", nullptr);
        return;
    }
    if (!p.cluster_live || p.config_repo_id.empty() || !p.repo_exists) {
        std::string why = !p.cluster_live ? "cluster " + p.cluster_id + " not found"
                          : p.config_repo_id.empty()
                              ? "cluster " + p.cluster_id + " has no config repo"
                              : "config repo " + p.config_repo_id + " not found";
        fail(conn.get(), a, ErrorCode::kClusterHasNoConfigRepo, why);
        return;
    }
    a.config_repo_id = p.config_repo_id;
    a.lock_key.store(config_repo_lock_key(p.config_repo_id));

    // Pipeline step 3 (docs/worker.md, "Jobs"): the per-repo lock, across hosts.
    int backend_pid = 0;
    bool locked = jobs::try_lock(conn.get(), a.lock_key.load(), &backend_pid);
    a.backend_pid.store(backend_pid);
    if (!locked) {
        if (job.lock_waits >= settings_.max_lock_waits) {
            fail(conn.get(), a, ErrorCode::kLockTimeout,
                 "config repo " + a.config_repo_id + " stayed locked by another job through " +
                     std::to_string(job.lock_waits) + " retries");
            return;
        }
        a.finishing.store(true);
        bool ours =
            jobs::defer(conn.get(), a.fence,
                        std::chrono::duration_cast<milliseconds>(settings_.lock_retry_delay));
        log_.info("pr_open_lock_contention",
                  {{"job_id", a.fence.job_id},
                   {"proposal_id", a.proposal_id},
                   {"config_repo_id", a.config_repo_id},
                   {"lock_waits", job.lock_waits + 1},
                   {"message", "config repo locked by another job; retry in " +
                                   std::to_string(settings_.lock_retry_delay.count()) + " s" +
                                   (ours ? "" : " (job no longer ours)")}});
        return;
    }
    RepoLock lock(conn, a, log_);
    if (stopping_.load()) {
        lock.unlock();
        release(conn.get(), a, "worker stopping");
        return;
    }

    ProgressData progress{conn.get(), &a.fence, &a.cancel};
    JobContext ctx;
    ctx.job_id = a.fence.job_id;
    ctx.proposal_id = a.proposal_id;
    ctx.config_repo_id = a.config_repo_id;
    ctx.attempt = job.attempts;
    ctx.db = conn.get();
    ctx.cancel = &a.cancel;
    ctx.log = &log_;
    ctx.progress = &JobRunner::on_progress;
    ctx.progress_data = &progress;

    a.in_pipeline.store(true);
    PipelineResult res = pipeline_.run(ctx);
    a.in_pipeline.store(false);
    a.finishing.store(true);
    if (a.cancel_reason() == CancelReason::kLeaseExpired || lease_expired(a)) {
        // Another worker may own the job by now: no write of ours may land.
        // Closing the session frees the repo lock with it.
        a.lock_held.store(false);
        conn.reset();
        abandon(a, std::string("the lease ran out before it could be renewed; pipeline ended ") +
                       outcome_name(res.outcome));
        return;
    }
    lock.unlock();
    record_outcome(conn, a, res);
}

bool JobRunner::lease_expired(const ActiveJob &a) const noexcept {
    return ticks(Clock::now() + lease_margin_) >= a.lease_valid_until.load();
}

void JobRunner::abandon(ActiveJob &a, std::string_view why) {
    log_.warn("job_abandoned",
              {{"job_id", a.fence.job_id},
               {"proposal_id", a.proposal_id},
               {"config_repo_id", a.config_repo_id},
               {"attempts", a.fence.attempts},
               {"duration_ms", elapsed_ms(a)},
               {"message", std::string(why) + "; nothing written, any worker re-claims the job "
                                              "once the lease has expired"}});
}

void JobRunner::retry_later(PGconn *conn, ActiveJob &a, const std::string &why) {
    if (a.fence.attempts >= jobs::kMaxAttempts) {
        fail(conn, a, ErrorCode::kInternalError,
             why + " (gave up after " + std::to_string(a.fence.attempts) + " attempts)");
        return;
    }
    a.finishing.store(true);  // the heartbeat leaves the row alone now
    // lock_retry_delay × 2^(attempts−1), at most a minute (docs/worker.md).
    auto base = std::chrono::duration_cast<milliseconds>(settings_.lock_retry_delay);
    milliseconds delay = std::min<milliseconds>(
        base * (1 << std::clamp(a.fence.attempts - 1, 0, 10)), std::chrono::minutes(1));
    bool ours = jobs::requeue(conn, a.fence, delay, why);
    log_.warn("job_retry", {{"job_id", a.fence.job_id},
                            {"proposal_id", a.proposal_id},
                            {"config_repo_id", a.config_repo_id},
                            {"attempts", a.fence.attempts},
                            {"duration_ms", elapsed_ms(a)},
                            {"retry_in_ms", static_cast<long long>(delay.count())},
                            {"message", why + (ours ? "" : " (no longer ours)")}});
}

void JobRunner::on_progress(void *data, std::string_view step) noexcept {
    auto *p = static_cast<ProgressData *>(data);
    if (p->cancel->load()) {
        return;  // a cancelled job (maybe no longer ours) writes nothing more
    }
    try {
        jobs::set_last_event(p->conn, *p->fence, step);
    } catch (...) {
        // Progress is cosmetic; the pipeline notices a dead connection itself.
    }
}

void JobRunner::record_outcome(PgConn &conn, ActiveJob &a, const PipelineResult &res) {
    if (PQstatus(conn.get()) != CONNECTION_OK) {
        // The lock died with the connection; the outcome still gets written
        // on a new one.
        conn.reset();
    }
    switch (res.outcome) {
        case PipelineOutcome::kOpened:
            with_retry(conn, "succeed", a,
                       [&](PGconn *c) { succeed(c, a, "pr_open_complete", &res); });
            return;
        case PipelineOutcome::kNotPending:
            with_retry(conn, "succeed", a, [&](PGconn *c) {
                succeed(c, a, "pr_open_proposal_no_longer_pending", &res);
            });
            return;
        case PipelineOutcome::kFailed:
            if (res.retry) {
                with_retry(conn, "retry", a, [&](PGconn *c) { retry_later(c, a, res.message); });
                return;
            }
            with_retry(conn, "fail", a, [&](PGconn *c) { fail(c, a, res.code, res.message); });
            return;
        case PipelineOutcome::kDryRun:
            with_retry(conn, "succeed", a,
                       [&](PGconn *c) { succeed(c, a, "dry_run_complete", &res); });
            return;
        case PipelineOutcome::kCancelled:
            break;
    }
    switch (a.cancel_reason()) {
        case CancelReason::kTimeout:
            with_retry(conn, "fail", a, [&](PGconn *c) {
                fail(c, a, ErrorCode::kJobTimeout,
                     "job exceeded the " + std::to_string(settings_.job_timeout.count()) +
                         " s timeout");
            });
            return;
        case CancelReason::kShutdown:
            with_retry(conn, "release", a, [&](PGconn *c) { release(c, a, "worker stopping"); });
            return;
        case CancelReason::kLockLost:
            // Counted: a lock that keeps vanishing (a pooler in front, a
            // flapping link) must not make the job run forever.
            with_retry(conn, "retry", a, [&](PGconn *c) {
                retry_later(c, a, "the repo lock was lost with the runner's session");
            });
            return;
        case CancelReason::kLeaseExpired:  // handled in run_job
            return;
        case CancelReason::kLeaseLost:
            log_.warn("job_lease_lost", {{"job_id", a.fence.job_id},
                                         {"proposal_id", a.proposal_id},
                                         {"config_repo_id", a.config_repo_id},
                                         {"duration_ms", elapsed_ms(a)},
                                         {"message", "another worker owns the job now"}});
            return;
        case CancelReason::kNone:
            break;
    }
    with_retry(conn, "fail", a, [&](PGconn *c) {
        fail(c, a, ErrorCode::kInternalError, "the pipeline stopped without being cancelled");
    });
}

template <typename Fn>
void JobRunner::with_retry(PgConn &conn, const char *what, ActiveJob &a, Fn &&fn) noexcept {
    db::Backoff backoff(milliseconds(1000));
    for (int attempt = 0; attempt < 3; attempt++) {
        if (lease_expired(a)) {
            abandon(a, std::string(what) + " not written: the lease ran out meanwhile");
            return;
        }
        try {
            if (!conn) {
                conn = connect("runner");
            }
            fn(conn.get());
            return;
        } catch (const DbError &e) {
            if (db::is_connection_error(e, conn.get())) {
                conn.reset();
            } else {
                log_.error("job_outcome_not_recorded",
                           {{"job_id", a.fence.job_id},
                            {"proposal_id", a.proposal_id},
                            {"message", std::string(what) + ": " + e.what()}});
                return;
            }
            if (attempt == 2) {
                log_.error("job_outcome_not_recorded",
                           {{"job_id", a.fence.job_id},
                            {"proposal_id", a.proposal_id},
                            {"message", std::string(what) + ": " + e.what() +
                                            "; the lease will expire and the job be re-claimed"}});
                return;
            }
        } catch (const std::exception &e) {
            log_.error(
                "job_outcome_not_recorded",
                {{"job_id", a.fence.job_id}, {"message", std::string(what) + ": " + e.what()}});
            return;
        } catch (...) {
            return;
        }
        std::this_thread::sleep_for(backoff.next());
    }
}

void JobRunner::succeed(PGconn *conn, ActiveJob &a, std::string_view last_event,
                        const PipelineResult *res) {
    a.finishing.store(true);  // the heartbeat leaves the row alone now
    bool ours = jobs::finish_succeeded(conn, a.fence, last_event);
    if (!ours) {
        log_.warn("job_lease_lost", {{"job_id", a.fence.job_id},
                                     {"proposal_id", a.proposal_id},
                                     {"message", "job finished but no longer ours; not recorded"}});
        return;
    }
    std::string outcome = res != nullptr ? outcome_name(res->outcome) : "not_pending";
    std::string pr_url = res != nullptr ? res->pr_url : std::string();
    std::string branch = res != nullptr ? res->branch : std::string();
    log_.info("job_succeeded", {{"job_id", a.fence.job_id},
                                {"proposal_id", a.proposal_id},
                                {"config_repo_id", a.config_repo_id},
                                {"duration_ms", elapsed_ms(a)},
                                {"branch", branch},
                                {"pr_url", pr_url},
                                {"message", outcome}});
}

void JobRunner::fail(PGconn *conn, ActiveJob &a, ErrorCode code, std::string_view message) {
    a.finishing.store(true);  // the heartbeat leaves the row alone now
    std::string_view code_name = error_code_name(code);
    std::string error = jobs::format_error(code_name, message);
    bool proposal_updated = false;
    bool ours = jobs::finish_failed(conn, a.fence, error, &proposal_updated);
    if (!ours) {
        log_.warn("job_lease_lost",
                  {{"job_id", a.fence.job_id},
                   {"proposal_id", a.proposal_id},
                   {"error_code", code_name},
                   {"message", "job failed but no longer ours; not recorded: " + error}});
        return;
    }
    log_.error("pr_open_failed", {{"job_id", a.fence.job_id},
                                  {"proposal_id", a.proposal_id},
                                  {"config_repo_id", a.config_repo_id},
                                  {"duration_ms", elapsed_ms(a)},
                                  {"error_code", code_name},
                                  {"message", error}});
    log_.info("job_failed", {{"job_id", a.fence.job_id},
                             {"proposal_id", a.proposal_id},
                             {"config_repo_id", a.config_repo_id},
                             {"duration_ms", elapsed_ms(a)},
                             {"error_code", code_name},
                             {"attempts", a.fence.attempts},
                             {"pr_open_error_written", proposal_updated}});
}

void JobRunner::release(PGconn *conn, ActiveJob &a, std::string_view why) {
    a.finishing.store(true);  // the heartbeat leaves the row alone now
    bool ours = jobs::release(conn, a.fence);
    log_.info("job_released", {{"job_id", a.fence.job_id},
                               {"proposal_id", a.proposal_id},
                               {"config_repo_id", a.config_repo_id},
                               {"duration_ms", elapsed_ms(a)},
                               {"message", std::string(why) + (ours ? "" : " (no longer ours)")}});
}

void JobRunner::dispatcher_main() noexcept {
    db::Backoff backoff(std::chrono::seconds(30));
    while (!aux_stop_.load()) {
        PgConn conn;
        try {
            conn = connect("listener");
            PgResult r = db::exec(conn.get(), "LISTEN " RELYLOOP_JOBS_CHANNEL);
            if (backoff.failing()) {
                log_.info("db_reconnected", {{"message", "listener"}});
            }
            backoff.reset();
        } catch (const DbError &e) {
            if (!backoff.failing()) {
                log_.error("db_unavailable", {{"message", std::string("listener: ") + e.what()}});
            }
            aux_pause(backoff.next());
            continue;
        }
        // Anything notified while we were not listening: look now.
        kick();
        while (!aux_stop_.load()) {
            if (PQstatus(conn.get()) != CONNECTION_OK || PQsocket(conn.get()) < 0) {
                break;
            }
            pollfd fds[2] = {{PQsocket(conn.get()), POLLIN, 0}, {stop_fd_, POLLIN, 0}};
            int n = poll(fds, 2, 1000);
            if (n < 0 && errno != EINTR) {
                break;
            }
            if (n <= 0 || (fds[0].revents == 0)) {
                continue;
            }
            if (PQconsumeInput(conn.get()) == 0) {
                log_.error("db_unavailable",
                           {{"message", std::string("listener: ") + PQerrorMessage(conn.get())}});
                break;
            }
            bool any = false;
            while (PGnotify *note = PQnotifies(conn.get())) {
                PQfreemem(note);
                any = true;
            }
            if (any) {
                kick();
            }
        }
        if (!aux_stop_.load()) {
            aux_pause(backoff.next());
        }
    }
}

void JobRunner::heartbeat_main() noexcept {
    struct Item {
        ActiveJob *job;
        jobs::Fence fence;
        bool check_lock;
        int pid;
        int64_t key;
    };
    PgConn conn;
    db::Backoff backoff;
    auto interval = std::max(lease_ttl_ / 3, milliseconds(100));
    while (!aux_stop_.load()) {
        aux_pause(interval);
        if (aux_stop_.load()) {
            break;
        }
        std::vector<Item> items;
        {
            std::lock_guard<std::mutex> lk(active_mu_);
            auto now = Clock::now();
            for (ActiveJob *a : active_) {
                // Never renewed past the job timeout (the watchdog cancels it:
                // JOB_TIMEOUT), nor once given up.
                if (!a->finishing.load() && now < a->deadline &&
                    a->cancel_reason() != CancelReason::kLeaseExpired) {
                    items.push_back({a, a->fence, a->in_pipeline.load() && a->lock_held.load(),
                                     a->backend_pid.load(), a->lock_key.load()});
                }
            }
        }
        if (items.empty()) {
            continue;
        }
        try {
            if (!conn) {
                conn = connect("heartbeat");
                backoff.reset();
            }
            for (const Item &it : items) {
                bool lock_ok = true;
                auto sent = Clock::now();
                bool ours = jobs::renew(conn.get(), it.fence, lease_ttl_, it.check_lock, it.pid,
                                        it.key, &lock_ok);
                std::lock_guard<std::mutex> lk(active_mu_);
                // Still the same claim, still running?
                if (std::find(active_.begin(), active_.end(), it.job) == active_.end() ||
                    it.job->fence.job_id != it.fence.job_id) {
                    continue;
                }
                if (ours) {
                    int64_t until = ticks(sent + lease_ttl_);
                    int64_t prev = it.job->lease_valid_until.load();
                    while (prev < until &&
                           !it.job->lease_valid_until.compare_exchange_weak(prev, until)) {
                    }
                }
                if ((ours && lock_ok) || it.job->finishing.load()) {
                    continue;
                }
                if (!ours) {
                    it.job->request_cancel(CancelReason::kLeaseLost);
                } else if (it.job->lock_held.load() && it.job->in_pipeline.load()) {
                    it.job->request_cancel(CancelReason::kLockLost);
                } else {
                    continue;
                }
                log_.warn(ours ? "job_lock_lost" : "job_lease_lost",
                          {{"job_id", it.fence.job_id},
                           {"proposal_id", it.job->proposal_id},
                           {"config_repo_id", it.job->config_repo_id},
                           {"message", ours ? "the runner's connection lost the repo lock; "
                                              "cancelling"
                                            : "another worker claimed the job; cancelling"}});
            }
        } catch (const DbError &e) {
            if (!backoff.failing()) {
                log_.error("db_unavailable", {{"message", std::string("heartbeat: ") + e.what()}});
            }
            if (db::is_connection_error(e, conn.get())) {
                conn.reset();
            }
            aux_pause(backoff.next());
        } catch (...) {
        }
    }
}

void JobRunner::watchdog_main() noexcept {
    while (!aux_stop_.load()) {
        aux_pause(milliseconds(100));
        auto now = Clock::now();
        std::lock_guard<std::mutex> lk(active_mu_);
        bool grace_over = grace_deadline_ && now >= *grace_deadline_;
        for (ActiveJob *a : active_) {
            if (a->cancel.load() || a->finishing.load()) {
                continue;
            }
            if (lease_expired(*a)) {
                // The heartbeat could not renew in time (PostgreSQL out of
                // reach): stop before the next side effect, write nothing.
                a->request_cancel(CancelReason::kLeaseExpired);
                log_.warn("job_lease_expired", {{"job_id", a->fence.job_id},
                                                {"proposal_id", a->proposal_id},
                                                {"config_repo_id", a->config_repo_id},
                                                {"duration_ms", elapsed_ms(*a)},
                                                {"message",
                                                 "the lease could not be renewed in "
                                                 "time; cancelling"}});
            } else if (now >= a->deadline) {
                a->request_cancel(CancelReason::kTimeout);
                log_.warn("job_timeout", {{"job_id", a->fence.job_id},
                                          {"proposal_id", a->proposal_id},
                                          {"config_repo_id", a->config_repo_id},
                                          {"duration_ms", elapsed_ms(*a)},
                                          {"message", "cancelling"}});
            } else if (grace_over) {
                a->request_cancel(CancelReason::kShutdown);
                log_.info("job_cancelling", {{"job_id", a->fence.job_id},
                                             {"proposal_id", a->proposal_id},
                                             {"config_repo_id", a->config_repo_id},
                                             {"message", "shutdown grace period over"}});
            }
        }
    }
}

}  // namespace relyloop::worker
