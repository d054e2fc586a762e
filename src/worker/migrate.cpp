#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <set>

#include "commands.hpp"
#include "common/schema.hpp"
#include "db.hpp"

namespace relyloop::worker {

namespace {

constexpr const char kCreateVersions[] = R"SQL(
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INT         PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
)SQL";

// The ten tables RelyLoop and this project share.
constexpr const char kSharedTables[] =
    "'config_repos','clusters','query_templates','query_sets','queries','judgment_lists',"
    "'studies','trials','digests','proposals'";

constexpr const char kUpgradeHead[] = "run upstream's \"alembic upgrade head\"";

int latest_version() {
    int v = 0;
    for (const schema::Migration &m : schema::migrations()) {
        v = std::max(v, m.version);
    }
    return v;
}

std::string join(const std::vector<std::string> &v, const char *sep) {
    std::string s;
    for (const std::string &x : v) {
        s += (s.empty() ? "" : sep) + x;
    }
    return s;
}

// A revision of digits only, numerically below the supported one.
bool revision_behind(const std::string &v) {
    if (v.empty() || v.size() > 9 ||
        !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return false;
    }
    int n = 0;
    int want = 0;
    std::from_chars(v.data(), v.data() + v.size(), n);
    const std::string_view sup = schema::kUpstreamRevision;
    std::from_chars(sup.data(), sup.data() + sup.size(), want);
    return n < want;
}

// Polls for the migrate lock so that no session ever waits for it inside a
// transaction (CREATE INDEX CONCURRENTLY would wait for that transaction).
void begin_locked(PGconn *conn) {
    for (;;) {
        PgResult b = db::exec(conn, "BEGIN");
        PgResult l = db::exec(conn, "SELECT pg_try_advisory_xact_lock($1::bigint)",
                              {std::to_string(schema::kMigrateLockKey)});
        if (db::get_or(l.get(), 0, 0) == "t") {
            return;
        }
        PgResult rb = db::exec(conn, "ROLLBACK");
        usleep(50 * 1000);
    }
}

void session_lock(PGconn *conn, bool take) {
    if (!take) {
        PgResult u = db::exec(conn, "SELECT pg_advisory_unlock($1::bigint)",
                              {std::to_string(schema::kMigrateLockKey)});
        return;
    }
    for (;;) {
        PgResult l = db::exec(conn, "SELECT pg_try_advisory_lock($1::bigint)",
                              {std::to_string(schema::kMigrateLockKey)});
        if (db::get_or(l.get(), 0, 0) == "t") {
            return;
        }
        usleep(50 * 1000);
    }
}

// Own indexes that are absent (false) or INVALID (true) — left by a crashed
// concurrent build.
std::vector<std::pair<const schema::OwnIndex *, bool>> own_indexes_to_build(PGconn *conn) {
    PgResult r = db::exec(conn,
                          "SELECT c.relname, i.indisvalid FROM pg_class c "
                          "JOIN pg_index i ON i.indexrelid = c.oid "
                          "WHERE c.relnamespace = current_schema()::regnamespace");
    std::set<std::string> valid;
    std::set<std::string> invalid;
    for (int i = 0; i < PQntuples(r.get()); i++) {
        (db::get_or(r.get(), i, 1) == "t" ? valid : invalid).insert(db::get_or(r.get(), i, 0));
    }
    std::vector<std::pair<const schema::OwnIndex *, bool>> todo;
    for (const schema::OwnIndex &ix : schema::own_indexes()) {
        if (valid.count(ix.name) == 0) {
            todo.emplace_back(&ix, invalid.count(ix.name) != 0);
        }
    }
    return todo;
}

// After the commit: each own index CONCURRENTLY, so serving goes on meanwhile.
void build_own_indexes(PGconn *conn, FILE *out) {
    if (own_indexes_to_build(conn).empty()) {
        return;
    }
    session_lock(conn, true);
    try {
        for (const auto &[ix, invalid] : own_indexes_to_build(conn)) {
            if (invalid) {
                std::string drop = std::string("DROP INDEX CONCURRENTLY IF EXISTS ") + ix->name;
                PgResult d = db::exec(conn, drop.c_str());
            }
            PgResult c = db::exec(conn, ix->create_sql);
            std::fprintf(out, "%s own index %s\n", invalid ? "rebuilt invalid" : "created",
                         ix->name);
        }
    } catch (...) {
        session_lock(conn, false);
        throw;
    }
    session_lock(conn, false);
}

// Own tables and the leftovers of a step 1 run on an upstream database, in
// the locked transaction. Never touches an upstream-owned object.
void add_own_objects(PGconn *conn, FILE *out) {
    static constexpr const char *kOwn[] = {"schema_migrations", "pr_jobs", "webhook_deliveries",
                                           "webhook_jobs", "worker_ticks"};
    PgResult before = db::exec(conn,
                               "SELECT to_regclass('schema_migrations') IS NOT NULL, "
                               "to_regclass('pr_jobs') IS NOT NULL, "
                               "to_regclass('webhook_deliveries') IS NOT NULL, "
                               "to_regclass('webhook_jobs') IS NOT NULL, "
                               "to_regclass('worker_ticks') IS NOT NULL, "
                               "to_regclass('trials_study_metric_idx') IS NOT NULL");
    db::exec_script(conn, schema::own_tables_sql());
    for (int i = 0; i < 5; i++) {
        if (db::get_or(before.get(), 0, i) != "t") {
            std::fprintf(out, "created own table %s\n", kOwn[i]);
        }
    }
    if (db::get_or(before.get(), 0, 5) == "t") {
        PgResult d = db::exec(conn, "DROP INDEX trials_study_metric_idx");
        std::fprintf(out,
                     "dropped own index trials_study_metric_idx (upstream's "
                     "trials_study_metric covers it)\n");
    }
}

// Steps 1, 2, … not yet in schema_migrations. Returns how many ran.
int apply_steps(PGconn *conn, FILE *out, int *newest_in_db) {
    PgResult c = db::exec(conn, kCreateVersions);
    PgResult v = db::exec(conn, "SELECT version FROM schema_migrations");
    std::set<int> applied;
    for (int i = 0; i < PQntuples(v.get()); i++) {
        applied.insert(static_cast<int>(db::get_int(v.get(), i, 0)));
    }
    *newest_in_db = applied.empty() ? 0 : *applied.rbegin();
    int count = 0;
    for (const schema::Migration &m : schema::migrations()) {
        if (applied.count(m.version) != 0) {
            continue;
        }
        db::exec_script(conn, m.sql);
        PgResult ins = db::exec(
            conn, "INSERT INTO schema_migrations (version, applied_at) VALUES ($1::int, now())",
            {std::to_string(m.version)});
        std::fprintf(out, "applied migration %d: %s\n", m.version, m.name);
        count++;
    }
    return count;
}

}  // namespace

std::vector<std::string> missing_columns(PGconn *conn) {
    PgResult r =
        db::exec(conn,
                 "SELECT table_name, column_name, data_type FROM information_schema.columns "
                 "WHERE table_schema = current_schema()");
    std::set<std::pair<std::string, std::string>> have;
    std::set<std::string> typed;
    for (int i = 0; i < PQntuples(r.get()); i++) {
        std::string t = db::get_or(r.get(), i, 0);
        std::string c = db::get_or(r.get(), i, 1);
        typed.insert(t + "." + c + ":" + db::get_or(r.get(), i, 2));
        have.emplace(std::move(t), std::move(c));
    }
    std::vector<std::string> missing;
    for (const schema::RequiredColumn &rc : schema::required_columns()) {
        std::string name = std::string(rc.table) + "." + rc.column;
        if (have.count({rc.table, rc.column}) == 0) {
            missing.push_back(name);
        } else if (rc.type != nullptr && typed.count(name + ":" + rc.type) == 0) {
            missing.push_back(name + " of type " + rc.type);
        }
    }
    return missing;
}

SchemaVersion read_schema_version(PGconn *conn) {
    SchemaVersion sv;
    sv.latest = latest_version();
    std::string q = std::string(
                        "SELECT to_regclass('alembic_version') IS NOT NULL, "
                        "to_regclass('schema_migrations') IS NOT NULL, "
                        "(to_regclass('pr_jobs') IS NOT NULL AND "
                        "to_regclass('webhook_deliveries') IS NOT NULL AND "
                        "to_regclass('webhook_jobs') IS NOT NULL AND "
                        "to_regclass('worker_ticks') IS NOT NULL), "
                        "(SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() "
                        "AND tablename IN (") +
                    kSharedTables + "))";
    PgResult t = db::exec(conn, q.c_str());
    bool alembic = db::get_or(t.get(), 0, 0) == "t";
    sv.table_exists = db::get_or(t.get(), 0, 1) == "t";
    sv.own_tables = sv.table_exists && db::get_or(t.get(), 0, 2) == "t";
    bool shared = db::get_or(t.get(), 0, 3) != "0";
    if (sv.table_exists) {
        PgResult r = db::exec(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations");
        sv.current = static_cast<int>(db::get_int(r.get(), 0, 0));
    }
    if (alembic) {
        PgResult a = db::exec(conn, "SELECT version_num::text FROM alembic_version");
        std::vector<std::string> rows;
        for (int i = 0; i < PQntuples(a.get()); i++) {
            rows.push_back(db::get_or(a.get(), i, 0));
        }
        sv.alembic = rows.empty() ? "(no row)" : join(rows, ",");
        if (rows.size() == 1 && rows[0] == schema::kUpstreamRevision) {
            sv.kind = DbKind::upstream;
        } else if (rows.size() == 1 && revision_behind(rows[0])) {
            sv.kind = DbKind::upstream_behind;
        } else {
            sv.kind = DbKind::upstream_unknown;
        }
    } else if (sv.table_exists) {
        sv.kind = DbKind::own;
    } else {
        sv.kind = shared ? DbKind::unknown : DbKind::empty;
    }
    if (sv.kind != DbKind::empty && sv.kind != DbKind::unknown) {
        sv.missing = missing_columns(conn);
    }
    return sv;
}

std::string SchemaVersion::problem() const {
    const std::string migrate = "run `relyloop-worker migrate`";
    switch (kind) {
        case DbKind::empty:
        case DbKind::own:
            if (current < latest) {
                return "database schema is at version " + std::to_string(current) +
                       ", this worker needs " + std::to_string(latest) + "; " + migrate;
            }
            if (!missing.empty()) {
                return "database lacks " + join(missing, ", ") + ": " + migrate;
            }
            return {};
        case DbKind::upstream:
        case DbKind::upstream_unknown:
            if (!missing.empty()) {
                return "upstream database lacks " + join(missing, ", ") + ": " + kUpgradeHead;
            }
            if (!own_tables) {
                return "upstream RelyLoop database without this worker's own tables; " + migrate;
            }
            return {};
        case DbKind::upstream_behind:
            return "upstream RelyLoop database at alembic revision " + alembic +
                   "; this worker needs " + schema::kUpstreamRevision + ": " + kUpgradeHead +
                   " first";
        case DbKind::unknown:
            return "refusing: the database has RelyLoop tables but neither alembic_version nor "
                   "schema_migrations";
    }
    return {};
}

int run_migrate(const Settings &settings, FILE *out, FILE *err) noexcept {
    try {
        std::string cerr;
        PgConn conn = db::connect(settings.pg_conninfo, "relyloop-worker migrate", nullptr, &cerr);
        if (!conn) {
            std::fprintf(err, "relyloop-worker migrate: cannot connect to PostgreSQL: %s\n",
                         cerr.c_str());
            return 1;
        }
        try {
            // Held until COMMIT/ROLLBACK: concurrent migrates run one by one.
            begin_locked(conn.get());
            SchemaVersion sv = read_schema_version(conn.get());
            auto refuse = [&](const std::string &why) {
                PgResult rb = db::exec(conn.get(), "ROLLBACK");
                std::fprintf(err, "relyloop-worker migrate: %s\n", why.c_str());
                return 1;
            };
            int count = 0;
            int newest_in_db = 0;
            switch (sv.kind) {
                case DbKind::empty:
                case DbKind::own:
                    count = apply_steps(conn.get(), out, &newest_in_db);
                    break;
                case DbKind::upstream_behind:
                case DbKind::unknown:
                    return refuse(sv.problem());
                case DbKind::upstream_unknown:
                    std::fprintf(out,
                                 "note: upstream alembic revision %s is not %s; checking the "
                                 "columns this worker needs\n",
                                 sv.alembic.c_str(), schema::kUpstreamRevision);
                    if (!sv.missing.empty()) {
                        return refuse("upstream database lacks " + join(sv.missing, ", ") + ": " +
                                      kUpgradeHead);
                    }
                    [[fallthrough]];
                case DbKind::upstream:
                    std::fprintf(out,
                                 "upstream RelyLoop database at alembic revision %s: adding "
                                 "only this worker's own objects\n",
                                 sv.alembic.c_str());
                    add_own_objects(conn.get(), out);
                    break;
            }
            PgResult cm = db::exec(conn.get(), "COMMIT");
            build_own_indexes(conn.get(), out);
            int latest = latest_version();
            if (sv.kind == DbKind::upstream || sv.kind == DbKind::upstream_unknown) {
                std::fprintf(out, "own objects are in place\n");
            } else if (count == 0) {
                std::fprintf(out, "schema is up to date (version %d)\n",
                             std::max(latest, newest_in_db));
            } else {
                std::fprintf(out, "schema migrated to version %d\n", latest);
            }
            if (newest_in_db > latest) {
                std::fprintf(out,
                             "note: the database has schema version %d, newer than this "
                             "worker's %d\n",
                             newest_in_db, latest);
            }
            std::fflush(out);
            return 0;
        } catch (const DbError &e) {
            PgResult rb(PQexec(conn.get(), "ROLLBACK"));
            std::fprintf(err, "relyloop-worker migrate: %s\n", e.what());
            return 1;
        }
    } catch (const std::exception &e) {
        std::fprintf(err, "relyloop-worker migrate: %s\n", e.what());
        return 1;
    } catch (...) {
        std::fprintf(err, "relyloop-worker migrate: unexpected error\n");
        return 1;
    }
}

}  // namespace relyloop::worker
