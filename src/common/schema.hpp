#pragma once

#include <span>

namespace relyloop::schema {

// One step of the schema (docs/worker.md, "`migrate`"). Versions only grow; a step never changes
// once released, so an existing database is upgraded by the missing steps.
struct Migration {
    int version;
    const char *name;
    const char *sql;
};

[[nodiscard]] std::span<const Migration> migrations();

// This project's own tables (docs/upstream-schema.md), created with IF NOT
// EXISTS on an upstream RelyLoop database, where the steps above never run.
// The same definitions as step 1.
[[nodiscard]] const char *own_tables_sql();

// An own index on a shared table: created CONCURRENTLY IF NOT EXISTS after
// migrate's transaction has committed, on every kind of database.
struct OwnIndex {
    const char *name;
    const char *create_sql;  // "CREATE INDEX CONCURRENTLY IF NOT EXISTS ..."
};
[[nodiscard]] std::span<const OwnIndex> own_indexes();

// A column this project reads or writes; `type` is information_schema's
// data_type when it matters, else nullptr.
struct RequiredColumn {
    const char *table;
    const char *column;
    const char *type;
};
[[nodiscard]] std::span<const RequiredColumn> required_columns();

// The upstream RelyLoop (Alembic) revision this project's schema matches.
inline constexpr const char kUpstreamRevision[] = "0023";

// The advisory lock key every `relyloop-worker migrate` takes, so several
// workers may run it at once ("relyloop-migrate" as ASCII, big-endian).
inline constexpr long long kMigrateLockKey = 0x72656c796d696772LL;

}  // namespace relyloop::schema
