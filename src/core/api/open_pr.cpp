// POST /api/v1/proposals/{id}/open_pr — the preflight of docs/api.md ("open_pr"), then the
// enqueue over the worker socket. The endpoint never writes the proposal.

#include "api/crud.hpp"
#include "api/validation.hpp"
#include "common/json_writer.hpp"
#include "common/secret.hpp"
#include "common/worker_protocol.hpp"

namespace relyloop::core {

namespace {

class OpenPrHandler : public Handler {
  public:
    OpenPrHandler() : Handler(Endpoint::kProposalOpenPr) {}

    Action start(Context &ctx) override {
        // The UI sends {} or nothing; any JSON object is accepted and ignored.
        (void)parse_body_object(ctx.body(), false);
        return Action::query(db::Stmt::kOpenPrPreflight, {ctx.id()});
    }

    // status, cluster id, config_repo_id, repo id, auth_ref (0..1 rows)
    Action on_rows(Context &ctx, const PGresult *res) override {
        expect_columns(res, 5);
        if (PQntuples(res) == 0) {
            return Action::not_found(ErrorCode::kProposalNotFound, "Proposal", ctx.id());
        }
        db::Row row(res, 0);
        if (row.text(0) != "pending") {
            return Action::error(ErrorCode::kInvalidStateTransition,
                                 "Proposal \"" + ctx.id() + "\" is " + std::string(row.text(0)) +
                                     "; only pending proposals can open a PR");
        }
        if (row.null(1) || row.null(2) || row.null(3)) {
            return Action::error(ErrorCode::kClusterHasNoConfigRepo,
                                 "The proposal's cluster has no config repo; bind one with "
                                 "PATCH /api/v1/clusters/{id} {\"config_repo_id\": ...}");
        }
        std::string auth_ref(row.text(4));
        // Checked, never opened: nginx's user cannot read PATs
        // (docs/security.md); the worker reads and validates the contents.
        SecretStatus st = stat_secret_file(ctx.conf().secrets_dir, auth_ref);
        if (st != SecretStatus::kOk) {
            std::string why = secret_status_text(st);
            ctx.log(RL_LOG_ERR, "github not configured: pat file of auth_ref " +
                                    json::quote(auth_ref) + ": " + why);
            return Action::error(ErrorCode::kGithubNotConfigured,
                                 "GitHub is not configured for this config repo: the PAT file of "
                                 "auth_ref \"" +
                                     auth_ref + "\" is unusable (" + why + ")");
        }
        worker_protocol::Request enqueue;
        enqueue.op = worker_protocol::Op::kEnqueue;
        enqueue.proposal_id = ctx.id();
        enqueue.request_id = ctx.request_id();
        return Action::worker(worker_protocol::encode_request(enqueue));
    }

    Action on_worker(Context &ctx, const std::string *reply, std::string_view failure) override {
        if (reply == nullptr) {
            ctx.log(RL_LOG_ERR, "worker enqueue failed: " + json::quote(failure));
            return queue_unavailable();
        }
        if (!worker_protocol::parse_enqueue_reply(*reply)) {
            ctx.log(RL_LOG_ERR, "worker refused the enqueue: " + worker_reply_excerpt(*reply));
            return queue_unavailable();
        }
        std::string body = R"({"proposal_id":)";
        json::write_string(body, ctx.id());
        body += R"(,"status":"pending","message":"PR creation queued"})";
        return Action::respond(json_response(202, std::move(body)));
    }

  private:
    static Action queue_unavailable() {
        return Action::error(ErrorCode::kQueueUnavailable, "PR queue unavailable");
    }
};

}  // namespace

std::unique_ptr<Handler> make_open_pr_handler() { return std::make_unique<OpenPrHandler>(); }

}  // namespace relyloop::core
