#include "pointer.hpp"

#include "db.hpp"
#include "event_log.hpp"

namespace relyloop::worker {

bool apply_last_merged_pointer(PGconn *conn, const std::string &proposal_id,
                               const std::string &merged_at, EventLog &log) {
    // The cluster's config repo, soft-deleted clusters included.
    PgResult repo = db::exec(conn,
                             "SELECT c.config_repo_id FROM proposals p JOIN clusters c ON "
                             "c.id = p.cluster_id WHERE p.id = $1",
                             {proposal_id});
    std::optional<std::string> repo_id =
        PQntuples(repo.get()) == 1 ? db::get(repo.get(), 0, 0) : std::nullopt;
    if (!repo_id) {
        return false;
    }
    PgResult locked =
        db::exec(conn, "SELECT last_merged_proposal_id FROM config_repos WHERE id = $1 FOR UPDATE",
                 {*repo_id});
    if (PQntuples(locked.get()) != 1) {
        return false;
    }
    std::optional<std::string> previous = db::get(locked.get(), 0, 0);
    bool write = !previous;
    if (previous) {
        // A separate statement: its snapshot is taken after the lock above.
        PgResult prev = db::exec(conn,
                                 "SELECT pr_merged_at IS NULL OR $2::timestamptz > pr_merged_at "
                                 "FROM proposals WHERE id = $1",
                                 {*previous, merged_at});
        write = PQntuples(prev.get()) != 1 || db::get_or(prev.get(), 0, 0) == "t";
    }
    if (!write || previous == proposal_id) {
        log.info("config_repo_last_merged_pointer_skipped_older",
                 {{"config_repo_id", *repo_id},
                  {"previous_proposal_id", previous.value_or("")},
                  {"proposal_id", proposal_id},
                  {"pr_merged_at", merged_at}});
        return previous == proposal_id;
    }
    (void)db::exec(conn, "UPDATE config_repos SET last_merged_proposal_id = $2 WHERE id = $1",
                   {*repo_id, proposal_id});
    log.info("config_repo_last_merged_pointer_updated",
             {{"config_repo_id", *repo_id},
              {"previous_proposal_id", previous.value_or("")},
              {"new_proposal_id", proposal_id},
              {"pr_merged_at", merged_at}});
    return true;
}

}  // namespace relyloop::worker
