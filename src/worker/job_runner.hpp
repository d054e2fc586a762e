#pragma once

// The job runner (docs/worker.md, "Jobs"; "Pipeline steps" 1 and 3): `threads` runner threads, each
// with its own blocking PostgreSQL connection, claim jobs from pr_jobs and
// run them through a Pipeline while holding the config repo's advisory lock.
//
// Threads:
//  - runners (Settings::threads): claim → check the proposal → lock → run →
//    record the outcome. Idle runners sleep on a condition variable woken by
//    kick() (an enqueue in this process), by the dispatcher (LISTEN on
//    relyloop_pr_jobs: enqueues and releases on any host), or after at most
//    1 s, earlier when the next run_after or lease expiry is sooner.
//  - dispatcher: the LISTEN connection; reconnects with backoff.
//  - heartbeat: renews the lease of every running job every lease_ttl / 3 on
//    its own connection (never past the job timeout), and checks that each
//    runner's backend still holds its repo lock; a lost lease or lock cancels
//    the job.
//  - watchdog: in memory only; cancels jobs past the job timeout, jobs whose
//    lease could not be renewed in time (the runner then abandons the claim
//    without another write: docs/worker.md, "Leases"), and after the shutdown
//    grace period every job still running.
// The threads are in job_runner.cpp; one claimed job (claim → outcome) in
// job_execution.cpp.
// A PostgreSQL outage never ends a thread: connections are re-made with
// exponential backoff, and a job whose outcome cannot be written is left to
// lease expiry, after which any worker re-claims it.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/raii.hpp"
#include "event_log.hpp"
#include "job_store.hpp"
#include "pipeline.hpp"
#include "settings.hpp"

namespace relyloop::worker {

class JobRunner {
  public:
    JobRunner(const Settings &settings, Pipeline &pipeline, EventLog &log);
    ~JobRunner();
    JobRunner(const JobRunner &) = delete;
    JobRunner &operator=(const JobRunner &) = delete;

    void start();

    // A job was enqueued in this process: wake idle runners now.
    void kick() noexcept;

    // Stop claiming. Jobs that have not reached the pipeline are released at
    // once; jobs in the pipeline get the shutdown grace period (none when
    // `immediate`), then are cancelled and released.
    void request_stop(bool immediate) noexcept;

    // All runner threads have ended (their jobs finished or released).
    [[nodiscard]] bool runners_done() const noexcept { return runners_alive_.load() == 0; }

    // Waits for every thread. Call after request_stop().
    void join() noexcept;

    // Jobs currently held by this process's runners.
    [[nodiscard]] size_t active_jobs() const;

  private:
    enum class CancelReason : int {
        kNone,
        kTimeout,
        kShutdown,
        kLeaseLost,     // another worker claimed the job
        kLockLost,      // the runner's session lost the repo lock
        kLeaseExpired,  // no renewal got through before the lease ran out
    };

    struct ActiveJob {
        // `events` is bound to fence.job_id, proposal_id and config_repo_id.
        explicit ActiveJob(EventLog &log) noexcept;
        ActiveJob(const ActiveJob &) = delete;
        ActiveJob &operator=(const ActiveJob &) = delete;

        jobs::Fence fence;
        std::string proposal_id;
        std::string config_repo_id;
        std::atomic<int64_t> lock_key{0};
        std::atomic<int> backend_pid{0};  // pg_backend_pid() of the lock's session
        std::chrono::steady_clock::time_point claimed_at;
        std::chrono::steady_clock::time_point deadline;
        // Until when (steady clock, ns since its epoch) the lease is surely
        // ours: the send time of the last claim or renewal that got through,
        // plus lease_ttl (the server's now() cannot be earlier).
        std::atomic<int64_t> lease_valid_until{0};
        std::atomic<bool> lock_held{false};
        std::atomic<bool> in_pipeline{false};
        std::atomic<bool> finishing{false};
        std::atomic<bool> cancel{false};
        std::atomic<int> reason{0};
        EventScope events;  // the job's identity on the log

        void request_cancel(CancelReason r) noexcept;
        [[nodiscard]] CancelReason cancel_reason() const noexcept {
            return static_cast<CancelReason>(reason.load());
        }
    };

    class Registration;
    class RepoLock;

    void runner_main(int index) noexcept;
    void dispatcher_main() noexcept;
    void heartbeat_main() noexcept;
    void watchdog_main() noexcept;

    void handle_job(PgConn &conn, const jobs::ClaimedJob &job,
                    std::chrono::steady_clock::time_point claim_sent) noexcept;
    void run_job(PgConn &conn, ActiveJob &a, const jobs::ClaimedJob &job);
    void record_outcome(PgConn &conn, ActiveJob &a, const PipelineResult &res);
    void succeed(PGconn *conn, ActiveJob &a, std::string_view last_event,
                 const PipelineResult *res);
    void fail(PGconn *conn, ActiveJob &a, ErrorCode code, std::string_view message);
    void release(PGconn *conn, ActiveJob &a, std::string_view why);
    // A transient failure (database error, vanished repo lock): back to
    // queued with backoff, the attempt counted; after kMaxAttempts the job
    // fails with INTERNAL_ERROR and `why`.
    void retry_later(PGconn *conn, ActiveJob &a, const std::string &why);
    // The lease may have run out (no renewal got through in time, less a
    // safety margin): the runner must not write or act for the job any more.
    [[nodiscard]] bool lease_expired(const ActiveJob &a) const noexcept;
    // Logs job_abandoned: the claim is left to expire, nothing written.
    void abandon(ActiveJob &a, std::string_view why);
    // Runs `fn` on `conn`, re-making the connection and retrying up to three
    // times on connection loss; logs job_outcome_not_recorded when it never
    // succeeds (the lease then expires and the job is re-claimed).
    template <typename Fn>
    void with_retry(PgConn &conn, const char *what, ActiveJob &a, Fn &&fn) noexcept;

    [[nodiscard]] PgConn connect(const char *role);
    // Sleeps up to `d`; returns early when stopping.
    void pause(std::chrono::milliseconds d);
    void wait_for_work(uint64_t seen, std::optional<long long> due_ms);
    // For the aux threads: sleeps up to `d` unless aux_stop_.
    void aux_pause(std::chrono::milliseconds d);

    [[nodiscard]] long long elapsed_ms(const ActiveJob &a) const;
    // A steady-clock time as ns since its epoch (ActiveJob::lease_valid_until).
    [[nodiscard]] static int64_t ticks(std::chrono::steady_clock::time_point t) noexcept;

    static void on_progress(void *data, std::string_view step) noexcept;

    const Settings &settings_;
    Pipeline &pipeline_;
    EventLog &log_;
    std::chrono::milliseconds lease_ttl_;
    std::chrono::milliseconds lease_margin_;

    std::atomic<bool> stopping_{false};
    std::atomic<bool> aux_stop_{false};
    std::atomic<int> runners_alive_{0};
    Fd stop_fd_;  // eventfd: wakes the dispatcher's poll()

    std::mutex wake_mu_;
    std::condition_variable wake_cv_;
    uint64_t kick_seq_ = 0;

    std::mutex aux_mu_;
    std::condition_variable aux_cv_;

    mutable std::mutex active_mu_;
    std::vector<ActiveJob *> active_;
    std::optional<std::chrono::steady_clock::time_point> grace_deadline_;

    std::vector<std::thread> runners_;
    std::thread dispatcher_;
    std::thread heartbeat_;
    std::thread watchdog_;
    bool started_ = false;
};

}  // namespace relyloop::worker
