#pragma once

// The sub-commands and the shared entry point of relyloop-worker and of the
// test binary relyloop-test-worker (which plugs in a scripted Pipeline).

#include <libpq-fe.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "event_log.hpp"
#include "pipeline.hpp"
#include "settings.hpp"

namespace relyloop::worker {

// `relyloop-worker migrate`: applies the missing steps of common/schema in
// one transaction under pg_advisory_xact_lock(kMigrateLockKey), creating
// schema_migrations in the same locked transaction, so concurrent runs
// serialize and the later ones find nothing to do. Exit status.
[[nodiscard]] int run_migrate(const Settings &settings, FILE *out, FILE *err) noexcept;

struct SchemaVersion {
    bool table_exists = false;
    int current = 0;  // highest applied version, 0 when none
    int latest = 0;   // the highest version this binary knows
};
// Throws DbError.
[[nodiscard]] SchemaVersion read_schema_version(PGconn *conn);

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
