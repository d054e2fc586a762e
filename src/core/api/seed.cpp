// POST /api/v1/_test/studies/seed-completed — development only: the router
// does not know the route in other environments, so it is a 404
// RESOURCE_NOT_FOUND before the body is even looked at.

#include "api/crud.hpp"
#include "api/validation.hpp"
#include "common/uuid.hpp"

namespace relyloop::core {

namespace {

class SeedHandler : public Handler {
  public:
    SeedHandler() : Handler(Endpoint::kSeed) {}

    Action start(Context &ctx) override {
        BodyReader r(ctx.body(), true);
        auto cluster = r.string("cluster_id", true, kIdRule);
        auto tmpl = r.string("template_id", true, kIdRule);
        auto query_set = r.string("query_set_id", false, kIdRule);
        auto judgments = r.string("judgment_list_id", false, kIdRule);
        auto with_proposal = r.boolean("with_pending_proposal", false);
        r.done();

        cluster_id_ = *cluster;
        template_id_ = *tmpl;
        query_set_id_ = query_set.value_or("");
        judgment_list_id_ = judgments.value_or("");
        Param proposal;
        if (with_proposal.value_or(true)) {
            proposal = uuid_v7();
        }
        std::string study = uuid_v7();
        std::string winner = uuid_v7();
        std::string other = uuid_v7();
        std::string digest = uuid_v7();
        return Action::write(
            db::Stmt::kSeedCompleted,
            {std::move(study), std::move(winner), std::move(other), std::move(digest),
             std::move(proposal), std::move(cluster), std::move(tmpl), std::move(query_set),
             std::move(judgments), uuid_v7(), uuid_v7()});
    }

    // cluster_ok, template_ok, query_set_ok, judgment_list_ok, study id,
    // digest id, proposal id, trial count
    Action on_rows(Context &, const PGresult *res) override {
        expect_one_row(res, 8, "seed");
        db::Row row(res, 0);
        if (!row.boolean_value(0)) {
            return Action::not_found(ErrorCode::kClusterNotFound, "Cluster", cluster_id_);
        }
        if (!row.boolean_value(1)) {
            return Action::not_found(ErrorCode::kTemplateNotFound, "Template", template_id_);
        }
        if (!row.boolean_value(2)) {
            return Action::not_found(ErrorCode::kResourceNotFound, "Query set", query_set_id_);
        }
        if (!row.boolean_value(3)) {
            return Action::not_found(ErrorCode::kResourceNotFound, "Judgment list",
                                     judgment_list_id_);
        }
        Response resp;
        resp.status = 201;
        db::RowWriter(resp.body, row)
            .open()
            .str("study_id", 4)
            .str("digest_id", 5)
            .str("proposal_id", 6)
            .close();
        return Action::respond(std::move(resp));
    }

  private:
    std::string cluster_id_;
    std::string template_id_;
    std::string query_set_id_;
    std::string judgment_list_id_;
};

}  // namespace

std::unique_ptr<Handler> make_seed_handler() { return std::make_unique<SeedHandler>(); }

}  // namespace relyloop::core
