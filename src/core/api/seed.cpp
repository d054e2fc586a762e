// POST /api/v1/_test/studies/seed-completed — development only: the router
// does not know the route in other environments, so it is a 404
// RESOURCE_NOT_FOUND before the body is even looked at.

#include <cmath>

#include "api/crud.hpp"
#include "api/validation.hpp"
#include "common/json_writer.hpp"
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
        Param winner_pq = per_query(r, "winner_per_query");
        Param runner_pq = per_query(r, "runner_up_per_query");
        Param followups;
        if (const json_t *f = r.get("suggested_followups"); f != nullptr && !json_is_null(f)) {
            bool ok = json_is_array(f);
            for (size_t i = 0; ok && i < json_array_size(f); i++) {
                ok = json_is_object(json_array_get(f, i));
            }
            if (ok) {
                followups = json::dump(f);
            } else {
                r.problems().add(r.path("suggested_followups"), "must be an array of objects");
            }
        }
        // Extra trials #2, #3, …: each below the winner's 0.487, so it stays the winner.
        std::string extra = "[";
        if (const json_t *m = r.get("extra_trial_metrics"); m != nullptr && !json_is_null(m)) {
            if (!json_is_array(m)) {
                r.problems().add(r.path("extra_trial_metrics"), "must be an array of numbers");
            }
            for (size_t i = 0; json_is_array(m) && i < json_array_size(m); i++) {
                const json_t *v = json_array_get(m, i);
                double d = json_number_value(v);
                if (!json_is_number(v) || !std::isfinite(d) || !(d < kWinnerMetric)) {
                    r.problems().add(r.path("extra_trial_metrics") + "[" + std::to_string(i) + "]",
                                     "must be a finite number below 0.487");
                    continue;
                }
                extra += (i == 0 ? "{\"id\":" : ",{\"id\":");
                json::write_string(extra, uuid_v7());
                extra += ",\"i\":" + std::to_string(i) + ",\"n\":" + std::to_string(i + 2) +
                         ",\"boost\":";
                json::write_double(extra,
                                   std::round((1.5 + 0.1 * static_cast<double>(i)) * 100) / 100);
                extra += ",\"v\":";
                json::write_double(extra, d);
                extra += "}";
            }
        }
        extra += "]";
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
             std::move(judgments), uuid_v7(), uuid_v7(), std::move(winner_pq), std::move(runner_pq),
             std::move(followups), std::move(extra)});
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
    static constexpr double kWinnerMetric = 0.487;

    // {query_id: {metric token: number}} or null → per_query_metrics text.
    static Param per_query(BodyReader &r, const char *name) {
        const json_t *v = r.get(name);
        if (v == nullptr || json_is_null(v)) {
            return {};
        }
        bool ok = json_is_object(v);
        const char *qid = nullptr;
        json_t *metrics = nullptr;
        json_object_foreach(const_cast<json_t *>(v), qid, metrics) {
            ok = ok && json_is_object(metrics);
            const char *token = nullptr;
            json_t *x = nullptr;
            json_object_foreach(metrics, token, x) { ok = ok && json_is_number(x); }
        }
        if (!ok) {
            r.problems().add(r.path(name), "must be an object of {metric: number} objects");
            return {};
        }
        return json::dump(v);
    }

    std::string cluster_id_;
    std::string template_id_;
    std::string query_set_id_;
    std::string judgment_list_id_;
};

}  // namespace

std::unique_ptr<Handler> make_seed_handler() { return std::make_unique<SeedHandler>(); }

}  // namespace relyloop::core
