#include "api/render.hpp"

#include "api/pagination.hpp"
#include "common/timefmt.hpp"

namespace relyloop::core {

using db::RowWriter;

void render_config_repo(std::string &out, const db::Row &r, int at) {
    RowWriter(out, r)
        .open()
        .str("id", at + 0)
        .str("name", at + 1)
        .str("provider", at + 2)
        .str("repo_url", at + 3)
        .str("default_branch", at + 4)
        .str("pr_base_branch", at + 5)
        .str("auth_ref", at + 6)
        .str("webhook_secret_ref", at + 7)
        .str("webhook_registration_error", at + 8)
        .ts("created_at", at + 9)
        .close();
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
        .ts("created_at", at + 11)
        // This server never probes search clusters (SPEC §5.2); the UI still
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

void render_study(std::string &out, const db::Row &r, int at) {
    RowWriter(out, r)
        .open()
        .str("id", at + 0)
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
        .real("best_metric", at + 15)
        .str("best_trial_id", at + 16)
        .ts("created_at", at + 17)
        .ts("started_at", at + 18)
        .ts("completed_at", at + 19)
        .object("trials_summary")
        .integer("total", at + 20)
        .integer("complete", at + 21)
        .integer("failed", at + 22)
        .integer("pruned", at + 23)
        .close()
        .close();
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
        .jsonb("suggested_followups", at + 5)
        .str("generated_by", at + 6)
        .ts("generated_at", at + 7)
        .close();
}

namespace {

void summary_fields(RowWriter &w, const db::Row &r, int at) {
    w.str("id", at + 0).str("study_id", at + 1);
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
    w.str("status", at + 10)
        .str("pr_state", at + 11)
        .str("pr_url", at + 12)
        .jsonb("metric_delta", at + 13)
        .ts("created_at", at + 14);
}

}  // namespace

void render_proposal_summary(std::string &out, const db::Row &r, int at) {
    RowWriter w(out, r);
    w.open();
    summary_fields(w, r, at);
    w.close();
}

void render_proposal_detail(std::string &out, const db::Row &r, int at) {
    RowWriter w(out, r);
    w.open();
    summary_fields(w, r, at);
    if (r.null(at + 15)) {
        w.null("study_summary");
    } else {
        w.object("study_summary")
            .str("id", at + 15)
            .str("name", at + 16)
            .str("status", at + 17)
            .real("best_metric", at + 18)
            .str("best_trial_id", at + 19)
            .close();
    }
    w.str("study_trial_id", at + 20)
        .jsonb("config_diff", at + 21)
        .ts("pr_merged_at", at + 22)
        .str("pr_open_error", at + 23)
        .str("rejected_reason", at + 24);
    if (r.null(at + 25)) {
        w.null("digest");
    } else {
        render_digest(w.key("digest"), r, at + 25);
    }
    if (r.null(at + 33)) {
        w.null("pr_job");
    } else {
        w.object("pr_job")
            .str("state", at + 33)
            .integer("attempts", at + 34)
            .str("last_event", at + 35)
            .str("last_error", at + 36)
            .ts("created_at", at + 37)
            .ts("started_at", at + 38)
            .ts("finished_at", at + 39)
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
