// The job runner's threads (docs/worker.md, "Threads, wake-ups, connections"):
// runners claiming jobs from the queue, the LISTEN dispatcher, the lease
// heartbeat and the watchdog. What a runner does with a claimed job is in
// job_execution.cpp.
#include "job_runner.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "db.hpp"

namespace relyloop::worker {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

}  // namespace

int64_t JobRunner::ticks(Clock::time_point t) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

JobRunner::ActiveJob::ActiveJob(EventLog &log) noexcept : events(log) {
    events.bind(EventScope::kJob, fence.job_id)
        .bind(EventScope::kProposal, proposal_id)
        .bind(EventScope::kRepo, config_repo_id);
}

void JobRunner::ActiveJob::request_cancel(CancelReason r) noexcept {
    int expected = static_cast<int>(CancelReason::kNone);
    reason.compare_exchange_strong(expected, static_cast<int>(r));
    cancel.store(true);
}

JobRunner::JobRunner(const Settings &settings, Pipeline &pipeline, EventLog &log)
    : settings_(settings),
      pipeline_(pipeline),
      log_(log),
      lease_ttl_(std::chrono::duration_cast<milliseconds>(settings.lease_ttl)),
      lease_margin_(std::max(lease_ttl_ / 6, milliseconds(100))) {
    stop_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
}

JobRunner::~JobRunner() {
    if (started_) {
        request_stop(true);
        join();
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
    if (stop_fd_) {
        uint64_t one = 1;
        ssize_t n = write(stop_fd_.get(), &one, sizeof one);
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
            log_.error("runner_error", {{"message", "a non-standard exception"}});
            pause(backoff.next());
        }
    }
    runners_alive_.fetch_sub(1);
}

bool JobRunner::lease_expired(const ActiveJob &a) const noexcept {
    return ticks(Clock::now() + lease_margin_) >= a.lease_valid_until.load();
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
            pollfd fds[2] = {{PQsocket(conn.get()), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
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
            for (PgNotify note(PQnotifies(conn.get())); note; note.reset(PQnotifies(conn.get()))) {
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
                it.job->events.warn(ours ? "job_lock_lost" : "job_lease_lost", EventScope::kIdsRepo,
                                    {{"message", ours ? "the runner's connection lost the repo "
                                                        "lock; cancelling"
                                                      : "another worker claimed the job; "
                                                        "cancelling"}});
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
            log_.error("runner_error", {{"message", "heartbeat: a non-standard exception"}});
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
                a->events.warn("job_lease_expired", EventScope::kIdsRepo,
                               {{"duration_ms", elapsed_ms(*a)},
                                {"message",
                                 "the lease could not be renewed in "
                                 "time; cancelling"}});
            } else if (now >= a->deadline) {
                a->request_cancel(CancelReason::kTimeout);
                a->events.warn("job_timeout", EventScope::kIdsRepo,
                               {{"duration_ms", elapsed_ms(*a)}, {"message", "cancelling"}});
            } else if (grace_over) {
                a->request_cancel(CancelReason::kShutdown);
                a->events.info("job_cancelling", EventScope::kIdsRepo,
                               {{"message", "shutdown grace period over"}});
            }
        }
    }
}

}  // namespace relyloop::worker
