#include "api/render.hpp"

#include <span>

#include "api/handler.hpp"
#include "api/pagination.hpp"
#include "common/analytics.hpp"
#include "common/followups.hpp"
#include "common/json_writer.hpp"
#include "common/timefmt.hpp"
#include "db/statements.hpp"

namespace relyloop::core {

using db::ColKind;
using db::RowWriter;
namespace layout = db::layout;

namespace {

// One member of a rendered object: its key, the column it is read from
// (counted from the start of the rendered layout) and how it is written (the
// kind the layout gives the column, db/statements.hpp). The renderers below
// are lists of these in the key order of docs/api.md.
struct Field {
    const char *key;
    int col;
    ColKind kind;
};

// Column `column` of layout `shape`, whose part starts at `base` within the
// rendered layout, under `key`; RL_COL names the member like the column.
#define RL_AS(key, shape, column, base)                                                          \
    Field {                                                                                      \
        key, (base) + layout::shape::column, layout::shape::kColumns[layout::shape::column].kind \
    }
#define RL_COL(shape, column) RL_AS(#column, shape, column, 0)

void write_fields(RowWriter &w, const db::Row &r, int at, std::span<const Field> fields) {
    for (const Field &f : fields) {
        int col = at + f.col;
        switch (f.kind) {
            case ColKind::kStr:
                w.str(f.key, col);
                break;
            case ColKind::kTs:
                w.ts(f.key, col);
                break;
            case ColKind::kInt:
                w.integer(f.key, col);
                break;
            case ColKind::kReal:
                w.real(f.key, col);
                break;
            case ColKind::kJsonb:
                w.jsonb(f.key, col);
                break;
            case ColKind::kBool:
                w.literal(f.key, r.boolean_value(col) ? "true" : "false");
                break;
            case ColKind::kFollowups:
                w.literal(f.key, followups::parse_to_json(r.text(col), r.null(col), nullptr));
                break;
        }
    }
}

// "key":{fields}, or "key":null when column `guard` is NULL (a LEFT JOIN that
// found nothing).
void nullable_object(RowWriter &w, const db::Row &r, int at, const char *key, int guard,
                     std::span<const Field> fields) {
    if (r.null(at + guard)) {
        w.null(key);
        return;
    }
    w.object(key);
    write_fields(w, r, at, fields);
    w.close();
}

// One flat object.
void write_object(std::string &out, const db::Row &r, int at, std::span<const Field> fields) {
    RowWriter w(out, r);
    w.open();
    write_fields(w, r, at, fields);
    w.close();
}

constexpr Field kConfigRepoFields[] = {
    RL_COL(config_repo, id),
    RL_COL(config_repo, name),
    RL_COL(config_repo, provider),
    RL_COL(config_repo, repo_url),
    RL_COL(config_repo, default_branch),
    RL_COL(config_repo, pr_base_branch),
    RL_COL(config_repo, auth_ref),
    RL_COL(config_repo, webhook_secret_ref),
    RL_COL(config_repo, webhook_registration_error),
};
constexpr Field kConfigRepoTail[] = {RL_COL(config_repo, created_at)};

constexpr Field kClusterFields[] = {
    RL_COL(cluster, id),
    RL_COL(cluster, name),
    RL_COL(cluster, engine_type),
    RL_COL(cluster, environment),
    RL_COL(cluster, base_url),
    RL_COL(cluster, auth_kind),
    RL_COL(cluster, credentials_ref),
    RL_COL(cluster, config_repo_id),
    RL_COL(cluster, config_path),
    RL_COL(cluster, engine_config),
    RL_COL(cluster, notes),
    RL_COL(cluster, target_filter),
    RL_COL(cluster, created_at),
};

constexpr Field kTemplateFields[] = {
    RL_COL(query_template, id),
    RL_COL(query_template, name),
    RL_COL(query_template, engine_type),
    RL_COL(query_template, body),
    RL_COL(query_template, declared_params),
    RL_COL(query_template, version),
    RL_COL(query_template, parent_id),
    RL_COL(query_template, created_at),
};

constexpr Field kStudyFields[] = {
    RL_COL(study, id),
    RL_COL(study, name),
    RL_COL(study, cluster_id),
    RL_COL(study, target),
    RL_COL(study, template_id),
    RL_COL(study, query_set_id),
    RL_COL(study, judgment_list_id),
    RL_COL(study, search_space),
    RL_COL(study, objective),
    RL_COL(study, config),
    RL_COL(study, status),
    RL_COL(study, failed_reason),
    RL_COL(study, optuna_study_name),
    RL_COL(study, parent_study_id),
    RL_COL(study, baseline_metric),
    RL_COL(study, baseline_trial_id),
    RL_COL(study, best_metric),
    RL_COL(study, best_trial_id),
    RL_COL(study, created_at),
    RL_COL(study, started_at),
    RL_COL(study, completed_at),
};
constexpr Field kTrialsSummaryFields[] = {
    RL_COL(study, total),
    RL_COL(study, complete),
    RL_COL(study, failed),
    RL_COL(study, pruned),
    RL_COL(study, best_primary_metric),
};
constexpr Field kStudyListFields[] = {
    RL_AS("trial_count", study, total, 0),
    RL_COL(study, direction),
};

constexpr Field kTrialFields[] = {
    RL_COL(trial, id),          RL_COL(trial, study_id),       RL_COL(trial, optuna_trial_number),
    RL_COL(trial, params),      RL_COL(trial, primary_metric), RL_COL(trial, metrics),
    RL_COL(trial, duration_ms), RL_COL(trial, status),         RL_COL(trial, error),
    RL_COL(trial, started_at),  RL_COL(trial, ended_at),       RL_COL(trial, is_baseline),
};

constexpr Field kDigestFields[] = {
    RL_COL(digest, id),
    RL_COL(digest, study_id),
    RL_COL(digest, narrative),
    RL_COL(digest, parameter_importance),
    RL_COL(digest, recommended_config),
    RL_COL(digest, suggested_followups),
    RL_COL(digest, generated_by),
    RL_COL(digest, generated_at),
};

}  // namespace

void render_config_repo(std::string &out, const db::Row &r, int at) {
    RowWriter w(out, r);
    w.open();
    write_fields(w, r, at, kConfigRepoFields);
    w.null("last_merged_proposal");
    write_fields(w, r, at, kConfigRepoTail);
    w.close();
}

void render_config_repo_detail(std::string &out, const db::Row &r, int at) {
    RowWriter w(out, r);
    w.open();
    write_fields(w, r, at, kConfigRepoFields);
    // The ProposalSummary of last_merged_proposal_id; null without the
    // proposal or its template row.
    int p = at + db::kConfigRepoCols;
    if (r.null(p + layout::proposal_summary::id) ||
        r.null(p + layout::proposal_summary::template_id)) {
        w.null("last_merged_proposal");
    } else {
        render_proposal_summary(w.key("last_merged_proposal"), r, p);
    }
    write_fields(w, r, at, kConfigRepoTail);
    w.close();
}

void render_cluster(std::string &out, const db::Row &r, int at) {
    RowWriter w(out, r);
    w.open();
    write_fields(w, r, at, kClusterFields);
    // This server never probes search clusters (docs/api.md); the UI still
    // needs the object.
    w.literal("health_check",
              R"({"status":"unknown","checked_at":null,"version":null,"error":null})")
        .close();
}

void render_template(std::string &out, const db::Row &r, int at) {
    write_object(out, r, at, kTemplateFields);
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
    write_fields(w, r, at, kStudyFields);
    w.object("trials_summary");
    write_fields(w, r, at, kTrialsSummaryFields);
    w.close();
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
    write_fields(w, r, at, kStudyListFields);
    Json convergence = analytics::convergence(study_analytics_input(r, at));
    const json_t *verdict = json_object_get(convergence.get(), "verdict");
    w.literal("convergence_verdict", verdict != nullptr ? json::dump(verdict) : "null");
    w.close();
}

void render_trial(std::string &out, const db::Row &r, int at) {
    write_object(out, r, at, kTrialFields);
}

void render_digest(std::string &out, const db::Row &r, int at) {
    write_object(out, r, at, kDigestFields);
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

constexpr int kOwn = db::kProposalDetailOwnAt;

constexpr Field kProposalHead[] = {
    RL_COL(proposal_summary, id),
    RL_COL(proposal_summary, study_id),
};
constexpr Field kProposalCluster[] = {
    RL_AS("id", proposal_summary, cluster_id, 0),
    RL_AS("name", proposal_summary, cluster_name, 0),
    RL_AS("engine_type", proposal_summary, cluster_engine_type, 0),
    RL_AS("environment", proposal_summary, cluster_environment, 0),
};
constexpr Field kProposalTemplate[] = {
    RL_AS("id", proposal_summary, template_id, 0),
    RL_AS("name", proposal_summary, template_name, 0),
    RL_AS("version", proposal_summary, template_version, 0),
    RL_AS("engine_type", proposal_summary, template_engine_type, 0),
};
constexpr Field kProposalSummaryTail[] = {
    RL_COL(proposal_summary, status),
    RL_COL(proposal_summary, pr_state),
    RL_COL(proposal_summary, pr_url),
    RL_COL(proposal_summary, metric_delta),
    RL_COL(proposal_summary, is_currently_live),
    RL_COL(proposal_summary, created_at),
};

// ProposalDetail: the summary's columns, then its own part from kOwn.
constexpr Field kStudySummary[] = {
    RL_AS("id", proposal_detail, study_id, kOwn),
    RL_AS("name", proposal_detail, study_name, kOwn),
    RL_AS("status", proposal_detail, study_status, kOwn),
    RL_AS("best_metric", proposal_detail, best_metric, kOwn),
    RL_AS("best_trial_id", proposal_detail, best_trial_id, kOwn),
};
constexpr Field kStudyQuerySet[] = {
    RL_AS("id", proposal_detail, query_set_id, kOwn),
    RL_AS("name", proposal_detail, query_set_name, kOwn),
    RL_AS("query_count", proposal_detail, query_count, kOwn),
};
constexpr Field kStudyJudgmentList[] = {
    RL_AS("id", proposal_detail, judgment_list_id, kOwn),
    RL_AS("name", proposal_detail, judgment_list_name, kOwn),
    RL_AS("status", proposal_detail, judgment_list_status, kOwn),
};
constexpr Field kProposalDetailTrial[] = {
    RL_AS("study_trial_id", proposal_detail, study_trial_id, kOwn),
};
constexpr Field kProposalDetailMiddle[] = {
    RL_AS("config_diff", proposal_detail, config_diff, kOwn),
    RL_COL(proposal_summary, metric_delta),
    RL_COL(proposal_summary, status),
    RL_COL(proposal_summary, pr_url),
    RL_COL(proposal_summary, pr_state),
    RL_AS("pr_merged_at", proposal_detail, pr_merged_at, kOwn),
    RL_AS("pr_open_error", proposal_detail, pr_open_error, kOwn),
    RL_AS("rejected_reason", proposal_detail, rejected_reason, kOwn),
    RL_COL(proposal_summary, is_currently_live),
};
constexpr Field kProposalCreated[] = {RL_COL(proposal_summary, created_at)};
constexpr Field kPrJob[] = {
    RL_AS("state", pr_job, state, db::kProposalDetailPrJobAt),
    RL_AS("attempts", pr_job, attempts, db::kProposalDetailPrJobAt),
    RL_AS("last_event", pr_job, last_event, db::kProposalDetailPrJobAt),
    RL_AS("last_error", pr_job, last_error, db::kProposalDetailPrJobAt),
    RL_AS("created_at", pr_job, created_at, db::kProposalDetailPrJobAt),
    RL_AS("started_at", pr_job, started_at, db::kProposalDetailPrJobAt),
    RL_AS("finished_at", pr_job, finished_at, db::kProposalDetailPrJobAt),
};

#undef RL_COL
#undef RL_AS

void cluster_and_template(RowWriter &w, const db::Row &r, int at) {
    nullable_object(w, r, at, "cluster", layout::proposal_summary::cluster_id, kProposalCluster);
    nullable_object(w, r, at, "template", layout::proposal_summary::template_id, kProposalTemplate);
}

}  // namespace

void render_proposal_summary(std::string &out, const db::Row &r, int at) {
    RowWriter w(out, r);
    w.open();
    write_fields(w, r, at, kProposalHead);
    cluster_and_template(w, r, at);
    write_fields(w, r, at, kProposalSummaryTail);
    w.close();
}

void render_proposal_detail(std::string &out, const db::Row &r, int at) {
    RowWriter w(out, r);
    w.open();
    write_fields(w, r, at, kProposalHead);
    if (r.null(at + kOwn + layout::proposal_detail::study_id)) {
        w.null("study_summary");
    } else {
        w.object("study_summary");
        write_fields(w, r, at, kStudySummary);
        w.object("query_set");
        write_fields(w, r, at, kStudyQuerySet);
        w.close().object("judgment_list");
        write_fields(w, r, at, kStudyJudgmentList);
        w.close().close();
    }
    write_fields(w, r, at, kProposalDetailTrial);
    cluster_and_template(w, r, at);
    write_fields(w, r, at, kProposalDetailMiddle);
    if (r.null(at + db::kProposalDetailDigestAt + layout::digest::id)) {
        w.null("digest");
    } else {
        render_digest(w.key("digest"), r, at + db::kProposalDetailDigestAt);
    }
    write_fields(w, r, at, kProposalCreated);
    nullable_object(w, r, at, "pr_job", db::kProposalDetailPrJobAt + layout::pr_job::state, kPrJob);
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
