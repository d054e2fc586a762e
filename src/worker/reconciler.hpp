#pragma once

// The PR state reconciler (docs/worker.md, "PR state reconciler"): on its own
// thread, one tick per UTC slot of --pr-poll-minutes across every worker and
// host (advisory lock "rlreconc" + the worker_ticks row), which brings
// proposals in pr_opened up to date with their pull requests on GitHub —
// merges, closes and reopens a webhook delivery missed — and prunes expired
// webhook_deliveries rows (every tick, and at least hourly on every worker).
//
// GitHub cost: one conditional list of a repository's pulls per repository
// and tick (304 when nothing changed), more pages only while they hold PRs
// updated since the last listing, and a single-PR GET only for a candidate
// the list did not show.

#include <libpq-fe.h>

#include <map>
#include <optional>
#include <string>

#include "event_log.hpp"
#include "periodic_thread.hpp"
#include "settings.hpp"

namespace relyloop::github {
class Transport;
}

namespace relyloop::worker {

// pg_try_advisory_lock key of the tick: "rlreconc" as a big-endian int64.
inline constexpr long long kReconcileLockKey = 0x726c7265636f6e63LL;
// worker_ticks.name of the reconciler.
inline constexpr const char kReconcileTickName[] = "reconcile_pr_state";

struct TickSummary {
    long long candidates = 0;
    long long reconciled = 0;
    long long unchanged = 0;
    long long errored = 0;
    long long rate_limited = 0;
    long long github_calls = 0;  // HTTP requests sent, retries included
    long long not_modified = 0;  // of which 304
    long long pruned = 0;        // webhook_deliveries rows deleted
    bool stopped = false;        // a rate limit stopped the tick
};

// The latest slot at or before `epoch_minute`: floor(m / n) * n.
[[nodiscard]] long long slot_of(long long epoch_minute, int n) noexcept;

class Reconciler {
  public:
    Reconciler(const Settings &settings, EventLog &log);
    ~Reconciler();
    Reconciler(const Reconciler &) = delete;
    Reconciler &operator=(const Reconciler &) = delete;

    void start();
    void request_stop() noexcept;
    void join() noexcept;

    // One tick now on `conn` (the caller holds the slot). Never throws for
    // GitHub failures; DbError for the database.
    TickSummary tick(PGconn *conn);

    // Deletes expired webhook_deliveries rows, ≤ 10 000 per statement.
    long long prune(PGconn *conn);

  private:
    struct PrInfo {
        std::string state;      // "open" / "closed"
        bool merged = false;    // list: merged_at non-null; single: `merged`
        std::string merged_at;  // as GitHub wrote it ("" when null)
        std::string updated_at;
    };
    // What the last listing of a repository showed (in memory, per worker).
    struct RepoCache {
        std::string etag;       // of page 1
        std::string watermark;  // updated_at of page 1's first item
        std::map<long long, PrInfo> prs;
    };

    void thread_main() noexcept;
    // Claims `slot` (lock + worker_ticks row); true when this worker runs it.
    bool claim_slot(PGconn *conn, long long slot);

    const Settings &settings_;
    EventLog &log_;
    PeriodicThread thread_;
    std::map<std::string, RepoCache> cache_;  // key: lower-case owner/repo
    friend class TickRun;
};

}  // namespace relyloop::worker
