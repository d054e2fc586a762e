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

int latest_version() {
    int v = 0;
    for (const schema::Migration &m : schema::migrations()) {
        v = std::max(v, m.version);
    }
    return v;
}

}  // namespace

SchemaVersion read_schema_version(PGconn *conn) {
    SchemaVersion sv;
    sv.latest = latest_version();
    PgResult t = db::exec(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL");
    sv.table_exists = db::get_or(t.get(), 0, 0) == "t";
    if (sv.table_exists) {
        PgResult r = db::exec(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations");
        sv.current = static_cast<int>(db::get_int(r.get(), 0, 0));
    }
    return sv;
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
            PgResult b = db::exec(conn.get(), "BEGIN");
            // Held until COMMIT/ROLLBACK: concurrent migrates run one by one.
            PgResult l = db::exec(conn.get(), "SELECT pg_advisory_xact_lock($1::bigint)",
                                  {std::to_string(schema::kMigrateLockKey)});
            PgResult c = db::exec(conn.get(), kCreateVersions);
            PgResult v = db::exec(conn.get(), "SELECT version FROM schema_migrations");
            std::set<int> applied;
            for (int i = 0; i < PQntuples(v.get()); i++) {
                applied.insert(static_cast<int>(db::get_int(v.get(), i, 0)));
            }
            int count = 0;
            for (const schema::Migration &m : schema::migrations()) {
                if (applied.count(m.version) != 0) {
                    continue;
                }
                db::exec_script(conn.get(), m.sql);
                PgResult ins = db::exec(
                    conn.get(),
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1::int, now())",
                    {std::to_string(m.version)});
                std::fprintf(out, "applied migration %d: %s\n", m.version, m.name);
                count++;
            }
            PgResult cm = db::exec(conn.get(), "COMMIT");
            int latest = latest_version();
            int newest_in_db = applied.empty() ? 0 : *applied.rbegin();
            if (count == 0) {
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
