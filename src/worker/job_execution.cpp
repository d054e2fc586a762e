// One claimed job (docs/worker.md, "Jobs"; "Pipeline steps" 1 and 3): the
// proposal check, the repo lock, the pipeline run, and the job row written
// for how it ended. The threads that claim jobs and keep their leases are in
// job_runner.cpp.
#include <algorithm>
#include <string>

#include "common/lock_key.hpp"
#include "db.hpp"
#include "job_runner.hpp"

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
    const EventScope *events;
};

}  // namespace

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
    RepoLock(PgConn &conn, ActiveJob &a) : conn_(conn), held_on_(conn.get()), a_(a) {
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
                a_.events.warn("repo_lock_not_held", EventScope::kJob | EventScope::kRepo,
                               {{"message",
                                 "the runner's session did not hold the repo lock at unlock: "
                                 "is a transaction-pooling proxy in front? "
                                 "(docs/worker.md, \"Connection poolers\")"}});
            }
        } catch (const DbError &e) {
            a_.events.warn("repo_unlock_failed", EventScope::kJob | EventScope::kRepo,
                           {{"message", e.what()}});
        } catch (...) {
            a_.events.warn("repo_unlock_failed", EventScope::kJob | EventScope::kRepo,
                           {{"message", "a non-standard exception"}});
        }
    }

  private:
    PgConn &conn_;
    PGconn *held_on_;
    ActiveJob &a_;
};

void JobRunner::handle_job(PgConn &conn, const jobs::ClaimedJob &job,
                           Clock::time_point claim_sent) noexcept {
    ActiveJob a(log_);
    a.fence = {job.id, settings_.worker_id, job.attempts};
    a.proposal_id = job.proposal_id;
    a.lease_valid_until.store(ticks(claim_sent + lease_ttl_));
    a.claimed_at = Clock::now();
    a.deadline = a.claimed_at + settings_.job_timeout;
    Registration reg(*this, a);

    if (job.reclaimed) {
        a.events.warn("job_reclaimed", EventScope::kIds,
                      {{"attempts", job.attempts},
                       {"message", "lease of " + job.previous_worker + " expired"}});
    }
    a.events.info("job_claimed", EventScope::kIds,
                  {{"attempts", job.attempts}, {"lock_waits", job.lock_waits}});
    try {
        run_job(conn, a, job);
    } catch (const DbError &e) {
        // The connection (and with it the repo lock) is gone, or a statement
        // failed: hand the job back if we can, else the lease expires and any
        // worker re-claims it.
        a.events.error("job_db_error", EventScope::kIdsRepo, {{"message", e.what()}});
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
        a.events.info(
            "pr_open_proposal_no_longer_pending", EventScope::kIds,
            {{"message", p.found ? "proposal status is " + p.status : "proposal deleted"}});
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
        a.events.info("pr_open_lock_contention", EventScope::kIdsRepo,
                      {{"lock_waits", job.lock_waits + 1},
                       {"message", "config repo locked by another job; retry in " +
                                       std::to_string(settings_.lock_retry_delay.count()) + " s" +
                                       (ours ? "" : " (job no longer ours)")}});
        return;
    }
    RepoLock lock(conn, a);
    if (stopping_.load()) {
        lock.unlock();
        release(conn.get(), a, "worker stopping");
        return;
    }

    ProgressData progress{conn.get(), &a.fence, &a.cancel, &a.events};
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

void JobRunner::abandon(ActiveJob &a, std::string_view why) {
    a.events.warn("job_abandoned", EventScope::kIdsRepo,
                  {{"attempts", a.fence.attempts},
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
    a.events.warn("job_retry", EventScope::kIdsRepo,
                  {{"attempts", a.fence.attempts},
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
        p->events->warn("job_progress_not_recorded", EventScope::kIds,
                        {{"message", "last_event not written"}});
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
            a.events.warn(
                "job_lease_lost", EventScope::kIdsRepo,
                {{"duration_ms", elapsed_ms(a)}, {"message", "another worker owns the job now"}});
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
                a.events.error("job_outcome_not_recorded", EventScope::kIds,
                               {{"message", std::string(what) + ": " + e.what()}});
                return;
            }
            if (attempt == 2) {
                a.events.error(
                    "job_outcome_not_recorded", EventScope::kIds,
                    {{"message", std::string(what) + ": " + e.what() +
                                     "; the lease will expire and the job be re-claimed"}});
                return;
            }
        } catch (const std::exception &e) {
            a.events.error("job_outcome_not_recorded", EventScope::kJob,
                           {{"message", std::string(what) + ": " + e.what()}});
            return;
        } catch (...) {
            a.events.error("job_outcome_not_recorded", EventScope::kJob,
                           {{"message", "a non-standard exception"}});
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
        a.events.warn("job_lease_lost", EventScope::kIds,
                      {{"message", "job finished but no longer ours; not recorded"}});
        return;
    }
    std::string outcome = res != nullptr ? outcome_name(res->outcome) : "not_pending";
    std::string pr_url = res != nullptr ? res->pr_url : std::string();
    std::string branch = res != nullptr ? res->branch : std::string();
    a.events.info("job_succeeded", EventScope::kIdsRepo,
                  {{"duration_ms", elapsed_ms(a)},
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
        a.events.warn("job_lease_lost", EventScope::kIds,
                      {{"error_code", code_name},
                       {"message", "job failed but no longer ours; not recorded: " + error}});
        return;
    }
    a.events.error("pr_open_failed", EventScope::kIdsRepo,
                   {{"duration_ms", elapsed_ms(a)}, {"error_code", code_name}, {"message", error}});
    a.events.info("job_failed", EventScope::kIdsRepo,
                  {{"duration_ms", elapsed_ms(a)},
                   {"error_code", code_name},
                   {"attempts", a.fence.attempts},
                   {"pr_open_error_written", proposal_updated}});
}

void JobRunner::release(PGconn *conn, ActiveJob &a, std::string_view why) {
    a.finishing.store(true);  // the heartbeat leaves the row alone now
    bool ours = jobs::release(conn, a.fence);
    a.events.info("job_released", EventScope::kIdsRepo,
                  {{"duration_ms", elapsed_ms(a)},
                   {"message", std::string(why) + (ours ? "" : " (no longer ours)")}});
}

}  // namespace relyloop::worker
