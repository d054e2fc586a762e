#pragma once

#include <span>

namespace relyloop::schema {

// One step of the schema of SPEC §4. Versions only grow; a step never changes
// once released, so an existing database is upgraded by the missing steps.
struct Migration {
    int version;
    const char *name;
    const char *sql;
};

[[nodiscard]] std::span<const Migration> migrations();

// The advisory lock key every `relyloop-worker migrate` takes, so several
// workers may run it at once ("relyloop-migrate" as ASCII, big-endian).
inline constexpr long long kMigrateLockKey = 0x72656c796d696772LL;

}  // namespace relyloop::schema
