// POST/GET /api/v1/config-repos, GET /api/v1/config-repos/{id}

#include "api/crud.hpp"
#include "api/validation.hpp"
#include "common/json_writer.hpp"
#include "common/secret.hpp"
#include "common/uuid.hpp"
#include "common/validate.hpp"

namespace relyloop::core {

namespace {

constexpr StringRule kNameRule{128, 1, valid_config_repo_name, "must match ^[a-z0-9][a-z0-9-]*$"};
constexpr StringRule kUrlRule{512, 1};
constexpr StringRule kBranchRule{
    128, 1, valid_branch_name,
    "must be a valid git branch name matching ^[A-Za-z0-9][A-Za-z0-9._/-]*$"};
constexpr StringRule kRefRule{128, 1, valid_auth_ref, "must match ^[A-Za-z0-9_-]+$"};

constexpr int kCreatedCol = db::layout::config_repo::created_at;

// Check order of docs/api.md ("Config repos"): body (422) → URL (400) → auth_ref file (400) →
// name (the INSERT; a unique violation, also of a racing create, is 409).
class CreateHandler : public Handler {
  public:
    CreateHandler() : Handler(Endpoint::kConfigRepoCreate) {}

    Action start(Context &ctx) override {
        BodyReader r(ctx.body(), true);
        auto name = r.string("name", true, kNameRule);
        auto url = r.string("repo_url", true, kUrlRule);
        auto default_branch = r.string("default_branch", false, kBranchRule);
        auto base_branch = r.string("pr_base_branch", false, kBranchRule);
        auto auth_ref = r.string("auth_ref", true, kRefRule);
        auto webhook_ref = r.string("webhook_secret_ref", false, kRefRule);
        r.done();

        const CoreConf &conf = ctx.conf();
        if (!parse_repo_url(*url, conf.github_web_url)) {
            throw Error(ErrorCode::kUnsupportedProvider,
                        "Only GitHub repositories are supported: repo_url must be " +
                            conf.github_web_url +
                            "/<owner>/<repo> (github_web_url); GitLab, Bitbucket and other "
                            "providers are not supported");
        }
        // By stat only (nginx cannot read PATs); an empty file is accepted
        // here, open_pr's preflight refuses it.
        SecretStatus st = stat_secret_file(conf.secrets_dir, *auth_ref);
        if (st != SecretStatus::kOk && st != SecretStatus::kEmpty) {
            throw Error(ErrorCode::kAuthRefNotFound,
                        "auth_ref \"" + *auth_ref + "\" does not name a usable file in the " +
                            "secrets directory: " + secret_status_text(st));
        }
        name_ = *name;
        return Action::write(
            db::Stmt::kConfigRepoInsert,
            {uuid_v7(), std::move(name), std::move(url), default_branch.value_or("main"),
             base_branch.value_or("main"), std::move(auth_ref), std::move(webhook_ref), uuid_v7()});
    }

    Action on_rows(Context &, const PGresult *res) override {
        expect_one_row(res, db::kConfigRepoCols, "config repo insert");
        return Action::respond(object_response(201, render_config_repo, res, 0));
    }

  protected:
    std::string conflict_message(ErrorCode code) override {
        if (code == ErrorCode::kConfigRepoNameTaken) {
            return "Config repo name \"" + name_ + "\" is already taken";
        }
        return Handler::conflict_message(code);
    }

  private:
    std::string name_;
};

// POST /config-repos/{id}/register_webhook: queue the registration job
// (docs/webhooks.md); a live job answers the same 202 without a second one.
class RegisterWebhookHandler : public Handler {
  public:
    RegisterWebhookHandler() : Handler(Endpoint::kConfigRepoRegisterWebhook) {}

    Action start(Context &ctx) override {
        // None, {} or any JSON object; ignored.
        (void)parse_body_object(ctx.body(), false);
        return Action::write(db::Stmt::kConfigRepoRegisterWebhook, {ctx.id(), uuid_v7()});
    }

    // repo_found, secret_set, inserted
    Action on_rows(Context &ctx, const PGresult *res) override {
        expect_one_row(res, 3, "register webhook");
        db::Row row(res, 0);
        if (!row.boolean_value(0)) {
            return Action::not_found(ErrorCode::kConfigRepoNotFound, "Config repo", ctx.id());
        }
        if (!row.boolean_value(1)) {
            return Action::respond(
                error_response(422, "WEBHOOK_SECRET_REF_NOT_SET",
                               "config repo " + ctx.id() + " has no webhook_secret_ref", false));
        }
        std::string body = R"({"config_repo_id":)";
        json::write_string(body, ctx.id());
        body += R"(,"status":"queued","message":"Webhook registration queued"})";
        return Action::respond(json_response(202, std::move(body)));
    }
};

constexpr std::string_view kListParams[] = {"since", "limit", "cursor"};
constexpr ListSpec kListSpec{kListParams, {}, false, db::Stmt::kConfigRepoList};

}  // namespace

std::unique_ptr<Handler> make_config_repo_handler(Endpoint e) {
    switch (e) {
        case Endpoint::kConfigRepoRegisterWebhook:
            return std::make_unique<RegisterWebhookHandler>();
        case Endpoint::kConfigRepoCreate:
            return std::make_unique<CreateHandler>();
        case Endpoint::kConfigRepoList:
            return std::make_unique<ListHandler>(e, db::Stmt::kConfigRepoList, db::kConfigRepoCols,
                                                 render_config_repo, kCreatedCol, nullptr,
                                                 &kListSpec);
        default:
            return std::make_unique<GetByIdHandler>(
                e, db::Stmt::kConfigRepoGet, db::kConfigRepoCols + db::kProposalSummaryCols,
                render_config_repo_detail, ErrorCode::kConfigRepoNotFound, "Config repo");
    }
}

}  // namespace relyloop::core
