#pragma once

// The seam between the job runner (job_runner) and the PR pipeline
// (pipeline/).
//
// The runner claims a job, does pipeline steps 1 and 3 (docs/worker.md) itself — proposal still
// pending? which config repo? take the per-repo advisory lock, with contention
// → deferred retry and LOCK_TIMEOUT — and then calls Pipeline::run() on the
// thread that holds the lock. The pipeline does everything else (steps
// 2–12: re-read inside the lock, clone/fetch, edit, commit, chart, push, PR,
// comment, conditional final update) and reports how it ended. The runner
// writes the job row, and on kFailed also pr_open_error (one place for every
// failure, its own LOCK_TIMEOUT/JOB_TIMEOUT included). The pipeline writes the
// proposal only on success (step 12, conditional on status='pending').

#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace relyloop::worker {

class EventLog;

// What the runner hands to one pipeline run.
struct JobContext {
    std::string job_id;
    std::string proposal_id;
    std::string config_repo_id;  // the repo whose advisory lock is held
    int attempt = 1;             // 1 on the first claim of this job

    // A blocking connection owned by the runner's thread for this job. The
    // session-level advisory lock of config_repo_id is held on it; do not
    // close it, do not leave a transaction open on it.
    PGconn *db = nullptr;

    // Set when the job timeout expires, the worker shuts down, or the job's
    // lease or repo lock is lost: stop at the next step boundary and before
    // every side effect (push, GitHub call, final update; also from
    // libgit2/libcurl progress callbacks), return PipelineOutcome::kCancelled.
    // Never write the proposal row after that.
    const std::atomic<bool> *cancel = nullptr;

    // The JSON event log (docs/worker.md, "Log"). Every line it writes is redacted.
    EventLog *log = nullptr;

    // Called at each pipeline step ("cloning", "pushing", "opening_pr", ...);
    // the runner stores it as pr_jobs.last_event for the UI.
    void (*progress)(void *data, std::string_view step) = nullptr;
    void *progress_data = nullptr;

    [[nodiscard]] bool cancelled() const noexcept {
        return cancel != nullptr && cancel->load(std::memory_order_relaxed);
    }
    void report(std::string_view step) const {
        if (progress != nullptr) {
            progress(progress_data, step);
        }
    }
};

enum class PipelineOutcome {
    kOpened,      // PR opened (or adopted) and the proposal updated
    kNotPending,  // the proposal left `pending`; nothing written
    kFailed,      // the runner writes pr_open_error = "<CODE>: <message>"
    kCancelled,   // stopped on ctx.cancel; the runner decides what to write
    kDryRun,      // --dry-run: committed locally, nothing pushed or opened;
                  // the proposal is left alone (docs/worker.md)
};

struct PipelineResult {
    PipelineOutcome outcome = PipelineOutcome::kFailed;
    ErrorCode code = ErrorCode::kInternalError;  // kFailed only
    std::string message;                         // redacted; kFailed only
    // kFailed only: a transient cause (the database connection was lost, a
    // serialization failure): the runner retries the job later instead of
    // failing it (docs/worker.md, "Jobs").
    bool retry = false;
    std::string pr_url;  // kOpened only
    std::string branch;
};

class Pipeline {
  public:
    virtual ~Pipeline() = default;

    // Runs one job. Must not throw: every failure is a PipelineResult.
    [[nodiscard]] virtual PipelineResult run(const JobContext &ctx) noexcept = 0;
};

}  // namespace relyloop::worker
