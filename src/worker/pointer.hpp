#pragma once

// The last-merged pointer rule (docs/worker.md, "Last-merged pointer"): run
// inside the transaction that moved `proposal_id` to pr_merged, on a READ
// COMMITTED connection.
//   1. SELECT last_merged_proposal_id … FOR UPDATE (the config repo row);
//   2. a separate statement, so a fresh snapshot taken after the lock was
//      granted, reads the pointed-to proposal's pr_merged_at;
//   3. the pointer moves when it is NULL, the row is gone or has no
//      pr_merged_at, or this merge is strictly newer.
// A single-statement form would read the old row from a snapshot older than
// the lock wait, and an older merge committing second could win.

#include <libpq-fe.h>

#include <string>

namespace relyloop::worker {

class EventLog;

// Returns true when the pointer now names `proposal_id`. Throws DbError.
bool apply_last_merged_pointer(PGconn *conn, const std::string &proposal_id,
                               const std::string &merged_at, EventLog &log);

}  // namespace relyloop::worker
