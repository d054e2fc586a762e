#include "common/schema.hpp"

// What this project needs of a database whatever its kind (own or upstream,
// docs/upstream-schema.md): its own indexes on shared tables, and the columns
// `relyloop-worker migrate` checks are there. The migration steps themselves
// are in schema.cpp.

namespace relyloop::schema {

namespace {

constexpr OwnIndex kOwnIndexes[] = {
    {"config_repos_created_idx",
     "CREATE INDEX CONCURRENTLY IF NOT EXISTS config_repos_created_idx"
     " ON config_repos (created_at DESC, id DESC)"},
    {"clusters_created_idx",
     "CREATE INDEX CONCURRENTLY IF NOT EXISTS clusters_created_idx"
     " ON clusters (created_at DESC, id DESC)"},
    {"query_templates_created_idx",
     "CREATE INDEX CONCURRENTLY IF NOT EXISTS query_templates_created_idx"
     " ON query_templates (created_at DESC, id DESC)"},
    {"studies_created_idx",
     "CREATE INDEX CONCURRENTLY IF NOT EXISTS studies_created_idx"
     " ON studies (created_at DESC, id DESC)"},
    {"proposals_created_idx",
     "CREATE INDEX CONCURRENTLY IF NOT EXISTS proposals_created_idx"
     " ON proposals (created_at DESC, id DESC)"},
    {"proposals_status_idx",
     "CREATE INDEX CONCURRENTLY IF NOT EXISTS proposals_status_idx"
     " ON proposals (status, created_at DESC, id DESC)"},
    {"proposals_cluster_idx",
     "CREATE INDEX CONCURRENTLY IF NOT EXISTS proposals_cluster_idx"
     " ON proposals (cluster_id, created_at DESC)"},
    {"proposals_study_idx",
     "CREATE INDEX CONCURRENTLY IF NOT EXISTS proposals_study_idx ON proposals (study_id)"},
};

// Every column the module or the worker reads or writes.
constexpr RequiredColumn kRequired[] = {
    {"config_repos", "id", nullptr},
    {"config_repos", "name", nullptr},
    {"config_repos", "provider", nullptr},
    {"config_repos", "repo_url", nullptr},
    {"config_repos", "default_branch", nullptr},
    {"config_repos", "pr_base_branch", nullptr},
    {"config_repos", "auth_ref", nullptr},
    {"config_repos", "webhook_secret_ref", nullptr},
    {"config_repos", "webhook_registration_error", nullptr},
    {"config_repos", "last_merged_proposal_id", nullptr},
    {"config_repos", "created_at", nullptr},
    {"clusters", "id", nullptr},
    {"clusters", "name", nullptr},
    {"clusters", "engine_type", nullptr},
    {"clusters", "environment", nullptr},
    {"clusters", "base_url", nullptr},
    {"clusters", "auth_kind", nullptr},
    {"clusters", "credentials_ref", nullptr},
    {"clusters", "config_repo_id", nullptr},
    {"clusters", "config_path", nullptr},
    {"clusters", "engine_config", nullptr},
    {"clusters", "notes", nullptr},
    {"clusters", "target_filter", nullptr},
    {"clusters", "search_vector", nullptr},
    {"clusters", "created_at", nullptr},
    {"clusters", "deleted_at", nullptr},
    {"query_templates", "id", nullptr},
    {"query_templates", "name", nullptr},
    {"query_templates", "engine_type", nullptr},
    {"query_templates", "body", nullptr},
    {"query_templates", "declared_params", nullptr},
    {"query_templates", "version", nullptr},
    {"query_templates", "parent_id", nullptr},
    {"query_templates", "search_vector", nullptr},
    {"query_templates", "created_at", nullptr},
    {"query_sets", "id", nullptr},
    {"query_sets", "name", nullptr},
    {"query_sets", "description", nullptr},
    {"query_sets", "cluster_id", nullptr},
    {"query_sets", "created_at", nullptr},
    {"queries", "id", nullptr},
    {"queries", "query_set_id", nullptr},
    {"queries", "query_text", nullptr},
    {"judgment_lists", "id", nullptr},
    {"judgment_lists", "name", nullptr},
    {"judgment_lists", "query_set_id", nullptr},
    {"judgment_lists", "cluster_id", nullptr},
    {"judgment_lists", "target", nullptr},
    {"judgment_lists", "rubric", nullptr},
    {"judgment_lists", "status", nullptr},
    {"judgment_lists", "created_at", nullptr},
    {"studies", "id", nullptr},
    {"studies", "name", nullptr},
    {"studies", "cluster_id", nullptr},
    {"studies", "target", nullptr},
    {"studies", "template_id", nullptr},
    {"studies", "query_set_id", nullptr},
    {"studies", "judgment_list_id", nullptr},
    {"studies", "search_space", nullptr},
    {"studies", "objective", nullptr},
    {"studies", "config", nullptr},
    {"studies", "status", nullptr},
    {"studies", "failed_reason", nullptr},
    {"studies", "optuna_study_name", nullptr},
    {"studies", "parent_study_id", nullptr},
    {"studies", "baseline_metric", nullptr},
    {"studies", "baseline_trial_id", nullptr},
    {"studies", "best_metric", nullptr},
    {"studies", "best_trial_id", nullptr},
    {"studies", "search_vector", nullptr},
    {"studies", "created_at", nullptr},
    {"studies", "started_at", nullptr},
    {"studies", "completed_at", nullptr},
    {"trials", "id", nullptr},
    {"trials", "study_id", nullptr},
    {"trials", "optuna_trial_number", nullptr},
    {"trials", "params", nullptr},
    {"trials", "primary_metric", nullptr},
    {"trials", "metrics", nullptr},
    {"trials", "per_query_metrics", nullptr},
    {"trials", "is_baseline", nullptr},
    {"trials", "duration_ms", nullptr},
    {"trials", "status", nullptr},
    {"trials", "error", nullptr},
    {"trials", "started_at", nullptr},
    {"trials", "ended_at", nullptr},
    {"digests", "id", nullptr},
    {"digests", "study_id", nullptr},
    {"digests", "narrative", nullptr},
    {"digests", "parameter_importance", nullptr},
    {"digests", "recommended_config", nullptr},
    {"digests", "suggested_followups", "jsonb"},
    {"digests", "generated_by", nullptr},
    {"digests", "generated_at", nullptr},
    {"proposals", "id", nullptr},
    {"proposals", "study_id", nullptr},
    {"proposals", "study_trial_id", nullptr},
    {"proposals", "cluster_id", nullptr},
    {"proposals", "template_id", nullptr},
    {"proposals", "config_diff", nullptr},
    {"proposals", "metric_delta", nullptr},
    {"proposals", "status", nullptr},
    {"proposals", "pr_url", nullptr},
    {"proposals", "pr_state", nullptr},
    {"proposals", "pr_merged_at", nullptr},
    {"proposals", "pr_open_error", nullptr},
    {"proposals", "rejected_reason", nullptr},
    {"proposals", "last_polled_at", nullptr},
    {"proposals", "created_at", nullptr},
};

}  // namespace

std::span<const OwnIndex> own_indexes() { return kOwnIndexes; }

std::span<const RequiredColumn> required_columns() { return kRequired; }

}  // namespace relyloop::schema
