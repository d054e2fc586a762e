#pragma once

// The sub-commands and the shared entry point of relyloop-worker and of the
// test binary relyloop-test-worker (which plugs in a scripted Pipeline).

#include <libpq-fe.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "event_log.hpp"
#include "pipeline.hpp"
#include "settings.hpp"

namespace relyloop::worker {

// `relyloop-worker migrate` (docs/upstream-schema.md): recognises the kind
// of database, then on an empty or own one applies the missing steps of
// common/schema in one transaction (schema_migrations created in the same
// transaction), on an upstream RelyLoop one adds only the own tables; then,
// after the commit, creates the own indexes CONCURRENTLY. Each phase holds
// kMigrateLockKey (taken by polling, so no session waits on it inside a
// transaction a concurrent index build would wait for). Exit status.
[[nodiscard]] int run_migrate(const Settings &settings, FILE *out, FILE *err) noexcept;

enum class DbKind {
    empty,             // no marker, none of the shared tables
    own,               // schema_migrations, no alembic_version
    upstream,          // alembic_version at the supported revision
    upstream_behind,   // alembic_version older than the supported revision
    upstream_unknown,  // alembic_version with another value (or 0 / 2+ rows)
    unknown,           // shared tables, neither marker
};

struct SchemaVersion {
    DbKind kind = DbKind::empty;
    std::string alembic;  // the alembic_version value (upstream kinds)
    bool table_exists = false;
    int current = 0;                   // highest applied own step, 0 when none
    int latest = 0;                    // the highest step this binary knows
    bool own_tables = false;           // pr_jobs and schema_migrations exist
    std::vector<std::string> missing;  // required columns absent ("table.column")

    // Why this worker cannot run on the database as it is ("" = it can), ending
    // in what to run.
    [[nodiscard]] std::string problem() const;
};
// Throws DbError.
[[nodiscard]] SchemaVersion read_schema_version(PGconn *conn);
// The required columns (common/schema) absent from the database. Throws DbError.
[[nodiscard]] std::vector<std::string> missing_columns(PGconn *conn);

// `relyloop-worker check`: validates configuration and connectivity, prints
// one line per check, stops at the first failure. Exit status (0 = all ok).
[[nodiscard]] int run_check(const Settings &settings, FILE *out, FILE *err) noexcept;

// The daemon: socket listener, job runner, graceful shutdown on
// SIGTERM/SIGINT. Returns the exit status (0 after a clean shutdown).
[[nodiscard]] int run_daemon(const Settings &settings, Pipeline &pipeline, EventLog &log) noexcept;

using PipelineFactory =
    std::function<std::unique_ptr<Pipeline>(const Settings &settings, EventLog &log)>;

// Parses argv and runs the sub-command (daemon: with the factory's pipeline).
// Usage errors exit 2.
[[nodiscard]] int worker_main(int argc, char **argv, const PipelineFactory &make_pipeline) noexcept;

}  // namespace relyloop::worker
