#pragma once

// The durable job queue (pr_jobs; docs/worker.md, "Jobs"): every statement the socket
// handler and the job runner run against pr_jobs and proposals. All functions
// block on the given connection and throw DbError on failure.
//
// Writes made on behalf of a claimed job are fenced: they only apply while the
// row is still `running` with this worker's id and the attempt count of our
// claim, so a worker whose lease expired (and whose job another worker took
// over) can never overwrite the newer claim's outcome.

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace relyloop::worker::jobs {

// The channel every enqueue and release notifies; runners LISTEN on it. (A
// macro as well, for the SQL texts that name it.)
#define RELYLOOP_JOBS_CHANNEL "relyloop_pr_jobs"
inline constexpr const char kChannel[] = RELYLOOP_JOBS_CHANNEL;

// A job claimed more often than this (its workers died or lost the lease
// each time) is failed with INTERNAL_ERROR instead of being run again.
inline constexpr int kMaxAttempts = 3;

struct EnqueueResult {
    enum class Status { kCreated, kDeduplicated, kProposalNotFound };
    Status status = Status::kProposalNotFound;
    std::string job_id;
};

// Inserts a queued job for the proposal unless one is queued or running
// (then returns that one), and notifies kChannel in the same statement. The
// row is committed when this returns.
[[nodiscard]] EnqueueResult enqueue(PGconn *conn, std::string_view proposal_id);

struct Counts {
    long long queued = 0;
    long long running = 0;
};
[[nodiscard]] Counts counts(PGconn *conn);

struct ClaimedJob {
    std::string id;
    std::string proposal_id;
    int attempts = 0;  // including this claim
    int lock_waits = 0;
    bool reclaimed = false;       // it was `running` with an expired lease
    std::string previous_worker;  // when reclaimed
};

// Claims the next due job (queued and due, or running with an expired lease)
// with FOR UPDATE SKIP LOCKED.
[[nodiscard]] std::optional<ClaimedJob> claim(PGconn *conn, const std::string &worker_id,
                                              std::chrono::milliseconds lease_ttl);

// Milliseconds until the next queued job is due or the next lease expires;
// nullopt when there is neither. 0 when something is due now.
[[nodiscard]] std::optional<long long> next_due_ms(PGconn *conn);

struct ProposalInfo {
    bool found = false;
    std::string status;
    std::string cluster_id;
    bool cluster_live = false;   // exists and not soft-deleted
    std::string config_repo_id;  // "" when NULL
    bool repo_exists = false;
};
[[nodiscard]] ProposalInfo read_proposal(PGconn *conn, std::string_view proposal_id);

// Identifies our claim of a job.
struct Fence {
    std::string job_id;
    std::string worker_id;
    int attempts = 0;
};

// Each returns false when the fence no longer matches (the job is not ours).
[[nodiscard]] bool finish_succeeded(PGconn *conn, const Fence &f, std::string_view last_event);
// Marks the job failed with last_error = error and sets the proposal's
// pr_open_error = error when it is still pending (one statement).
[[nodiscard]] bool finish_failed(PGconn *conn, const Fence &f, std::string_view error,
                                 bool *proposal_updated);
// Back to queued now, lease cleared, the claim not counted; notifies.
[[nodiscard]] bool release(PGconn *conn, const Fence &f);
// A retry (a transient database error, a repo lock that vanished): back to
// queued after `delay`, the claim counted (so kMaxAttempts bounds retries),
// last_error = why; notifies.
[[nodiscard]] bool requeue(PGconn *conn, const Fence &f, std::chrono::milliseconds delay,
                           std::string_view why);
// Lock contention: back to queued after `delay`, lock_waits + 1, the claim
// not counted.
[[nodiscard]] bool defer(PGconn *conn, const Fence &f, std::chrono::milliseconds delay);
// pr_jobs.last_event (≤ 64 chars) for the UI.
void set_last_event(PGconn *conn, const Fence &f, std::string_view event);

// Extends the lease. With check_lock, also reports whether the backend
// `backend_pid` still holds the advisory lock `key` (false: the runner's
// connection died and the lock with it). Returns false when the fence no
// longer matches.
[[nodiscard]] bool renew(PGconn *conn, const Fence &f, std::chrono::milliseconds lease_ttl,
                         bool check_lock, int backend_pid, int64_t key, bool *lock_ok);

// The session-level repo lock (docs/worker.md, "Jobs"). `backend_pid` (optional) gets
// pg_backend_pid() of the session that tried: the pid pg_locks shows (not
// PQbackendPID(), which a proxy in front fakes).
[[nodiscard]] bool try_lock(PGconn *conn, int64_t key, int *backend_pid = nullptr);
// False when this session did not hold the lock (PostgreSQL also warns).
[[nodiscard]] bool unlock(PGconn *conn, int64_t key);

// "<CODE>: <message>", redacted, at most 2000 bytes (cut on a UTF-8 boundary).
[[nodiscard]] std::string format_error(std::string_view code, std::string_view message);

}  // namespace relyloop::worker::jobs
