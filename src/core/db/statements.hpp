#pragma once

// The fixed SQL statements of the core (rl_core_statements). Each one is a
// single self-contained statement with text parameters cast in SQL; writes
// that touch several rows are one statement with data-modifying CTEs, so they
// are atomic without a transaction block. The row layouts the renderers read
// are the tables below: each one gives both the SELECT list spliced into the
// statements and the column numbers the renderers and handlers use.

#include <iterator>
#include <span>

#include "common/analytics.hpp"
#include "relyloop/core.h"

namespace relyloop::core::db {

enum class Stmt : int {
    kHealthPing,
    kConfigRepoGet,
    kConfigRepoList,
    kConfigRepoInsert,
    kClusterGet,
    kClusterList,
    kClusterListSorted,
    kClusterInsert,
    kClusterDelete,
    kClusterPatch,
    kTemplateGet,
    kTemplateList,
    kTemplateListSorted,
    kTemplateInsert,
    kStudyGet,
    kStudyList,
    kStudyListSorted,
    kStudyCancel,
    kDigestGet,
    kTrialListMetricDesc,
    kTrialListMetricAsc,
    kTrialListNumberAsc,
    kTrialListEndedDesc,
    kTrialListEndedAsc,
    kProposalGet,
    kProposalList,
    kProposalListSorted,
    kProposalInsert,
    kProposalReject,
    kProposalReinstate,
    kOpenPrPreflight,
    kSeedCompleted,
    kWebhookCandidates,
    kWebhookApply,
    kConfigRepoRegisterWebhook,
    kCount,
};

[[nodiscard]] std::span<const rl_statement_t> statements() noexcept;
[[nodiscard]] const rl_statement_t &statement(Stmt s) noexcept;

// --- Row layouts ------------------------------------------------------------
//
// One table per row shape, in SELECT order; each entry is
//     X(column, pg_name, kind, "SQL expression")
// column: the C++ name of the column (layout::<shape>::<column> is its number
// within the layout), pg_name: the name PostgreSQL gives the result column
// (t/unit/core_row_layouts_test.cpp prepares every statement and compares),
// kind: how the renderer writes it. S separates entries. The SQL list of a
// layout is RL_<SHAPE>_LAYOUT(RL_LAYOUT_SQL, ", "), so the list and the
// column numbers cannot drift apart.

// How a renderer writes a column (db/rows.hpp).
enum class ColKind : unsigned char {
    kStr,        // JSON string
    kTs,         // timestamptz as RFC 3339
    kInt,        // integer
    kReal,       // float8/numeric, NaN and infinities as null
    kJsonb,      // JSON text as is
    kBool,       // true/false (NULL: false)
    kFollowups,  // suggested_followups as stored (common/followups.hpp)
};

struct Column {
    const char *pg_name;
    ColKind kind;
};

// clang-format off

#define RL_LAYOUT_SQL(column, pg_name, kind, sql) sql
#define RL_LAYOUT_ENUM(column, pg_name, kind, sql) column,
#define RL_LAYOUT_COLUMN(column, pg_name, kind, sql) Column{#pg_name, ColKind::kind},

// ConfigRepo (10)
#define RL_CONFIG_REPO_LAYOUT(X, S)                                              \
    X(id, id, kStr, "r.id") S                                                    \
    X(name, name, kStr, "r.name") S                                              \
    X(provider, provider, kStr, "r.provider") S                                  \
    X(repo_url, repo_url, kStr, "r.repo_url") S                                  \
    X(default_branch, default_branch, kStr, "r.default_branch") S                \
    X(pr_base_branch, pr_base_branch, kStr, "r.pr_base_branch") S                \
    X(auth_ref, auth_ref, kStr, "r.auth_ref") S                                  \
    X(webhook_secret_ref, webhook_secret_ref, kStr, "r.webhook_secret_ref") S    \
    X(webhook_registration_error, webhook_registration_error, kStr,              \
      "r.webhook_registration_error") S                                          \
    X(created_at, created_at, kTs, "r.created_at")

// Cluster (13): every column but deleted_at and search_vector.
#define RL_CLUSTER_LAYOUT(X, S)                                                  \
    X(id, id, kStr, "c.id") S                                                    \
    X(name, name, kStr, "c.name") S                                              \
    X(engine_type, engine_type, kStr, "c.engine_type") S                         \
    X(environment, environment, kStr, "c.environment") S                         \
    X(base_url, base_url, kStr, "c.base_url") S                                  \
    X(auth_kind, auth_kind, kStr, "c.auth_kind") S                               \
    X(credentials_ref, credentials_ref, kStr, "c.credentials_ref") S             \
    X(config_repo_id, config_repo_id, kStr, "c.config_repo_id") S                \
    X(config_path, config_path, kStr, "c.config_path") S                         \
    X(engine_config, engine_config, kJsonb, "c.engine_config") S                 \
    X(notes, notes, kStr, "c.notes") S                                           \
    X(created_at, created_at, kTs, "c.created_at") S                             \
    X(target_filter, target_filter, kStr, "c.target_filter")

// Template (8)
#define RL_TEMPLATE_LAYOUT(X, S)                                                 \
    X(id, id, kStr, "t.id") S                                                    \
    X(name, name, kStr, "t.name") S                                              \
    X(engine_type, engine_type, kStr, "t.engine_type") S                         \
    X(body, body, kStr, "t.body") S                                              \
    X(declared_params, declared_params, kJsonb, "t.declared_params") S           \
    X(version, version, kInt, "t.version") S                                     \
    X(parent_id, parent_id, kStr, "t.parent_id") S                               \
    X(created_at, created_at, kTs, "t.created_at")

// Study (27): 20 columns, baseline_trial_id, trials_summary (5) from
// RL_TRIALS_SUMMARY joined as ts, direction (objective.direction when
// maximize/minimize, else maximize). Every study statement follows it with
// the analytics inputs of common/analytics.hpp (kStudyCols in all).
#define RL_STUDY_LAYOUT(X, S)                                                    \
    X(id, id, kStr, "s.id") S                                                    \
    X(name, name, kStr, "s.name") S                                              \
    X(cluster_id, cluster_id, kStr, "s.cluster_id") S                            \
    X(target, target, kStr, "s.target") S                                        \
    X(template_id, template_id, kStr, "s.template_id") S                         \
    X(query_set_id, query_set_id, kStr, "s.query_set_id") S                      \
    X(judgment_list_id, judgment_list_id, kStr, "s.judgment_list_id") S          \
    X(search_space, search_space, kJsonb, "s.search_space") S                    \
    X(objective, objective, kJsonb, "s.objective") S                             \
    X(config, config, kJsonb, "s.config") S                                      \
    X(status, status, kStr, "s.status") S                                        \
    X(failed_reason, failed_reason, kStr, "s.failed_reason") S                   \
    X(optuna_study_name, optuna_study_name, kStr, "s.optuna_study_name") S       \
    X(parent_study_id, parent_study_id, kStr, "s.parent_study_id") S             \
    X(baseline_metric, baseline_metric, kReal, "s.baseline_metric") S            \
    X(best_metric, best_metric, kReal, "s.best_metric") S                        \
    X(best_trial_id, best_trial_id, kStr, "s.best_trial_id") S                   \
    X(created_at, created_at, kTs, "s.created_at") S                             \
    X(started_at, started_at, kTs, "s.started_at") S                             \
    X(completed_at, completed_at, kTs, "s.completed_at") S                       \
    X(baseline_trial_id, baseline_trial_id, kStr, "s.baseline_trial_id") S       \
    X(total, total, kInt, "ts.total") S                                          \
    X(complete, complete, kInt, "ts.complete") S                                 \
    X(failed, failed, kInt, "ts.failed") S                                       \
    X(pruned, pruned, kInt, "ts.pruned") S                                       \
    X(best_primary_metric, best_primary_metric, kReal, "ts.best_primary_metric") S \
    X(direction, case, kStr,                                                     \
      "CASE WHEN jsonb_typeof(s.objective) = 'object' AND s.objective->>'direction' IN " \
      "('maximize', 'minimize') THEN s.objective->>'direction' ELSE 'maximize' END")

// Trial (12)
#define RL_TRIAL_LAYOUT(X, S)                                                    \
    X(id, id, kStr, "t.id") S                                                    \
    X(study_id, study_id, kStr, "t.study_id") S                                  \
    X(optuna_trial_number, optuna_trial_number, kInt, "t.optuna_trial_number") S \
    X(params, params, kJsonb, "t.params") S                                      \
    X(primary_metric, primary_metric, kReal, "t.primary_metric") S               \
    X(metrics, metrics, kJsonb, "t.metrics") S                                   \
    X(duration_ms, duration_ms, kInt, "t.duration_ms") S                         \
    X(status, status, kStr, "t.status") S                                        \
    X(error, error, kStr, "t.error") S                                           \
    X(started_at, started_at, kTs, "t.started_at") S                             \
    X(ended_at, ended_at, kTs, "t.ended_at") S                                   \
    X(is_baseline, is_baseline, kBool, "t.is_baseline")

// Digest (8); suggested_followups as stored (parsed by the renderer).
#define RL_DIGEST_LAYOUT(X, S)                                                   \
    X(id, id, kStr, "d.id") S                                                    \
    X(study_id, study_id, kStr, "d.study_id") S                                  \
    X(narrative, narrative, kStr, "d.narrative") S                               \
    X(parameter_importance, parameter_importance, kJsonb, "d.parameter_importance") S \
    X(recommended_config, recommended_config, kJsonb, "d.recommended_config") S  \
    X(suggested_followups, to_jsonb, kFollowups, "to_jsonb(d.suggested_followups)") S \
    X(generated_by, generated_by, kStr, "d.generated_by") S                      \
    X(generated_at, generated_at, kTs, "d.generated_at")

// ProposalSummary (16), read with the joins of RL_PROPOSAL_JOINS
// (statements.cpp); the last column is is_currently_live (some config repo's
// last merged proposal).
#define RL_PROPOSAL_SUMMARY_LAYOUT(X, S)                                         \
    X(id, id, kStr, "p.id") S                                                    \
    X(study_id, study_id, kStr, "p.study_id") S                                  \
    X(cluster_id, id, kStr, "c.id") S                                            \
    X(cluster_name, name, kStr, "c.name") S                                      \
    X(cluster_engine_type, engine_type, kStr, "c.engine_type") S                 \
    X(cluster_environment, environment, kStr, "c.environment") S                 \
    X(template_id, id, kStr, "t.id") S                                           \
    X(template_name, name, kStr, "t.name") S                                     \
    X(template_version, version, kInt, "t.version") S                            \
    X(template_engine_type, engine_type, kStr, "t.engine_type") S                \
    X(status, status, kStr, "p.status") S                                        \
    X(pr_state, pr_state, kStr, "p.pr_state") S                                  \
    X(pr_url, pr_url, kStr, "p.pr_url") S                                        \
    X(metric_delta, metric_delta, kJsonb, "p.metric_delta") S                    \
    X(created_at, created_at, kTs, "p.created_at") S                             \
    X(is_currently_live, exists, kBool,                                          \
      "EXISTS (SELECT 1 FROM config_repos lr WHERE lr.last_merged_proposal_id = p.id)")

// ProposalDetail (47) = ProposalSummary (16), this part (16: study_summary
// with its query set and judgment list, then five proposal columns), Digest
// (8), the latest pr_job (RL_PR_JOB_LAYOUT, 7); joins RL_PROPOSAL_DETAIL_JOINS.
#define RL_PROPOSAL_DETAIL_LAYOUT(X, S)                                          \
    X(study_id, id, kStr, "s.id") S                                              \
    X(study_name, name, kStr, "s.name") S                                        \
    X(study_status, status, kStr, "s.status") S                                  \
    X(best_metric, best_metric, kReal, "s.best_metric") S                        \
    X(best_trial_id, best_trial_id, kStr, "s.best_trial_id") S                   \
    X(query_set_id, query_set_id, kStr, "s.query_set_id") S                     \
    X(query_set_name, coalesce, kStr, "coalesce(qs.name, '')") S                 \
    X(query_count, count, kInt,                                                  \
      "(SELECT count(*) FROM queries q WHERE q.query_set_id = s.query_set_id)") S \
    X(judgment_list_id, judgment_list_id, kStr, "s.judgment_list_id") S          \
    X(judgment_list_name, coalesce, kStr, "coalesce(jl.name, '')") S             \
    X(judgment_list_status, coalesce, kStr, "coalesce(jl.status, '')") S         \
    X(study_trial_id, study_trial_id, kStr, "p.study_trial_id") S                \
    X(config_diff, config_diff, kJsonb, "p.config_diff") S                       \
    X(pr_merged_at, pr_merged_at, kTs, "p.pr_merged_at") S                       \
    X(pr_open_error, pr_open_error, kStr, "p.pr_open_error") S                   \
    X(rejected_reason, rejected_reason, kStr, "p.rejected_reason")

#define RL_PR_JOB_LAYOUT(X, S)                                                   \
    X(state, state, kStr, "j.state") S                                           \
    X(attempts, attempts, kInt, "j.attempts") S                                  \
    X(last_event, last_event, kStr, "j.last_event") S                            \
    X(last_error, last_error, kStr, "j.last_error") S                            \
    X(created_at, created_at, kTs, "j.created_at") S                             \
    X(started_at, started_at, kTs, "j.started_at") S                             \
    X(finished_at, finished_at, kTs, "j.finished_at")

// namespace layout::NAME { enum : int {<columns>}; kColumns[]; kCount }
#define RL_DEFINE_LAYOUT(NAME, LAYOUT)                                           \
    namespace NAME {                                                             \
    enum : int { LAYOUT(RL_LAYOUT_ENUM, ) };                                     \
    inline constexpr Column kColumns[] = {LAYOUT(RL_LAYOUT_COLUMN, )};           \
    inline constexpr int kCount = static_cast<int>(std::size(kColumns));         \
    }

namespace layout {
RL_DEFINE_LAYOUT(config_repo, RL_CONFIG_REPO_LAYOUT)
RL_DEFINE_LAYOUT(cluster, RL_CLUSTER_LAYOUT)
RL_DEFINE_LAYOUT(query_template, RL_TEMPLATE_LAYOUT)
RL_DEFINE_LAYOUT(study, RL_STUDY_LAYOUT)
RL_DEFINE_LAYOUT(trial, RL_TRIAL_LAYOUT)
RL_DEFINE_LAYOUT(digest, RL_DIGEST_LAYOUT)
RL_DEFINE_LAYOUT(proposal_summary, RL_PROPOSAL_SUMMARY_LAYOUT)
RL_DEFINE_LAYOUT(proposal_detail, RL_PROPOSAL_DETAIL_LAYOUT)
RL_DEFINE_LAYOUT(pr_job, RL_PR_JOB_LAYOUT)
}  // namespace layout

#undef RL_DEFINE_LAYOUT

// clang-format on

// Column counts of the layouts as the statements return them.
inline constexpr int kConfigRepoCols = layout::config_repo::kCount;
inline constexpr int kClusterCols = layout::cluster::kCount;
inline constexpr int kTemplateCols = layout::query_template::kCount;
// The Study layout, then the analytics inputs from kStudyAnalyticsCol.
inline constexpr int kStudyAnalyticsCol = layout::study::kCount;
inline constexpr int kStudyCols = kStudyAnalyticsCol + analytics::kAnalyticsInputCols;
inline constexpr int kTrialCols = layout::trial::kCount;
inline constexpr int kDigestCols = layout::digest::kCount;
inline constexpr int kProposalSummaryCols = layout::proposal_summary::kCount;
// Where the parts of a ProposalDetail start.
inline constexpr int kProposalDetailOwnAt = kProposalSummaryCols;
inline constexpr int kProposalDetailDigestAt =
    kProposalDetailOwnAt + layout::proposal_detail::kCount;
inline constexpr int kProposalDetailPrJobAt = kProposalDetailDigestAt + kDigestCols;
inline constexpr int kProposalDetailCols = kProposalDetailPrJobAt + layout::pr_job::kCount;

static_assert(kConfigRepoCols == 10 && kClusterCols == 13 && kTemplateCols == 8 &&
                  kStudyAnalyticsCol == 27 && kStudyCols == 40 && kTrialCols == 12 &&
                  kDigestCols == 8 && kProposalSummaryCols == 16 && kProposalDetailCols == 47,
              "the sizes written next to the layouts");

}  // namespace relyloop::core::db
