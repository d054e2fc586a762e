#include "job_store.hpp"

#include "common/redact.hpp"
#include "common/uuid.hpp"
#include "db.hpp"

namespace relyloop::worker::jobs {

namespace {

// The fence of a claimed job (fence_params(): id, worker_id, attempts): every
// write for a job matches the claim that made it, so a worker that lost its
// lease can never overwrite the outcome of the claim that replaced it.
#define RL_FENCED "WHERE id = $1 AND worker_id = $2 AND attempts = $3::int AND state = 'running'"

// One round trip for every outcome: the live job if there is one (the
// common case of a repeated click: a read, no speculative insertion), else
// insert-if-absent against the partial unique index (the dedup key) and the
// notification, in one statement so both commit together. Columns: inserted
// id, live id, proposal exists. Both ids NULL with the proposal present means
// a concurrent enqueue won the insert: look again.
constexpr const char kEnqueueSql[] = R"SQL(
WITH live AS (
    SELECT id FROM pr_jobs WHERE proposal_id = $2 AND state IN ('queued', 'running')
    ORDER BY created_at DESC LIMIT 1),
ins AS (
    INSERT INTO pr_jobs (id, proposal_id, state, attempts, lock_waits, run_after, created_at)
    SELECT $1, p.id, 'queued', 0, 0, now(), now() FROM proposals p
    WHERE p.id = $2 AND NOT EXISTS (SELECT 1 FROM live)
    ON CONFLICT (proposal_id) WHERE state IN ('queued', 'running') DO NOTHING
    RETURNING id),
notified AS (SELECT pg_notify(')SQL" RELYLOOP_JOBS_CHANNEL R"SQL(', id) FROM ins)
SELECT (SELECT id FROM ins), (SELECT id FROM live),
       EXISTS (SELECT 1 FROM proposals WHERE id = $2), (SELECT count(*) FROM notified)
)SQL";

constexpr const char kLiveJobSql[] = R"SQL(
SELECT id FROM pr_jobs WHERE proposal_id = $1 AND state IN ('queued', 'running')
ORDER BY created_at DESC LIMIT 1
)SQL";

constexpr const char kCountsSql[] = R"SQL(
SELECT count(*) FILTER (WHERE state = 'queued'), count(*) FILTER (WHERE state = 'running')
FROM pr_jobs WHERE state IN ('queued', 'running')
)SQL";

constexpr const char kClaimSql[] = R"SQL(
WITH c AS (
    SELECT id, state AS prev_state, worker_id AS prev_worker
    FROM pr_jobs
    WHERE (state = 'queued' AND run_after <= now())
       OR (state = 'running' AND lease_until < now())
    ORDER BY run_after, created_at
    FOR UPDATE SKIP LOCKED
    LIMIT 1)
UPDATE pr_jobs j
SET state = 'running',
    attempts = j.attempts + 1,
    lease_until = now() + $2::bigint * interval '1 millisecond',
    worker_id = $1,
    started_at = coalesce(j.started_at, now()),
    last_event = 'claimed'
FROM c
WHERE j.id = c.id
RETURNING j.id, j.proposal_id, j.attempts, j.lock_waits, c.prev_state, c.prev_worker
)SQL";

constexpr const char kNextDueSql[] = R"SQL(
SELECT greatest(0, ceil(extract(epoch FROM (min(t) - now())) * 1000))::bigint
FROM (SELECT min(run_after) AS t FROM pr_jobs WHERE state = 'queued'
      UNION ALL
      SELECT min(lease_until) FROM pr_jobs WHERE state = 'running') s
)SQL";

constexpr const char kProposalSql[] = R"SQL(
SELECT p.status, p.cluster_id, (c.id IS NOT NULL AND c.deleted_at IS NULL),
       c.config_repo_id, (r.id IS NOT NULL)
FROM proposals p
LEFT JOIN clusters c ON c.id = p.cluster_id
LEFT JOIN config_repos r ON r.id = c.config_repo_id
WHERE p.id = $1
)SQL";

constexpr const char kSucceededSql[] = R"SQL(
UPDATE pr_jobs SET state = 'succeeded', finished_at = now(), lease_until = NULL,
    last_event = $4, last_error = NULL
)SQL" RL_FENCED R"SQL(
)SQL";

constexpr const char kFailedSql[] = R"SQL(
WITH j AS (
    UPDATE pr_jobs SET state = 'failed', finished_at = now(), lease_until = NULL,
        last_event = 'pr_open_failed', last_error = $4
    )SQL" RL_FENCED R"SQL(
    RETURNING proposal_id),
p AS (
    UPDATE proposals SET pr_open_error = $4
    FROM j WHERE proposals.id = j.proposal_id AND proposals.status = 'pending'
    RETURNING proposals.id)
SELECT (SELECT count(*) FROM j), (SELECT count(*) FROM p)
)SQL";

constexpr const char kReleaseSql[] = R"SQL(
WITH r AS (
    UPDATE pr_jobs SET state = 'queued', lease_until = NULL, worker_id = NULL,
        attempts = greatest(attempts - 1, 0), run_after = now(), last_event = 'released'
    )SQL" RL_FENCED R"SQL(
    RETURNING id)
SELECT id, pg_notify(')SQL" RELYLOOP_JOBS_CHANNEL R"SQL(', id) FROM r
)SQL";

constexpr const char kRequeueSql[] = R"SQL(
WITH r AS (
    UPDATE pr_jobs SET state = 'queued', lease_until = NULL, worker_id = NULL,
        run_after = now() + $4::bigint * interval '1 millisecond', last_event = 'retry',
        last_error = $5
    )SQL" RL_FENCED R"SQL(
    RETURNING id)
SELECT id, pg_notify(')SQL" RELYLOOP_JOBS_CHANNEL R"SQL(', id) FROM r
)SQL";

constexpr const char kDeferSql[] = R"SQL(
UPDATE pr_jobs SET state = 'queued', lease_until = NULL, worker_id = NULL,
    attempts = greatest(attempts - 1, 0), lock_waits = lock_waits + 1,
    run_after = now() + $4::bigint * interval '1 millisecond',
    last_event = 'pr_open_lock_contention'
)SQL" RL_FENCED R"SQL(
)SQL";

constexpr const char kLastEventSql[] = R"SQL(
UPDATE pr_jobs SET last_event = $4
)SQL" RL_FENCED R"SQL(
)SQL";

// pg_locks shows a bigint advisory key as classid = high 32 bits,
// objid = low 32 bits, objsubid = 1.
constexpr const char kRenewSql[] = R"SQL(
UPDATE pr_jobs SET lease_until = now() + $4::bigint * interval '1 millisecond'
)SQL" RL_FENCED R"SQL(
RETURNING (NOT $5::boolean) OR EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND pid = $6::int
      AND classid = $7::oid AND objid = $8::oid AND objsubid = 1)
)SQL";

std::vector<db::Param> fence_params(const Fence &f) {
    return {f.job_id, f.worker_id, std::to_string(f.attempts)};
}

}  // namespace

EnqueueResult enqueue(PGconn *conn, std::string_view proposal_id) {
    std::string pid(proposal_id);
    // A concurrent enqueue can win the insert after our snapshot saw no live
    // job; the next round then sees it. Three rounds are plenty.
    for (int round = 0; round < 3; round++) {
        std::string id = uuid_v7();
        PgResult r = db::exec_prepared(conn, "relyloop_enqueue", kEnqueueSql, {id, pid});
        if (!PQgetisnull(r.get(), 0, 0)) {
            return {EnqueueResult::Status::kCreated, db::get_or(r.get(), 0, 0)};
        }
        if (!PQgetisnull(r.get(), 0, 1)) {
            return {EnqueueResult::Status::kDeduplicated, db::get_or(r.get(), 0, 1)};
        }
        if (std::string_view(PQgetvalue(r.get(), 0, 2)) != "t") {
            return {EnqueueResult::Status::kProposalNotFound, {}};
        }
        PgResult live = db::exec(conn, kLiveJobSql, {pid});
        if (PQntuples(live.get()) == 1) {
            return {EnqueueResult::Status::kDeduplicated, db::get_or(live.get(), 0, 0)};
        }
    }
    throw DbError("", "enqueue did not settle after 3 rounds");
}

Counts counts(PGconn *conn) {
    PgResult r = db::exec_prepared(conn, "relyloop_job_counts", kCountsSql);
    return {db::get_int(r.get(), 0, 0), db::get_int(r.get(), 0, 1)};
}

std::optional<ClaimedJob> claim(PGconn *conn, const std::string &worker_id,
                                std::chrono::milliseconds lease_ttl) {
    PgResult r = db::exec(conn, kClaimSql, {worker_id, std::to_string(lease_ttl.count())});
    if (PQntuples(r.get()) != 1) {
        return std::nullopt;
    }
    ClaimedJob j;
    j.id = db::get_or(r.get(), 0, 0);
    j.proposal_id = db::get_or(r.get(), 0, 1);
    j.attempts = static_cast<int>(db::get_int(r.get(), 0, 2));
    j.lock_waits = static_cast<int>(db::get_int(r.get(), 0, 3));
    j.reclaimed = db::get_or(r.get(), 0, 4) == "running";
    j.previous_worker = db::get_or(r.get(), 0, 5);
    return j;
}

std::optional<long long> next_due_ms(PGconn *conn) {
    PgResult r = db::exec(conn, kNextDueSql);
    auto v = db::get(r.get(), 0, 0);
    if (!v) {
        return std::nullopt;
    }
    return db::get_int(r.get(), 0, 0);
}

ProposalInfo read_proposal(PGconn *conn, std::string_view proposal_id) {
    PgResult r = db::exec(conn, kProposalSql, {std::string(proposal_id)});
    ProposalInfo p;
    if (PQntuples(r.get()) != 1) {
        return p;
    }
    p.found = true;
    p.status = db::get_or(r.get(), 0, 0);
    p.cluster_id = db::get_or(r.get(), 0, 1);
    p.cluster_live = db::get_or(r.get(), 0, 2) == "t";
    p.config_repo_id = db::get_or(r.get(), 0, 3);
    p.repo_exists = db::get_or(r.get(), 0, 4) == "t";
    return p;
}

bool finish_succeeded(PGconn *conn, const Fence &f, std::string_view last_event) {
    auto params = fence_params(f);
    params.emplace_back(redact_truncate(last_event, 64));
    PgResult r = db::exec(conn, kSucceededSql, params);
    return std::string_view(PQcmdTuples(r.get())) == "1";
}

bool finish_failed(PGconn *conn, const Fence &f, std::string_view error, bool *proposal_updated) {
    auto params = fence_params(f);
    params.emplace_back(std::string(error));
    PgResult r = db::exec(conn, kFailedSql, params);
    if (proposal_updated != nullptr) {
        *proposal_updated = db::get_int(r.get(), 0, 1) > 0;
    }
    return db::get_int(r.get(), 0, 0) > 0;
}

bool release(PGconn *conn, const Fence &f) {
    PgResult r = db::exec(conn, kReleaseSql, fence_params(f));
    return PQntuples(r.get()) == 1;
}

bool requeue(PGconn *conn, const Fence &f, std::chrono::milliseconds delay, std::string_view why) {
    auto params = fence_params(f);
    params.emplace_back(std::to_string(delay.count()));
    params.emplace_back(truncate_utf8(redact(why), 2000));
    PgResult r = db::exec(conn, kRequeueSql, params);
    return PQntuples(r.get()) == 1;
}

bool defer(PGconn *conn, const Fence &f, std::chrono::milliseconds delay) {
    auto params = fence_params(f);
    params.emplace_back(std::to_string(delay.count()));
    PgResult r = db::exec(conn, kDeferSql, params);
    return std::string_view(PQcmdTuples(r.get())) == "1";
}

void set_last_event(PGconn *conn, const Fence &f, std::string_view event) {
    auto params = fence_params(f);
    params.emplace_back(redact_truncate(event, 64));
    PgResult r = db::exec(conn, kLastEventSql, params);
}

bool renew(PGconn *conn, const Fence &f, std::chrono::milliseconds lease_ttl, bool check_lock,
           int backend_pid, int64_t key, bool *lock_ok) {
    auto params = fence_params(f);
    auto ukey = static_cast<uint64_t>(key);
    params.emplace_back(std::to_string(lease_ttl.count()));
    params.emplace_back(check_lock ? "true" : "false");
    params.emplace_back(std::to_string(backend_pid));
    params.emplace_back(std::to_string(ukey >> 32));
    params.emplace_back(std::to_string(ukey & 0xffffffffULL));
    PgResult r = db::exec(conn, kRenewSql, params);
    if (PQntuples(r.get()) != 1) {
        return false;
    }
    if (lock_ok != nullptr) {
        *lock_ok = db::get_or(r.get(), 0, 0) == "t";
    }
    return true;
}

bool try_lock(PGconn *conn, int64_t key, int *backend_pid) {
    PgResult r = db::exec(conn, "SELECT pg_try_advisory_lock($1::bigint), pg_backend_pid()",
                          {std::to_string(key)});
    if (backend_pid != nullptr) {
        *backend_pid = static_cast<int>(db::get_int(r.get(), 0, 1));
    }
    return db::get_or(r.get(), 0, 0) == "t";
}

bool unlock(PGconn *conn, int64_t key) {
    PgResult r = db::exec(conn, "SELECT pg_advisory_unlock($1::bigint)", {std::to_string(key)});
    return db::get_or(r.get(), 0, 0) == "t";
}

std::string format_error(std::string_view code, std::string_view message) {
    std::string s(code);
    s += ": ";
    s += message;
    return redact_truncate(s, 2000);
}

}  // namespace relyloop::worker::jobs
