#include "pipeline/pipeline_db.hpp"

#include <cstdlib>
#include <vector>

#include "common/analytics.hpp"
#include "common/error.hpp"
#include "common/followups.hpp"
#include "db.hpp"
#include "pipeline/json_text.hpp"

namespace relyloop::worker {

namespace {

std::optional<double> opt_double(const PGresult *r, int row, int col) {
    if (PQgetisnull(r, row, col)) return std::nullopt;
    return std::strtod(PQgetvalue(r, row, col), nullptr);
}

Json json_col(const PGresult *r, int row, int col) {
    if (PQgetisnull(r, row, col)) return Json();
    std::string why;
    Json j = json_parse(db::get_or(r, row, col), &why);
    if (!j) {
        throw Error(ErrorCode::kInternalError, "database: unreadable JSON column: " + why);
    }
    return j;
}

}  // namespace

PgResult PipelineDb::exec(const char *sql,
                          std::initializer_list<std::optional<std::string_view>> params) {
    std::vector<db::Param> values;
    values.reserve(params.size());
    for (const auto &p : params) {
        values.push_back(p ? db::Param(std::string(*p)) : std::nullopt);
    }
    try {
        return db::exec(conn_, sql, values);
    } catch (const DbError &e) {
        if (db::is_transient(e, conn_)) {
            throw;  // run() makes it a retry (docs/worker.md, "Jobs")
        }
        throw Error(ErrorCode::kInternalError, std::string("database: ") + e.what());
    }
}

std::optional<ProposalRow> PipelineDb::proposal(std::string_view id) {
    PgResult r = exec(
        "SELECT id, study_id, cluster_id, template_id, status, config_diff::text, "
        "metric_delta::text FROM proposals WHERE id = $1",
        {id});
    if (PQntuples(r.get()) == 0) return std::nullopt;
    ProposalRow p;
    p.id = db::get_or(r.get(), 0, 0);
    p.study_id = db::get(r.get(), 0, 1);
    p.cluster_id = db::get_or(r.get(), 0, 2);
    p.template_id = db::get_or(r.get(), 0, 3);
    p.status = db::get_or(r.get(), 0, 4);
    p.config_diff = json_col(r.get(), 0, 5);
    p.metric_delta = json_col(r.get(), 0, 6);
    return p;
}

std::optional<ClusterRow> PipelineDb::cluster(std::string_view id) {
    PgResult r = exec(
        "SELECT id, name, config_repo_id, config_path FROM clusters "
        "WHERE id = $1 AND deleted_at IS NULL",
        {id});
    if (PQntuples(r.get()) == 0) return std::nullopt;
    ClusterRow c;
    c.id = db::get_or(r.get(), 0, 0);
    c.name = db::get_or(r.get(), 0, 1);
    c.config_repo_id = db::get(r.get(), 0, 2);
    c.config_path = db::get(r.get(), 0, 3);
    return c;
}

std::optional<RepoRow> PipelineDb::config_repo(std::string_view id) {
    PgResult r =
        exec("SELECT id, name, repo_url, pr_base_branch, auth_ref FROM config_repos WHERE id = $1",
             {id});
    if (PQntuples(r.get()) == 0) return std::nullopt;
    return RepoRow{db::get_or(r.get(), 0, 0), db::get_or(r.get(), 0, 1), db::get_or(r.get(), 0, 2),
                   db::get_or(r.get(), 0, 3), db::get_or(r.get(), 0, 4)};
}

std::optional<TemplateRow> PipelineDb::query_template(std::string_view id) {
    PgResult r = exec(
        "SELECT id, name, version, declared_params::text FROM query_templates WHERE id = $1", {id});
    if (PQntuples(r.get()) == 0) return std::nullopt;
    TemplateRow t;
    t.id = db::get_or(r.get(), 0, 0);
    t.name = db::get_or(r.get(), 0, 1);
    t.version = db::get_int(r.get(), 0, 2);
    t.declared_params = json_col(r.get(), 0, 3);
    return t;
}

std::optional<StudyRows> PipelineDb::study(std::string_view id) {
    PgResult s = exec(
        "SELECT name, best_trial_id, best_metric, "
        "       coalesce(objective->>'direction', '') = 'minimize' "
        "FROM studies WHERE id = $1",
        {id});
    if (PQntuples(s.get()) == 0) return std::nullopt;
    StudyRows out;
    out.name = db::get_or(s.get(), 0, 0);
    std::optional<std::string> best_trial_id = db::get(s.get(), 0, 1);
    out.best_metric = opt_double(s.get(), 0, 2);
    bool minimize = db::get_or(s.get(), 0, 3) == "t";

    // Baseline trials (upstream RelyLoop's) are not part of the search.
    PgResult count =
        exec("SELECT count(*) FROM trials WHERE study_id = $1 AND NOT is_baseline", {id});
    out.trial_count = db::get_int(count.get(), 0, 0);

    if (best_trial_id) {
        PgResult b = exec("SELECT optuna_trial_number, primary_metric FROM trials WHERE id = $1",
                          {*best_trial_id});
        if (PQntuples(b.get()) > 0) {
            out.best_trial_number = db::get_int(b.get(), 0, 0);
            if (!out.best_metric) out.best_metric = opt_double(b.get(), 0, 1);
        }
    }

    PgResult top = exec(
        minimize
            ? "SELECT optuna_trial_number, params::text, primary_metric FROM trials "
              "WHERE study_id = $1 AND status = 'complete' AND primary_metric IS NOT NULL "
              "AND NOT is_baseline ORDER BY primary_metric ASC, optuna_trial_number ASC LIMIT 10"
            : "SELECT optuna_trial_number, params::text, primary_metric FROM trials "
              "WHERE study_id = $1 AND status = 'complete' AND primary_metric IS NOT NULL "
              "AND NOT is_baseline ORDER BY primary_metric DESC, optuna_trial_number ASC LIMIT 10",
        {id});
    for (int i = 0; i < PQntuples(top.get()); i++) {
        TrialRow row;
        row.number = db::get_int(top.get(), i, 0);
        row.params = json_col(top.get(), i, 1);
        row.metric = opt_double(top.get(), i, 2);
        out.top_trials.push_back(std::move(row));
    }

    PgResult d = exec(
        "SELECT parameter_importance::text, to_jsonb(suggested_followups)::text "
        "FROM digests WHERE study_id = $1",
        {id});
    if (PQntuples(d.get()) > 0) {
        Json imp = json_col(d.get(), 0, 0);
        if (json_is_object(imp.get())) {
            const char *key = nullptr;
            json_t *value = nullptr;
            json_object_foreach(imp.get(), key, value) {
                out.importance_entries++;
                if (json_is_number(value))
                    out.importance.emplace_back(key, json_number_value(value));
            }
        }
        // FollowupItems of either kind of database (docs/upstream-schema.md).
        Json items =
            followups::parse(db::get_or(d.get(), 0, 1), PQgetisnull(d.get(), 0, 1) != 0, nullptr);
        for (size_t i = 0; i < json_array_size(items.get()); i++) {
            out.followups.push_back(followups::pr_line(json_array_get(items.get(), i)));
        }
    }

    // The Confidence lines: every input in one statement (one snapshot).
    PgResult a = exec("SELECT " RL_ANALYTICS_INPUT_COLS " FROM studies s" RL_ANALYTICS_INPUT_JOINS
                      "WHERE s.id = $1",
                      {id});
    if (PQntuples(a.get()) > 0) {
        std::vector<std::optional<std::string_view>> cols;
        for (int c = 0; c < analytics::kAnalyticsInputCols; c++) {
            if (PQgetisnull(a.get(), 0, c)) {
                cols.emplace_back(std::nullopt);
            } else {
                cols.emplace_back(std::string_view(
                    PQgetvalue(a.get(), 0, c), static_cast<size_t>(PQgetlength(a.get(), 0, c))));
            }
        }
        out.confidence = analytics::confidence(analytics::input_from_columns(cols));
    }
    return out;
}

bool PipelineDb::mark_pr_opened(std::string_view proposal_id, std::string_view pr_url) {
    PgResult r = exec(
        "UPDATE proposals SET status = 'pr_opened', pr_url = $2, pr_state = 'open', "
        "pr_open_error = NULL WHERE id = $1 AND status = 'pending'",
        {proposal_id, pr_url});
    return std::strtol(PQcmdTuples(r.get()), nullptr, 10) == 1;
}

}  // namespace relyloop::worker
