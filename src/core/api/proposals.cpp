// GET/POST /api/v1/proposals, GET /api/v1/proposals/{id}, POST .../reject
// (open_pr lives in open_pr.cpp).

#include "api/crud.hpp"
#include "api/validation.hpp"
#include "common/json_writer.hpp"
#include "common/uuid.hpp"

namespace relyloop::core {

namespace {

constexpr StringRule kReasonRule{500, 0};

constexpr int kCreatedCol = db::layout::proposal_summary::created_at;

constexpr std::string_view kSources[] = {"study", "manual"};

Param bool_filter(const QueryArgs &args, const char *name, Problems &problems) {
    auto b = parse_bool_filter(args, name, problems);
    return b ? bool_param(*b) : Param();
}

// status, cluster_id, study_id, template_id, include_superseded (never
// NULL), source, is_last_merged (docs/api.md, "Proposals").
std::vector<Param> list_filters(const QueryArgs &args, Problems &problems) {
    std::vector<Param> f;
    f.push_back(parse_enum_filter(args, "status", kProposalStatuses, problems));
    f.push_back(parse_id_filter(args, "cluster_id", problems));
    f.push_back(parse_id_filter(args, "study_id", problems));
    f.push_back(parse_id_filter(args, "template_id", problems));
    Param inc = bool_filter(args, "include_superseded", problems);
    f.push_back(inc ? std::move(inc) : bool_param(false));
    f.push_back(parse_enum_filter(args, "source", kSources, problems));
    f.push_back(bool_filter(args, "is_last_merged", problems));
    return f;
}

constexpr std::string_view kListParams[] = {
    "status", "cluster_id",     "study_id", "template_id", "include_superseded",
    "source", "is_last_merged", "sort",     "since",       "limit",
    "cursor"};
constexpr SortKey kSortKeys[] = {
    {"created_at", KeyType::kTimestamp}, {"status", KeyType::kText}, {"pr_state", KeyType::kText}};
constexpr ListSpec kListSpec{kListParams, kSortKeys, false, db::Stmt::kProposalListSorted};

// A manual proposal: {cluster_id, template_id, config_diff, metric_delta?}.
class CreateHandler : public Handler {
  public:
    CreateHandler() : Handler(Endpoint::kProposalCreate) {}

    Action start(Context &ctx) override {
        BodyReader r(ctx.body(), true);
        auto cluster = r.string("cluster_id", true, kIdRule);
        auto tmpl = r.string("template_id", true, kIdRule);
        const json_t *diff = r.object("config_diff", true);
        if (diff != nullptr) {
            validate_config_diff(diff, r.path("config_diff"), r.problems());
        }
        // Any JSON object, stored and served as given (docs/api.md).
        const json_t *delta = r.object("metric_delta", false);
        r.done();

        cluster_id_ = *cluster;
        template_id_ = *tmpl;
        Param delta_text;
        if (delta != nullptr) {
            delta_text = json::dump(delta);
        }
        return Action::write(db::Stmt::kProposalInsert,
                             {uuid_v7(), std::move(cluster), std::move(tmpl), json::dump(diff),
                              std::move(delta_text)});
    }

    // cluster_ok, template_ok, ProposalDetail
    Action on_rows(Context &, const PGresult *res) override {
        expect_one_row(res, 2 + db::kProposalDetailCols, "proposal insert");
        db::Row row(res, 0);
        if (!row.boolean_value(0)) {
            return Action::not_found(ErrorCode::kClusterNotFound, "Cluster", cluster_id_);
        }
        if (!row.boolean_value(1)) {
            return Action::not_found(ErrorCode::kTemplateNotFound, "Template", template_id_);
        }
        return Action::respond(object_response(201, render_proposal_detail, res, 2));
    }

  private:
    std::string cluster_id_;
    std::string template_id_;
};

// pending → rejected, with the optional reason; anything else is a 409.
class RejectHandler : public Handler {
  public:
    RejectHandler() : Handler(Endpoint::kProposalReject) {}

    Action start(Context &ctx) override {
        BodyReader r(ctx.body(), false);
        auto reason = r.string("reason", false, kReasonRule);
        r.done();
        return Action::write(db::Stmt::kProposalReject, {ctx.id(), std::move(reason)});
    }

    // prior_status, ProposalDetail
    Action on_rows(Context &ctx, const PGresult *res) override {
        expect_columns(res, 1 + db::kProposalDetailCols);
        db::Row row(res, 0);
        if (PQntuples(res) == 0 || row.null(0)) {
            return Action::not_found(ErrorCode::kProposalNotFound, "Proposal", ctx.id());
        }
        if (row.null(1)) {
            // "pending" here means a concurrent request changed it first.
            std::string_view prior = row.text(0);
            return Action::error(
                ErrorCode::kInvalidStateTransition,
                "Proposal \"" + ctx.id() + "\" is " +
                    (prior == "pending" ? std::string("no longer pending") : std::string(prior)) +
                    "; only pending proposals can be rejected");
        }
        return Action::respond(object_response(200, render_proposal_detail, res, 1));
    }
};

// superseded → pending in one conditional UPDATE (two racing requests: one
// 200, one 409); the body, if any, is ignored.
class ReinstateHandler : public Handler {
  public:
    ReinstateHandler() : Handler(Endpoint::kProposalReinstate) {}

    Action start(Context &ctx) override {
        (void)parse_body_object(ctx.body(), false);
        return Action::write(db::Stmt::kProposalReinstate, {ctx.id()});
    }

    // prior_status, ProposalDetail
    Action on_rows(Context &ctx, const PGresult *res) override {
        expect_columns(res, 1 + db::kProposalDetailCols);
        db::Row row(res, 0);
        if (PQntuples(res) == 0 || row.null(0)) {
            return Action::error(ErrorCode::kProposalNotFound,
                                 "proposal " + ctx.id() + " not found");
        }
        if (row.null(1)) {
            // Seen superseded but not updated: a concurrent reinstate won,
            // and only a reinstate moves a proposal out of superseded.
            std::string_view prior = row.text(0);
            std::string status(prior == "superseded" ? "pending" : prior);
            return Action::error(ErrorCode::kInvalidStateTransition,
                                 "proposal " + ctx.id() + " is in status '" + status +
                                     "'; only 'superseded' proposals can be reinstated");
        }
        std::string msg = "chain_proposal_reinstated {\"proposal_id\":";
        json::write_string(msg, ctx.id());
        msg += ",\"study_id\":";
        if (row.null(2)) {
            msg += "null";
        } else {
            json::write_string(msg, row.text(2));
        }
        msg += ",\"prior_status\":\"superseded\"}";
        ctx.log(RL_LOG_INFO, msg);
        return Action::respond(object_response(200, render_proposal_detail, res, 1));
    }
};

}  // namespace

std::unique_ptr<Handler> make_proposal_handler(Endpoint e) {
    switch (e) {
        case Endpoint::kProposalCreate:
            return std::make_unique<CreateHandler>();
        case Endpoint::kProposalReject:
            return std::make_unique<RejectHandler>();
        case Endpoint::kProposalReinstate:
            return std::make_unique<ReinstateHandler>();
        case Endpoint::kProposalList:
            return std::make_unique<ListHandler>(e, db::Stmt::kProposalList,
                                                 db::kProposalSummaryCols, render_proposal_summary,
                                                 kCreatedCol, list_filters, &kListSpec);
        default:
            return std::make_unique<GetByIdHandler>(e, db::Stmt::kProposalGet,
                                                    db::kProposalDetailCols, render_proposal_detail,
                                                    ErrorCode::kProposalNotFound, "Proposal");
    }
}

}  // namespace relyloop::core
