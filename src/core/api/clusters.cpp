// POST/GET /api/v1/clusters, GET/PATCH /api/v1/clusters/{id}. Soft-deleted
// clusters (deleted_at set) are invisible: every statement filters them.

#include "api/crud.hpp"
#include "api/validation.hpp"
#include "common/uuid.hpp"
#include "common/validate.hpp"
#include "common/json_writer.hpp"

namespace relyloop::core {

namespace {

bool http_url(std::string_view s) {
    return (s.starts_with("http://") && s.size() > 7) ||
           (s.starts_with("https://") && s.size() > 8);
}

constexpr StringRule kNameRule{128, 1};
constexpr StringRule kBaseUrlRule{512, 1, http_url, "must be an http:// or https:// URL"};
constexpr StringRule kRefRule{128, 1};
constexpr StringRule kConfigPathRule{
    512, 1, valid_config_path,
    "must be a relative path of [A-Za-z0-9_./-] characters without '..' segments"};
constexpr StringRule kNotesRule{2000, 1};

constexpr int kCreatedCol = 11;

class CreateHandler : public Handler {
  public:
    CreateHandler() : Handler(Endpoint::kClusterCreate) {}

    Action start(Context &ctx) override {
        BodyReader r(ctx.body(), true);
        auto name = r.string("name", true, kNameRule);
        auto engine = r.one_of("engine_type", true, kEngineTypes);
        auto env = r.one_of("environment", true, kEnvironments);
        auto base_url = r.string("base_url", true, kBaseUrlRule);
        auto auth_kind = r.one_of("auth_kind", true, kAuthKinds);
        auto creds = r.string("credentials_ref", true, kRefRule);
        auto repo_id = r.string("config_repo_id", false, kIdRule);
        auto path = r.string("config_path", false, kConfigPathRule);
        const json_t *engine_config = r.object("engine_config", false);
        auto notes = r.string("notes", false, kNotesRule);
        r.done();

        name_ = *name;
        repo_id_ = repo_id.value_or("");
        Param config;
        if (engine_config != nullptr) {
            config = json::dump(engine_config);
        }
        return Action::write(
            db::Stmt::kClusterInsert,
            {uuid_v7(), std::move(name), std::move(engine), std::move(env), std::move(base_url),
             std::move(auth_kind), std::move(creds), std::move(repo_id), std::move(path),
             std::move(config), std::move(notes)});
    }

    // repo_ok, Cluster
    Action on_rows(Context &, const PGresult *res) override {
        expect_one_row(res, 1 + db::kClusterCols, "cluster insert");
        db::Row row(res, 0);
        if (!row.boolean_value(0)) {
            return Action::not_found(ErrorCode::kConfigRepoNotFound, "Config repo", repo_id_);
        }
        return Action::respond(object_response(201, render_cluster, res, 1));
    }

  protected:
    std::string conflict_message(ErrorCode code) override {
        if (code == ErrorCode::kClusterNameTaken) {
            return "Cluster name \"" + name_ + "\" is already taken";
        }
        return Handler::conflict_message(code);
    }

  private:
    std::string name_;
    std::string repo_id_;
};

// PATCH {config_repo_id?, config_path?, notes?}: absent keeps, null clears,
// a value sets; an empty object changes nothing and answers the cluster.
class PatchHandler : public Handler {
  public:
    PatchHandler() : Handler(Endpoint::kClusterPatch) {}

    Action start(Context &ctx) override {
        BodyReader r(ctx.body(), false);
        Patch repo = r.patch_string("config_repo_id", kIdRule);
        Patch path = r.patch_string("config_path", kConfigPathRule);
        Patch notes = r.patch_string("notes", kNotesRule);
        r.done();

        if (!repo.present && !path.present && !notes.present) {
            read_only_ = true;
            return Action::query(db::Stmt::kClusterGet, {ctx.id()});
        }
        repo_id_ = repo.value.value_or("");
        return Action::write(
            db::Stmt::kClusterPatch,
            {ctx.id(), bool_param(repo.present), std::move(repo.value), bool_param(path.present),
             std::move(path.value), bool_param(notes.present), std::move(notes.value)});
    }

    // cluster_ok, repo_ok, Cluster (or a plain Cluster for an empty patch)
    Action on_rows(Context &ctx, const PGresult *res) override {
        if (read_only_) {
            expect_columns(res, db::kClusterCols);
            if (PQntuples(res) == 0) {
                return not_found(ctx);
            }
            return Action::respond(object_response(200, render_cluster, res, 0));
        }
        expect_one_row(res, 2 + db::kClusterCols, "cluster patch");
        db::Row row(res, 0);
        if (!row.boolean_value(0)) {
            return not_found(ctx);
        }
        if (!row.boolean_value(1)) {
            return Action::not_found(ErrorCode::kConfigRepoNotFound, "Config repo", repo_id_);
        }
        if (row.null(2)) {
            // The cluster was soft-deleted between the check and the update.
            return not_found(ctx);
        }
        return Action::respond(object_response(200, render_cluster, res, 2));
    }

  private:
    static Action not_found(Context &ctx) {
        return Action::not_found(ErrorCode::kClusterNotFound, "Cluster", ctx.id());
    }

    bool read_only_ = false;
    std::string repo_id_;
};

}  // namespace

std::unique_ptr<Handler> make_cluster_handler(Endpoint e) {
    switch (e) {
        case Endpoint::kClusterCreate:
            return std::make_unique<CreateHandler>();
        case Endpoint::kClusterPatch:
            return std::make_unique<PatchHandler>();
        case Endpoint::kClusterList:
            return std::make_unique<ListHandler>(e, db::Stmt::kClusterList, db::kClusterCols,
                                                 render_cluster, kCreatedCol);
        default:
            return std::make_unique<GetByIdHandler>(e, db::Stmt::kClusterGet, db::kClusterCols,
                                                    render_cluster, ErrorCode::kClusterNotFound,
                                                    "Cluster");
    }
}

}  // namespace relyloop::core
