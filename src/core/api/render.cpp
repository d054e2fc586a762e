#include "api/render.hpp"

#include "api/handler.hpp"
#include "api/pagination.hpp"
#include "common/analytics.hpp"
#include "common/followups.hpp"
#include "common/json_writer.hpp"
#include "common/timefmt.hpp"
#include "db/statements.hpp"

namespace relyloop::core {

using db::RowWriter;

namespace {

void config_repo_fields(RowWriter &w, int at) {
    w.str("id", at + 0)
        .str("name", at + 1)
        .str("provider", at + 2)
        .str("repo_url", at + 3)
        .str("default_branch", at + 4)
        .str("pr_base_branch", at + 5)
        .str("auth_ref", at + 6)
        .str("webhook_secret_ref", at + 7)
        .str("webhook_registration_error", at + 8);
}

}  // namespace

void render_config_repo(std::string &out, const db::Row &r, int at) {
    RowWriter w(out, r);
    w.open();
    config_repo_fields(w, at);
    w.null("last_merged_proposal").ts("created_at", at + 9).close();
}

void render_config_repo_detail(std::string &out, const db::Row &r, int at) {
    RowWriter w(out, r);
    w.open();
    config_repo_fields(w, at);
    // The ProposalSummary of last_merged_proposal_id; null without the
    // proposal or its template row.
    int p = at + db::kConfigRepoCols;
    if (r.null(p) || r.null(p + 6)) {
        w.null("last_merged_proposal");
    } else {
        render_proposal_summary(w.key("last_merged_proposal"), r, p);
    }
    w.ts("created_at", at + 9).close();
}

void render_cluster(std::string &out, const db::Row &r, int at) {
    RowWriter(out, r)
        .open()
        .str("id", at + 0)
        .str("name", at + 1)
        .str("engine_type", at + 2)
        .str("environment", at + 3)
        .str("base_url", at + 4)
        .str("auth_kind", at + 5)
        .str("credentials_ref", at + 6)
        .str("config_repo_id", at + 7)
        .str("config_path", at + 8)
        .jsonb("engine_config", at + 9)
        .str("notes", at + 10)
        .str("target_filter", at + 12)
        .ts("created_at", at + 11)
        // This server never probes search clusters (docs/api.md); the UI still
        // needs the object.
        .literal("health_check",
                 R"({"status":"unknown","checked_at":null,"version":null,"error":null})")
        .close();
}

void render_template(std::string &out, const db::Row &r, int at) {
    RowWriter(out, r)
        .open()
        .str("id", at + 0)
        .str("name", at + 1)
        .str("engine_type", at + 2)
        .str("body", at + 3)
        .jsonb("declared_params", at + 4)
        .integer("version", at + 5)
        .str("parent_id", at + 6)
        .ts("created_at", at + 7)
        .close();
}

analytics::StudyInput study_analytics_input(const db::Row &r, int at) {
    std::vector<std::optional<std::string_view>> cols;
    for (int c = 0; c < analytics::kAnalyticsInputCols; c++) {
        int col = at + db::kStudyAnalyticsCol + c;
        cols.emplace_back(r.null(col) ? std::nullopt
                                      : std::optional<std::string_view>(r.text(col)));
    }
    return analytics::input_from_columns(cols);
}

namespace {

void study_fields(RowWriter &w, const db::Row &r, int at) {
    w.str("id", at + 0)
        .str("name", at + 1)
        .str("cluster_id", at + 2)
        .str("target", at + 3)
        .str("template_id", at + 4)
        .str("query_set_id", at + 5)
        .str("judgment_list_id", at + 6)
        .jsonb("search_space", at + 7)
        .jsonb("objective", at + 8)
        .jsonb("config", at + 9)
        .str("status", at + 10)
        .str("failed_reason", at + 11)
        .str("optuna_study_name", at + 12)
        .str("parent_study_id", at + 13)
        .real("baseline_metric", at + 14)
        .str("baseline_trial_id", at + 20)
        .real("best_metric", at + 15)
        .str("best_trial_id", at + 16)
        .ts("created_at", at + 17)
        .ts("started_at", at + 18)
        .ts("completed_at", at + 19)
        .object("trials_summary")
        .integer("total", at + 21)
        .integer("complete", at + 22)
        .integer("failed", at + 23)
        .integer("pruned", at + 24)
        .real("best_primary_metric", at + 25)
        .close();
    // docs/analytics.md, from the inputs that follow the Study columns.
    analytics::StudyInput in = study_analytics_input(r, at);
    Json confidence = analytics::confidence(in);
    Json convergence = analytics::convergence(in);
    w.literal("confidence", confidence ? json::dump(confidence.get()) : "null");
    w.literal("convergence", convergence ? json::dump(convergence.get()) : "null");
}

}  // namespace

void render_study(std::string &out, const db::Row &r, int at) {
    RowWriter w(out, r);
    w.open();
    study_fields(w, r, at);
    w.close();
}

void render_study_list_row(std::string &out, const db::Row &r, int at) {
    RowWriter w(out, r);
    w.open();
    // The list statement carries the series only (no winner): `confidence`
    // is null on list rows, `convergence` is the detail's (docs/analytics.md).
    study_fields(w, r, at);
    w.integer("trial_count", at + 21).str("direction", at + 26);
    Json convergence = analytics::convergence(study_analytics_input(r, at));
    const json_t *verdict = json_object_get(convergence.get(), "verdict");
    w.literal("convergence_verdict", verdict != nullptr ? json::dump(verdict) : "null");
    w.close();
}

void render_trial(std::string &out, const db::Row &r, int at) {
    RowWriter(out, r)
        .open()
        .str("id", at + 0)
        .str("study_id", at + 1)
        .integer("optuna_trial_number", at + 2)
        .jsonb("params", at + 3)
        .real("primary_metric", at + 4)
        .jsonb("metrics", at + 5)
        .integer("duration_ms", at + 6)
        .str("status", at + 7)
        .str("error", at + 8)
        .ts("started_at", at + 9)
        .ts("ended_at", at + 10)
        .literal("is_baseline", r.boolean_value(at + 11) ? "true" : "false")
        .close();
}

void render_digest(std::string &out, const db::Row &r, int at) {
    RowWriter(out, r)
        .open()
        .str("id", at + 0)
        .str("study_id", at + 1)
        .str("narrative", at + 2)
        .jsonb("parameter_importance", at + 3)
        .jsonb("recommended_config", at + 4)
        .literal("suggested_followups",
                 followups::parse_to_json(r.text(at + 5), r.null(at + 5), nullptr))
        .str("generated_by", at + 6)
        .ts("generated_at", at + 7)
        .close();
}

void log_followup_events(const Context &ctx, const db::Row &r, int col) {
    if (r.null(col)) {
        return;
    }
    std::vector<followups::Event> events;
    (void)followups::parse(r.text(col), false, &events);
    for (const followups::Event &e : events) {
        ctx.log(RL_LOG_WARN, std::string(e.event) + ": " + e.detail);
    }
}

namespace {

void cluster_and_template(RowWriter &w, const db::Row &r, int at) {
    if (r.null(at + 2)) {
        w.null("cluster");
    } else {
        w.object("cluster")
            .str("id", at + 2)
            .str("name", at + 3)
            .str("engine_type", at + 4)
            .str("environment", at + 5)
            .close();
    }
    if (r.null(at + 6)) {
        w.null("template");
    } else {
        w.object("template")
            .str("id", at + 6)
            .str("name", at + 7)
            .integer("version", at + 8)
            .str("engine_type", at + 9)
            .close();
    }
}

}  // namespace

void render_proposal_summary(std::string &out, const db::Row &r, int at) {
    RowWriter w(out, r);
    w.open().str("id", at + 0).str("study_id", at + 1);
    cluster_and_template(w, r, at);
    w.str("status", at + 10)
        .str("pr_state", at + 11)
        .str("pr_url", at + 12)
        .jsonb("metric_delta", at + 13);
    w.literal("is_currently_live", r.boolean_value(at + 15) ? "true" : "false");
    w.ts("created_at", at + 14).close();
}

void render_proposal_detail(std::string &out, const db::Row &r, int at) {
    RowWriter w(out, r);
    w.open().str("id", at + 0).str("study_id", at + 1);
    if (r.null(at + 16)) {
        w.null("study_summary");
    } else {
        w.object("study_summary")
            .str("id", at + 16)
            .str("name", at + 17)
            .str("status", at + 18)
            .real("best_metric", at + 19)
            .str("best_trial_id", at + 20)
            .object("query_set")
            .str("id", at + 21)
            .str("name", at + 22)
            .integer("query_count", at + 23)
            .close()
            .object("judgment_list")
            .str("id", at + 24)
            .str("name", at + 25)
            .str("status", at + 26)
            .close()
            .close();
    }
    w.str("study_trial_id", at + 27);
    cluster_and_template(w, r, at);
    w.jsonb("config_diff", at + 28)
        .jsonb("metric_delta", at + 13)
        .str("status", at + 10)
        .str("pr_url", at + 12)
        .str("pr_state", at + 11)
        .ts("pr_merged_at", at + 29)
        .str("pr_open_error", at + 30)
        .str("rejected_reason", at + 31);
    w.literal("is_currently_live", r.boolean_value(at + 15) ? "true" : "false");
    if (r.null(at + 32)) {
        w.null("digest");
    } else {
        render_digest(w.key("digest"), r, at + 32);
    }
    w.ts("created_at", at + 14);
    if (r.null(at + 40)) {
        w.null("pr_job");
    } else {
        w.object("pr_job")
            .str("state", at + 40)
            .integer("attempts", at + 41)
            .str("last_event", at + 42)
            .str("last_error", at + 43)
            .ts("created_at", at + 44)
            .ts("started_at", at + 45)
            .ts("finished_at", at + 46)
            .close();
    }
    w.close();
}

Response object_response(int status, RenderFn render, const PGresult *res, int at) {
    Response r;
    r.status = status;
    r.body.reserve(512);
    render(r.body, db::Row(res, 0), at);
    return r;
}

std::string created_at_cursor(const db::Row &r, int id_col, int created_col) {
    return encode_list_cursor(pg_timestamp_to_rfc3339(r.text(created_col)), r.text(id_col));
}

}  // namespace relyloop::core
