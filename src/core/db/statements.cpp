#include "db/statements.hpp"

#include "common/analytics.hpp"

namespace relyloop::core::db {

namespace {

// The SQL is laid out by hand, clause by clause.
// clang-format off

// Shared column layouts, spliced into the statements below at compile time:
// the SELECT lists of the row layouts of statements.hpp.

#define RL_CONFIG_REPO_COLS RL_CONFIG_REPO_LAYOUT(RL_LAYOUT_SQL, ", ")
#define RL_CLUSTER_COLS RL_CLUSTER_LAYOUT(RL_LAYOUT_SQL, ", ")
#define RL_TEMPLATE_COLS RL_TEMPLATE_LAYOUT(RL_LAYOUT_SQL, ", ")
#define RL_STUDY_COLS RL_STUDY_LAYOUT(RL_LAYOUT_SQL, ", ")

// Over the study's search trials: baseline trials (upstream RelyLoop's) left out.
#define RL_TRIALS_SUMMARY                                                            \
    " LEFT JOIN LATERAL (SELECT count(*) AS total,"                                  \
    " count(*) FILTER (WHERE x.status = 'complete') AS complete,"                    \
    " count(*) FILTER (WHERE x.status = 'failed') AS failed,"                        \
    " count(*) FILTER (WHERE x.status = 'pruned') AS pruned,"                        \
    " max(x.primary_metric) FILTER (WHERE x.status = 'complete') AS best_primary_metric" \
    " FROM trials x WHERE x.study_id = s.id AND NOT x.is_baseline) ts ON true "

#define RL_TRIAL_COLS RL_TRIAL_LAYOUT(RL_LAYOUT_SQL, ", ")
#define RL_DIGEST_COLS RL_DIGEST_LAYOUT(RL_LAYOUT_SQL, ", ")
#define RL_PROPOSAL_SUMMARY_COLS RL_PROPOSAL_SUMMARY_LAYOUT(RL_LAYOUT_SQL, ", ")

#define RL_PROPOSAL_JOINS                                      \
    " LEFT JOIN clusters c ON c.id = p.cluster_id"             \
    " LEFT JOIN query_templates t ON t.id = p.template_id "

#define RL_PROPOSAL_DETAIL_COLS                                                            \
    RL_PROPOSAL_SUMMARY_COLS ", " RL_PROPOSAL_DETAIL_LAYOUT(RL_LAYOUT_SQL, ", ") ", "        \
    RL_DIGEST_COLS ", " RL_PR_JOB_LAYOUT(RL_LAYOUT_SQL, ", ")

#define RL_PROPOSAL_DETAIL_JOINS                                                          \
    RL_PROPOSAL_JOINS                                                                     \
    " LEFT JOIN studies s ON s.id = p.study_id"                                           \
    " LEFT JOIN query_sets qs ON qs.id = s.query_set_id"                                  \
    " LEFT JOIN judgment_lists jl ON jl.id = s.judgment_list_id"                          \
    " LEFT JOIN digests d ON d.study_id = p.study_id"                                     \
    " LEFT JOIN LATERAL (SELECT y.state, y.attempts, y.last_event, y.last_error,"         \
    " y.created_at, y.started_at, y.finished_at FROM pr_jobs y"                           \
    " WHERE y.proposal_id = p.id ORDER BY y.created_at DESC, y.id DESC LIMIT 1) j ON true "

// Keyset conditions of the created_at lists. The cursor and since
// parameters default to ±infinity instead of "$n IS NULL OR ...", which keeps
// the condition a plain row comparison the (created_at DESC, id DESC) index
// can serve in a generic plan.
#define RL_SINCE(alias) " " alias ".created_at >= coalesce($4::timestamptz, '-infinity') "
#define RL_AFTER_CURSOR(alias)                                                         \
    " (" alias ".created_at, " alias ".id) < "                                         \
    "(coalesce($2::timestamptz, 'infinity'), coalesce($3::text, '')) "
#define RL_PAGE_ORDER(alias) " ORDER BY " alias ".created_at DESC, " alias ".id DESC "

// The filters of a list, shared by its page and its total (X-Total-Count),
// taking the numbers of their parameters: $5.. in the created_at lists,
// $10.. in the sorted ones (RL_SORTED_*).
#define RL_CLUSTER_FILTERS_AT(a, b)                                               \
    "c.deleted_at IS NULL AND (" a "::text IS NULL OR c.engine_type = " a "::text) " \
    "AND (" b "::text IS NULL OR c.environment = " b "::text) AND" RL_SINCE("c")
#define RL_TEMPLATE_FILTERS_AT(a) \
    "(" a "::text IS NULL OR t.engine_type = " a "::text) AND" RL_SINCE("t")
#define RL_STUDY_FILTERS_AT(a, b, c)                                              \
    "(" a "::text IS NULL OR s.status = " a "::text) "                            \
    "AND (" b "::text IS NULL OR s.cluster_id = " b "::text) "                    \
    "AND (" c "::text IS NULL OR s.target = " c "::text) AND" RL_SINCE("s")
// status given: that status; absent: superseded rows only with
// include_superseded. source: study_id set or not. is_last_merged: some
// config repo's last merged proposal or none.
#define RL_PROPOSAL_FILTERS_AT(a, b, c, d, e, f, g)                               \
    "(" a "::text IS NULL OR p.status = " a "::text) "                            \
    "AND (" b "::text IS NULL OR p.cluster_id = " b "::text) "                    \
    "AND (" c "::text IS NULL OR p.study_id = " c "::text) "                      \
    "AND (" d "::text IS NULL OR p.template_id = " d "::text) "                   \
    "AND (" a "::text IS NOT NULL OR " e "::bool OR p.status <> 'superseded') "   \
    "AND (" f "::text IS NULL OR (" f "::text = 'study') = (p.study_id IS NOT NULL)) " \
    "AND (" g "::bool IS NULL OR " g "::bool = EXISTS (SELECT 1 FROM config_repos cr " \
    "WHERE cr.last_merged_proposal_id = p.id)) AND" RL_SINCE("p")
#define RL_CLUSTER_FILTERS RL_CLUSTER_FILTERS_AT("$5", "$6")
#define RL_TEMPLATE_FILTERS RL_TEMPLATE_FILTERS_AT("$5")
#define RL_STUDY_FILTERS RL_STUDY_FILTERS_AT("$5", "$6", "$7")
#define RL_PROPOSAL_FILTERS RL_PROPOSAL_FILTERS_AT("$5", "$6", "$7", "$8", "$9", "$10", "$11")

// Sorted lists (docs/api.md, "Sorting"): $1 fetch count, $2 cursor value
// when the key is a timestamp, $3 cursor id (NULL: first page), $4 since,
// $5 sort key, $6 'asc'|'desc', $7 cursor value when the key is text, $8
// when it is a number, $9 q (NULL: none), then the filters. Each resource
// maps a key name to one expression of one of three types (RL_<RESOURCE>_TS,
// _TX, _NUM; NULL for the other keys); the order is the key ASC NULLS FIRST
// or DESC NULLS LAST, then id DESC. After the cursor row means
// lexicographically after on (timestamp key, text key, number key, id); the
// unused keys are NULL on both sides and so equal.
#define RL_AFTER_KEY(e, v)                                                        \
    "(CASE WHEN $6::text = 'asc' THEN ((" v " IS NULL AND " e " IS NOT NULL) OR " e " > " v ") " \
    "ELSE (" v " IS NOT NULL AND (" e " < " v " OR " e " IS NULL)) END)"
#define RL_SAME_KEY(e, v) "(" e " IS NOT DISTINCT FROM " v ")"
#define RL_SORTED_AFTER(alias, ts, tx, num)                                       \
    " ($3::text IS NULL OR " RL_AFTER_KEY(ts, "$2::timestamptz") " OR (" RL_SAME_KEY(ts, "$2::timestamptz") \
    " AND (" RL_AFTER_KEY(tx, "$7::text") " OR (" RL_SAME_KEY(tx, "$7::text") \
    " AND (" RL_AFTER_KEY(num, "$8::float8") " OR (" RL_SAME_KEY(num, "$8::float8") \
    " AND " alias ".id < $3::text)))))) "
#define RL_SORTED_ORDER(alias, ts, tx, num)                                       \
    " ORDER BY CASE WHEN $6::text = 'asc' THEN " ts " END ASC NULLS FIRST, "      \
    "CASE WHEN $6::text = 'desc' THEN " ts " END DESC NULLS LAST, "               \
    "CASE WHEN $6::text = 'asc' THEN " tx " END ASC NULLS FIRST, "                \
    "CASE WHEN $6::text = 'desc' THEN " tx " END DESC NULLS LAST, "               \
    "CASE WHEN $6::text = 'asc' THEN " num " END ASC NULLS FIRST, "               \
    "CASE WHEN $6::text = 'desc' THEN " num " END DESC NULLS LAST, " alias ".id DESC "
// Full-text search and its rank key (an integer, as a float8).
#define RL_Q_MATCH(alias) \
    " ($9::text IS NULL OR " alias ".search_vector @@ plainto_tsquery('english', $9::text)) "
#define RL_RANK(alias)                                                            \
    "floor(ts_rank(" alias ".search_vector, plainto_tsquery('english', $9::text)) * 1000000)::float8"
// One sorted list: total, the three keys of the row, the layout.
#define RL_SORTED_LIST(table, alias, filters, qmatch, ts, tx, num, cols, joins)   \
    "WITH page AS (SELECT * FROM " table " " alias " WHERE " filters " AND" qmatch \
    "AND" RL_SORTED_AFTER(alias, ts, tx, num) RL_SORTED_ORDER(alias, ts, tx, num) "LIMIT $1::int) " \
    "SELECT (SELECT count(*) FROM " table " " alias " WHERE " filters " AND" qmatch \
    ") AS total, " ts ", " tx ", " num ", " cols " FROM (SELECT 1) one LEFT JOIN page " alias \
    " ON true" joins RL_SORTED_ORDER(alias, ts, tx, num)

#define RL_CLUSTER_TS "(CASE $5::text WHEN 'created_at' THEN c.created_at END)"
#define RL_CLUSTER_TX \
    "(CASE $5::text WHEN 'name' THEN c.name::text WHEN 'environment' THEN c.environment::text END)"
#define RL_CLUSTER_NUM "(CASE $5::text WHEN 'rank' THEN " RL_RANK("c") " END)"
#define RL_TEMPLATE_TS "(CASE $5::text WHEN 'created_at' THEN t.created_at END)"
#define RL_TEMPLATE_TX \
    "(CASE $5::text WHEN 'name' THEN t.name::text WHEN 'engine_type' THEN t.engine_type::text END)"
#define RL_TEMPLATE_NUM \
    "(CASE $5::text WHEN 'version' THEN t.version::float8 WHEN 'rank' THEN " RL_RANK("t") " END)"
#define RL_STUDY_TS \
    "(CASE $5::text WHEN 'created_at' THEN s.created_at WHEN 'completed_at' THEN s.completed_at END)"
#define RL_STUDY_TX \
    "(CASE $5::text WHEN 'name' THEN s.name::text WHEN 'status' THEN s.status::text END)"
#define RL_STUDY_NUM \
    "(CASE $5::text WHEN 'best_metric' THEN s.best_metric::float8 WHEN 'rank' THEN " RL_RANK("s") " END)"
#define RL_PROPOSAL_TS "(CASE $5::text WHEN 'created_at' THEN p.created_at END)"
#define RL_PROPOSAL_TX \
    "(CASE $5::text WHEN 'status' THEN p.status::text WHEN 'pr_state' THEN p.pr_state::text END)"
#define RL_PROPOSAL_NUM "(CASE $5::text WHEN 'none' THEN 0::float8 END)"
// Proposals have no search: $9 is NULL, so this is true.
#define RL_NO_Q " ($9::text IS NULL) "

// Trials ended at or after $5 (NULL: all).
#define RL_TRIAL_SINCE(alias) \
    " (" "$5::timestamptz IS NULL OR " alias ".ended_at >= $5::timestamptz) "

// The rest of a trial page in one order: the page, whether the study exists,
// the study's trial count, the rows in that order.
#define RL_TRIAL_PAGE(order)                                                      \
    "ORDER BY " order " LIMIT $2::int) "                                          \
    "SELECT EXISTS (SELECT 1 FROM studies WHERE id = $1::text) AS study_found, "  \
    "(SELECT count(*) FROM trials x WHERE x.study_id = $1::text AND" RL_TRIAL_SINCE("x") \
    ") AS total, " RL_TRIAL_COLS \
    " FROM (SELECT 1) one LEFT JOIN page t ON true "                              \
    "ORDER BY " order

// Lists: $1 fetch count (limit + 1), $2 cursor created_at, $3 cursor id,
// $4 since, then the filters. Columns: total (rows matching the filters,
// ignoring the cursor), then the layout; an empty page is one row whose
// layout columns are all NULL, so the total still arrives.

constexpr rl_statement_t kStatements[] = {
    // Health: no columns of interest.
    {"rl_health_ping", "SELECT 1", 0},

    // $1 id → ConfigRepo, ProposalSummary of last_merged_proposal_id (NULLs
    // when none), 0..1 rows.
    {"rl_config_repo_get",
     "SELECT " RL_CONFIG_REPO_COLS ", " RL_PROPOSAL_SUMMARY_COLS " FROM config_repos r "
     "LEFT JOIN proposals p ON p.id = r.last_merged_proposal_id" RL_PROPOSAL_JOINS
     "WHERE r.id = $1::text", 1},

    // list → total, ConfigRepo
    {"rl_config_repo_list",
     "WITH page AS (SELECT * FROM config_repos r WHERE" RL_SINCE("r") "AND" RL_AFTER_CURSOR("r")
         RL_PAGE_ORDER("r") "LIMIT $1::int) "
     "SELECT (SELECT count(*) FROM config_repos r WHERE" RL_SINCE("r") ") AS total, "
     RL_CONFIG_REPO_COLS " FROM (SELECT 1) one LEFT JOIN page r ON true" RL_PAGE_ORDER("r"),
     4},

    // $1 id, $2 name, $3 repo_url, $4 default_branch, $5 pr_base_branch,
    // $6 auth_ref, $7 webhook_secret_ref, $8 webhook job id → ConfigRepo.
    // With a webhook_secret_ref the registration job is inserted by the same
    // statement (docs/webhooks.md). 23505 on config_repos_name_key is
    // CONFIG_REPO_NAME_TAKEN.
    {"rl_config_repo_insert",
     "WITH r AS (INSERT INTO config_repos AS r (id, name, provider, repo_url, default_branch, "
     "pr_base_branch, auth_ref, webhook_secret_ref, created_at) "
     "VALUES ($1::text, $2::text, 'github', $3::text, $4::text, $5::text, $6::text, $7::text, "
     "now()) RETURNING *), "
     "j AS (INSERT INTO webhook_jobs (id, config_repo_id, state, attempts, run_after, created_at) "
     "SELECT $8::text, r.id, 'queued', 0, now(), now() FROM r "
     "WHERE r.webhook_secret_ref IS NOT NULL AND r.webhook_secret_ref <> '') "
     "SELECT " RL_CONFIG_REPO_COLS " FROM r",
     8},

    // $1 id → Cluster (not soft-deleted), 0..1 rows.
    {"rl_cluster_get",
     "SELECT " RL_CLUSTER_COLS " FROM clusters c WHERE c.id = $1::text AND c.deleted_at IS NULL",
     1},

    // list, $5 engine_type, $6 environment → total, Cluster
    {"rl_cluster_list",
     "WITH page AS (SELECT * FROM clusters c WHERE " RL_CLUSTER_FILTERS
         "AND" RL_AFTER_CURSOR("c") RL_PAGE_ORDER("c") "LIMIT $1::int) "
     "SELECT (SELECT count(*) FROM clusters c WHERE " RL_CLUSTER_FILTERS
     ") AS total, " RL_CLUSTER_COLS " FROM (SELECT 1) one LEFT JOIN page c ON true"
         RL_PAGE_ORDER("c"),
     6},

    // sorted list, $10 engine_type, $11 environment → total, keys (3), Cluster
    {"rl_cluster_list_sorted",
     RL_SORTED_LIST("clusters", "c", RL_CLUSTER_FILTERS_AT("$10", "$11"), RL_Q_MATCH("c"),
                    RL_CLUSTER_TS, RL_CLUSTER_TX, RL_CLUSTER_NUM, RL_CLUSTER_COLS, ""),
     11},

    // $1 id, $2 name, $3 engine_type, $4 environment, $5 base_url,
    // $6 auth_kind, $7 credentials_ref, $8 config_repo_id, $9 config_path,
    // $10 engine_config, $11 notes, $12 target_filter, $13 config_repo_id
    // given?, $14 config_path given? → repo_ok, Cluster (NULLs when not
    // written: the name belongs to an active cluster). A soft-deleted cluster
    // of the name is revived in place: same id and created_at, the body's
    // fields, config_repo_id/config_path only when given. 23505
    // clusters_name_key (a race with a revive) → CLUSTER_NAME_TAKEN.
    {"rl_cluster_insert",
     "WITH chk AS (SELECT ($8::text IS NULL OR EXISTS (SELECT 1 FROM config_repos "
     "WHERE id = $8::text)) AS repo_ok), "
     "ins AS (INSERT INTO clusters AS k (id, name, engine_type, environment, base_url, auth_kind, "
     "credentials_ref, config_repo_id, config_path, engine_config, notes, target_filter, "
     "created_at) "
     "SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::text, "
     "$9::text, $10::jsonb, $11::text, $12::text, now() FROM chk WHERE chk.repo_ok "
     "ON CONFLICT (name) DO UPDATE SET engine_type = EXCLUDED.engine_type, "
     "environment = EXCLUDED.environment, base_url = EXCLUDED.base_url, "
     "auth_kind = EXCLUDED.auth_kind, credentials_ref = EXCLUDED.credentials_ref, "
     "engine_config = EXCLUDED.engine_config, notes = EXCLUDED.notes, "
     "target_filter = EXCLUDED.target_filter, "
     "config_repo_id = CASE WHEN $13::bool THEN EXCLUDED.config_repo_id ELSE k.config_repo_id END, "
     "config_path = CASE WHEN $14::bool THEN EXCLUDED.config_path ELSE k.config_path END, "
     "deleted_at = NULL WHERE k.deleted_at IS NOT NULL RETURNING *) "
     "SELECT chk.repo_ok, " RL_CLUSTER_COLS " FROM chk LEFT JOIN ins c ON true",
     14},

    // $1 id → 0..1 rows (the id) when an active cluster was soft-deleted.
    {"rl_cluster_delete",
     "UPDATE clusters SET deleted_at = now() WHERE id = $1::text AND deleted_at IS NULL "
     "RETURNING id",
     1},

    // $1 id, $2 set config_repo_id?, $3 config_repo_id, $4 set config_path?,
    // $5 config_path, $6 set notes?, $7 notes → cluster_ok, repo_ok, Cluster
    // (NULLs when not updated).
    {"rl_cluster_patch",
     "WITH chk AS (SELECT EXISTS (SELECT 1 FROM clusters WHERE id = $1::text "
     "AND deleted_at IS NULL) AS cluster_ok, (NOT $2::bool OR $3::text IS NULL OR "
     "EXISTS (SELECT 1 FROM config_repos WHERE id = $3::text)) AS repo_ok), "
     "u AS (UPDATE clusters SET "
     "config_repo_id = CASE WHEN $2::bool THEN $3::text ELSE config_repo_id END, "
     "config_path = CASE WHEN $4::bool THEN $5::text ELSE config_path END, "
     "notes = CASE WHEN $6::bool THEN $7::text ELSE notes END "
     "WHERE id = $1::text AND deleted_at IS NULL AND (SELECT repo_ok FROM chk) RETURNING *) "
     "SELECT chk.cluster_ok, chk.repo_ok, " RL_CLUSTER_COLS " FROM chk LEFT JOIN u c ON true",
     7},

    // $1 id → Template, 0..1 rows.
    {"rl_template_get",
     "SELECT " RL_TEMPLATE_COLS " FROM query_templates t WHERE t.id = $1::text", 1},

    // list, $5 engine_type → total, Template
    {"rl_template_list",
     "WITH page AS (SELECT * FROM query_templates t WHERE " RL_TEMPLATE_FILTERS
     "AND" RL_AFTER_CURSOR("t") RL_PAGE_ORDER("t") "LIMIT $1::int) "
     "SELECT (SELECT count(*) FROM query_templates t WHERE " RL_TEMPLATE_FILTERS
     ") AS total, " RL_TEMPLATE_COLS
     " FROM (SELECT 1) one LEFT JOIN page t ON true" RL_PAGE_ORDER("t"),
     5},

    // sorted list, $10 engine_type → total, keys (3), Template
    {"rl_template_list_sorted",
     RL_SORTED_LIST("query_templates", "t", RL_TEMPLATE_FILTERS_AT("$10"), RL_Q_MATCH("t"),
                    RL_TEMPLATE_TS, RL_TEMPLATE_TX, RL_TEMPLATE_NUM, RL_TEMPLATE_COLS, ""),
     10},

    // $1 id, $2 name, $3 engine_type, $4 body, $5 declared_params,
    // $6 version, $7 parent_id → parent_ok, Template (NULLs when not
    // inserted). 23505 query_templates_name_version_key → TEMPLATE_NAME_TAKEN.
    {"rl_template_insert",
     "WITH chk AS (SELECT ($7::text IS NULL OR EXISTS (SELECT 1 FROM query_templates "
     "WHERE id = $7::text)) AS parent_ok), "
     "ins AS (INSERT INTO query_templates (id, name, engine_type, body, declared_params, "
     "version, parent_id, created_at) SELECT $1::text, $2::text, $3::text, $4::text, "
     "$5::jsonb, $6::int, $7::text, now() FROM chk WHERE chk.parent_ok RETURNING *) "
     "SELECT chk.parent_ok, " RL_TEMPLATE_COLS " FROM chk LEFT JOIN ins t ON true",
     7},

    // $1 id → Study, 0..1 rows.
    {"rl_study_get",
     "SELECT " RL_STUDY_COLS ", " RL_ANALYTICS_INPUT_COLS " FROM studies s" RL_TRIALS_SUMMARY
         RL_ANALYTICS_INPUT_JOINS "WHERE s.id = $1::text",
     1},

    // list, $5 status, $6 cluster_id, $7 target → total, Study
    {"rl_study_list",
     "WITH page AS (SELECT * FROM studies s WHERE " RL_STUDY_FILTERS
     "AND" RL_AFTER_CURSOR("s") RL_PAGE_ORDER("s") "LIMIT $1::int) "
     "SELECT (SELECT count(*) FROM studies s WHERE " RL_STUDY_FILTERS ") AS total, "
     RL_STUDY_COLS ", " RL_ANALYTICS_SERIES_ONLY_COLS
     " FROM (SELECT 1) one LEFT JOIN page s ON true" RL_TRIALS_SUMMARY RL_PAGE_ORDER("s"),
     7},

    // sorted list, $10 status, $11 cluster_id, $12 target → total, keys (3), Study
    {"rl_study_list_sorted",
     RL_SORTED_LIST("studies", "s", RL_STUDY_FILTERS_AT("$10", "$11", "$12"), RL_Q_MATCH("s"),
                    RL_STUDY_TS, RL_STUDY_TX, RL_STUDY_NUM,
                    RL_STUDY_COLS ", " RL_ANALYTICS_SERIES_ONLY_COLS, RL_TRIALS_SUMMARY),
     12},

    // $1 id → prior_status (NULL: no such study), Study after the update
    // (NULLs when the state did not allow it).
    {"rl_study_cancel",
     "WITH found AS (SELECT status FROM studies WHERE id = $1::text), "
     "u AS (UPDATE studies SET status = 'cancelled', completed_at = now() "
     "WHERE id = $1::text AND status IN ('queued', 'running') RETURNING *) "
     "SELECT (SELECT status FROM found) AS prior_status, " RL_STUDY_COLS
     ", " RL_ANALYTICS_INPUT_COLS " FROM (SELECT 1) one LEFT JOIN u s ON true" RL_TRIALS_SUMMARY
         RL_ANALYTICS_INPUT_JOINS,
     1},

    // $1 study id → study_found, study status, Digest (NULLs when none).
    {"rl_digest_get",
     "SELECT s.id IS NOT NULL AS study_found, s.status, " RL_DIGEST_COLS
     " FROM (SELECT 1) one LEFT JOIN studies s ON s.id = $1::text "
     "LEFT JOIN digests d ON d.study_id = s.id",
     1},

    // Trials of a study: $1 study id, $2 fetch count, $3 cursor key, $4
    // cursor id (NULL: first page) → study_found, total, Trial.
    // primary_metric DESC NULLS LAST, id DESC. After a non-NULL key come
    // smaller metrics, equal ones with smaller ids, then all NULLs; after a
    // NULL key only NULLs with smaller ids.
    {"rl_trial_list_metric_desc",
     "WITH page AS (SELECT * FROM trials t WHERE t.study_id = $1::text AND" RL_TRIAL_SINCE("t") "AND ($4::text IS NULL "
     "OR ($3::float8 IS NOT NULL AND (t.primary_metric < $3::float8 OR (t.primary_metric = "
     "$3::float8 AND t.id < $4::text) OR t.primary_metric IS NULL)) "
     "OR ($3::float8 IS NULL AND t.primary_metric IS NULL AND t.id < $4::text)) "
     RL_TRIAL_PAGE("t.primary_metric DESC NULLS LAST, t.id DESC"),
     5},

    // As above, primary_metric ASC NULLS LAST, id ASC.
    {"rl_trial_list_metric_asc",
     "WITH page AS (SELECT * FROM trials t WHERE t.study_id = $1::text AND" RL_TRIAL_SINCE("t") "AND ($4::text IS NULL "
     "OR ($3::float8 IS NOT NULL AND (t.primary_metric > $3::float8 OR (t.primary_metric = "
     "$3::float8 AND t.id > $4::text) OR t.primary_metric IS NULL)) "
     "OR ($3::float8 IS NULL AND t.primary_metric IS NULL AND t.id > $4::text)) "
     RL_TRIAL_PAGE("t.primary_metric ASC NULLS LAST, t.id ASC"),
     5},

    // As above, optuna_trial_number ASC, id ASC ($3 is the number).
    {"rl_trial_list_number_asc",
     "WITH page AS (SELECT * FROM trials t WHERE t.study_id = $1::text AND" RL_TRIAL_SINCE("t") "AND ($4::text IS NULL "
     "OR (t.optuna_trial_number, t.id) > ($3::int, $4::text)) "
     RL_TRIAL_PAGE("t.optuna_trial_number ASC, t.id ASC"),
     5},

    // As the metric orders, over ended_at ($3 a timestamp): NULL ended_at
    // rows come after the others in both directions.
    {"rl_trial_list_ended_desc",
     "WITH page AS (SELECT * FROM trials t WHERE t.study_id = $1::text AND" RL_TRIAL_SINCE("t")
     "AND ($4::text IS NULL "
     "OR ($3::timestamptz IS NOT NULL AND (t.ended_at < $3::timestamptz OR (t.ended_at = "
     "$3::timestamptz AND t.id < $4::text) OR t.ended_at IS NULL)) "
     "OR ($3::timestamptz IS NULL AND t.ended_at IS NULL AND t.id < $4::text)) "
     RL_TRIAL_PAGE("t.ended_at DESC NULLS LAST, t.id DESC"),
     5},
    {"rl_trial_list_ended_asc",
     "WITH page AS (SELECT * FROM trials t WHERE t.study_id = $1::text AND" RL_TRIAL_SINCE("t")
     "AND ($4::text IS NULL "
     "OR ($3::timestamptz IS NOT NULL AND (t.ended_at > $3::timestamptz OR (t.ended_at = "
     "$3::timestamptz AND t.id > $4::text) OR t.ended_at IS NULL)) "
     "OR ($3::timestamptz IS NULL AND t.ended_at IS NULL AND t.id > $4::text)) "
     RL_TRIAL_PAGE("t.ended_at ASC NULLS LAST, t.id ASC"),
     5},

    // $1 id → ProposalDetail, 0..1 rows.
    {"rl_proposal_get",
     "SELECT " RL_PROPOSAL_DETAIL_COLS " FROM proposals p" RL_PROPOSAL_DETAIL_JOINS
     "WHERE p.id = $1::text",
     1},

    // list, $5 status, $6 cluster_id, $7 study_id, $8 template_id,
    // $9 include_superseded, $10 source, $11 is_last_merged
    // → total, ProposalSummary
    {"rl_proposal_list",
     "WITH page AS (SELECT * FROM proposals p WHERE " RL_PROPOSAL_FILTERS
     "AND" RL_AFTER_CURSOR("p") RL_PAGE_ORDER("p") "LIMIT $1::int) "
     "SELECT (SELECT count(*) FROM proposals p WHERE " RL_PROPOSAL_FILTERS ") AS total, "
     RL_PROPOSAL_SUMMARY_COLS " FROM (SELECT 1) one LEFT JOIN page p ON true"
         RL_PROPOSAL_JOINS RL_PAGE_ORDER("p"),
     11},

    // sorted list, the filters from $10 → total, keys (3), ProposalSummary
    {"rl_proposal_list_sorted",
     RL_SORTED_LIST("proposals", "p",
                    RL_PROPOSAL_FILTERS_AT("$10", "$11", "$12", "$13", "$14", "$15", "$16"),
                    RL_NO_Q, RL_PROPOSAL_TS, RL_PROPOSAL_TX, RL_PROPOSAL_NUM,
                    RL_PROPOSAL_SUMMARY_COLS, RL_PROPOSAL_JOINS),
     16},

    // Manual proposal: $1 id, $2 cluster_id, $3 template_id, $4 config_diff,
    // $5 metric_delta → cluster_ok, template_ok, ProposalDetail (NULLs when
    // not inserted).
    {"rl_proposal_insert",
     "WITH chk AS (SELECT EXISTS (SELECT 1 FROM clusters WHERE id = $2::text "
     "AND deleted_at IS NULL) AS cluster_ok, EXISTS (SELECT 1 FROM query_templates "
     "WHERE id = $3::text) AS template_ok), "
     "ins AS (INSERT INTO proposals (id, study_id, study_trial_id, cluster_id, template_id, "
     "config_diff, metric_delta, status, created_at) SELECT $1::text, NULL, NULL, $2::text, "
     "$3::text, $4::jsonb, $5::jsonb, 'pending', now() FROM chk "
     "WHERE chk.cluster_ok AND chk.template_ok RETURNING *) "
     "SELECT chk.cluster_ok, chk.template_ok, " RL_PROPOSAL_DETAIL_COLS
     " FROM chk LEFT JOIN ins p ON true" RL_PROPOSAL_DETAIL_JOINS,
     5},

    // $1 id, $2 reason → prior_status (NULL: no such proposal),
    // ProposalDetail after the update (NULLs when it was not pending).
    {"rl_proposal_reject",
     "WITH found AS (SELECT status FROM proposals WHERE id = $1::text), "
     "u AS (UPDATE proposals SET status = 'rejected', rejected_reason = $2::text "
     "WHERE id = $1::text AND status = 'pending' RETURNING *) "
     "SELECT (SELECT status FROM found) AS prior_status, " RL_PROPOSAL_DETAIL_COLS
     " FROM (SELECT 1) one LEFT JOIN u p ON true" RL_PROPOSAL_DETAIL_JOINS,
     2},

    // $1 id → prior_status (NULL: no such proposal), ProposalDetail after
    // the update (NULLs when it was not superseded): superseded → pending in
    // one conditional UPDATE, nothing else changed.
    {"rl_proposal_reinstate",
     "WITH found AS (SELECT status FROM proposals WHERE id = $1::text), "
     "u AS (UPDATE proposals SET status = 'pending' "
     "WHERE id = $1::text AND status = 'superseded' RETURNING *) "
     "SELECT (SELECT status FROM found) AS prior_status, " RL_PROPOSAL_DETAIL_COLS
     " FROM (SELECT 1) one LEFT JOIN u p ON true" RL_PROPOSAL_DETAIL_JOINS,
     1},

    // open_pr preflight (docs/api.md, "open_pr", steps 1-3): $1 proposal id → 0..1 rows of
    // status, cluster id (NULL: missing or deleted), config_repo_id, repo id
    // (NULL: no repo row), auth_ref.
    {"rl_open_pr_preflight",
     "SELECT p.status, c.id, c.config_repo_id, r.id, r.auth_ref FROM proposals p "
     "LEFT JOIN clusters c ON c.id = p.cluster_id AND c.deleted_at IS NULL "
     "LEFT JOIN config_repos r ON r.id = c.config_repo_id WHERE p.id = $1::text",
     1},

    // Seed a completed study (development only): $1 study id, $2 trial #0
    // id, $3 trial #1 id, $4 digest id, $5 proposal id (NULL: none),
    // $6 cluster_id, $7 template_id, $8 query_set_id (NULL: create one),
    // $9 judgment_list_id (NULL: create one), $10 new query set id,
    // $11 new judgment list id, $12 per_query_metrics of trial #0, $13 of
    // trial #1, $14 suggested_followups (NULL: the two default items),
    // $15 extra trials [{id, n, boost, v}] → cluster_ok, template_ok,
    // query_set_ok, judgment_list_ok, study id, digest id, proposal id,
    // trial count. Trial times count from S = the study's started_at.
    {"rl_seed_completed",
     "WITH chk AS (SELECT "
     "EXISTS (SELECT 1 FROM clusters WHERE id = $6::text AND deleted_at IS NULL) AS cluster_ok, "
     "EXISTS (SELECT 1 FROM query_templates WHERE id = $7::text) AS template_ok, "
     "($8::text IS NULL OR EXISTS (SELECT 1 FROM query_sets WHERE id = $8::text)) AS qs_ok, "
     "($9::text IS NULL OR EXISTS (SELECT 1 FROM judgment_lists WHERE id = $9::text)) AS jl_ok, "
     "now() - interval '1 minute' AS s), "
     "go AS (SELECT s FROM chk WHERE cluster_ok AND template_ok AND qs_ok AND jl_ok), "
     "qs AS (INSERT INTO query_sets (id, name, description, cluster_id, created_at) "
     "SELECT $10::text, 'e2e-seed-qs-' || $10::text, 'placeholder query set of the e2e seed', "
     "$6::text, now() FROM go WHERE $8::text IS NULL RETURNING id), "
     "qs_id AS (SELECT coalesce($8::text, (SELECT id FROM qs)) AS id), "
     "jl AS (INSERT INTO judgment_lists (id, name, description, query_set_id, cluster_id, "
     "target, current_template_id, rubric, status, created_at) "
     "SELECT $11::text, 'e2e-seed-jl-' || $11::text, 'placeholder judgment list of the e2e seed', "
     "(SELECT id FROM qs_id), $6::text, 'products', $7::text, '', 'complete', now() FROM go "
     "WHERE $9::text IS NULL RETURNING id), "
     "extra AS (SELECT e->>'id' AS id, (e->>'n')::int AS n, (e->>'i')::int AS i, "
     "jsonb_build_object('boost', e->'boost') AS params, (e->>'v')::float8 AS v "
     "FROM jsonb_array_elements($15::jsonb) AS e), "
     "st AS (INSERT INTO studies (id, name, cluster_id, target, template_id, query_set_id, "
     "judgment_list_id, search_space, objective, config, status, optuna_study_name, "
     "baseline_metric, best_metric, best_trial_id, baseline_trial_id, created_at, started_at, "
     "completed_at) "
     "SELECT $1::text, 'e2e-seed-' || left($1::text, 8), $6::text, 'products', $7::text, "
     "(SELECT id FROM qs_id), coalesce($9::text, (SELECT id FROM jl)), "
     "'{\"params\": {\"boost\": {\"type\": \"float\", \"low\": 0.5, \"high\": 5.0, \"log\": false}}}'::jsonb, "
     "'{\"metric\": \"ndcg\", \"k\": 10, \"direction\": \"maximize\"}'::jsonb, "
     "'{\"max_trials\": 2, \"sampler\": \"tpe\", \"pruner\": \"none\"}'::jsonb, 'completed', "
     "$1::text, NULL, 0.487, $2::text, NULL, go.s, go.s, now() FROM go "
     "RETURNING id, started_at), "
     "tr AS (INSERT INTO trials (id, study_id, optuna_trial_number, params, primary_metric, "
     "metrics, per_query_metrics, duration_ms, status, is_baseline, started_at, ended_at) "
     "SELECT v.id, st.id, v.n, v.params::jsonb, v.pm, v.metrics::jsonb, v.pq, v.ms, 'complete', "
     "false, st.started_at + v.start_ms * interval '1 millisecond', "
     "st.started_at + (v.start_ms + v.ms) * interval '1 millisecond' FROM st, ("
     "VALUES ($2::text, 0, '{\"boost\": 2.5}', 0.487::float8, "
     "'{\"ndcg@10\": 0.487, \"map\": 0.412, \"precision@10\": 0.5}', $12::jsonb, 1200, 0), "
     "($3::text, 1, '{\"boost\": 0.8}', 0.412::float8, "
     "'{\"ndcg@10\": 0.412, \"map\": 0.351, \"precision@10\": 0.4}', $13::jsonb, 1100, 1300) "
     "UNION ALL SELECT extra.id, extra.n, extra.params::text, extra.v, "
     "jsonb_build_object('ndcg@10', extra.v)::text, NULL::jsonb, 1100, 2500 + 1200 * extra.i "
     "FROM extra) AS v (id, n, params, pm, metrics, pq, ms, start_ms) RETURNING id), "
     "dg AS (INSERT INTO digests (id, study_id, narrative, parameter_importance, "
     "recommended_config, suggested_followups, generated_by, generated_at) "
     "SELECT $4::text, st.id, 'Seeded digest narrative for E2E coverage. Tuning `boost` from 1.0 "
     "to 2.5 lifted ndcg@10 from 0.412 (baseline) to 0.487 (+18.2%). The winning configuration "
     "is recommended for production rollout.', "
     "'{\"boost\": 1.0}'::jsonb, '{\"boost\": 2.5}'::jsonb, "
     "coalesce($14::jsonb, '[{\"kind\": \"text\", \"rationale\": \"Try varying "
     "`description.boost` next.\", \"search_space\": null}, {\"kind\": \"text\", \"rationale\": "
     "\"Run with a larger query set to confirm the lift holds.\", \"search_space\": null}]'::jsonb), "
     "'local:e2e_seed', now() FROM st RETURNING id), "
     "pr AS (INSERT INTO proposals (id, study_id, study_trial_id, cluster_id, template_id, "
     "config_diff, metric_delta, status, created_at) "
     "SELECT $5::text, st.id, $2::text, $6::text, $7::text, "
     "'{\"boost\": {\"from\": 1.0, \"to\": 2.5}}'::jsonb, "
     "'{\"ndcg@10\": {\"baseline\": 0.412, \"achieved\": 0.487, \"delta_pct\": 18.2}}'::jsonb, "
     "'pending', now() FROM st WHERE $5::text IS NOT NULL RETURNING id) "
     "SELECT chk.cluster_ok, chk.template_ok, chk.qs_ok, chk.jl_ok, (SELECT id FROM st), "
     "(SELECT id FROM dg), (SELECT id FROM pr), (SELECT count(*) FROM tr) FROM chk",
     15},

    // POST /webhooks/github (docs/webhooks.md). $1 owner/repo lower-cased,
    // $2 github_web_url without a trailing '/'.
    // id, webhook_secret_ref
    {"rl_webhook_candidates",
     "SELECT id, webhook_secret_ref FROM config_repos "
     "WHERE webhook_secret_ref IS NOT NULL AND webhook_secret_ref <> '' "
     "AND left(lower(repo_url), length($2::text) + 1) = lower($2::text) || '/' "
     "AND regexp_replace(lower(substr(repo_url, length($2::text) + 2)), '\\.git$', '') = $1::text "
     "ORDER BY created_at, id",
     2},
    // The delivery's transaction, one call (own function, docs/webhooks.md).
    // replayed, stale, action, proposal_id, pointers
    {"rl_webhook_apply",
     "SELECT replayed, stale, action, proposal_id, pointers::text FROM relyloop_webhook_apply("
     "$1::text, $2::text, $3::text, $4::text, $5::text, $6::timestamptz, $7::timestamptz, "
     "$8::bigint, $9::text)",
     9},
    // POST /config-repos/{id}/register_webhook: $1 id, $2 new job id →
    // repo_found, secret_set (one row). A live job is kept (no second one);
    // a racing insert meets the partial unique index and does nothing.
    {"rl_config_repo_register_webhook",
     "WITH cr AS (SELECT id, webhook_secret_ref FROM config_repos WHERE id = $1::text), "
     "ins AS (INSERT INTO webhook_jobs (id, config_repo_id, state, attempts, run_after, created_at) "
     "SELECT $2::text, cr.id, 'queued', 0, now(), now() FROM cr "
     "WHERE cr.webhook_secret_ref IS NOT NULL AND cr.webhook_secret_ref <> '' "
     "AND NOT EXISTS (SELECT 1 FROM webhook_jobs j WHERE j.config_repo_id = cr.id "
     "AND j.state IN ('queued', 'running')) "
     "ON CONFLICT DO NOTHING RETURNING id) "
     "SELECT EXISTS (SELECT 1 FROM cr), "
     "EXISTS (SELECT 1 FROM cr WHERE webhook_secret_ref IS NOT NULL AND webhook_secret_ref <> ''), "
     "(SELECT count(*) FROM ins)",
     2},
};

#undef RL_CONFIG_REPO_COLS
#undef RL_CLUSTER_COLS
#undef RL_TEMPLATE_COLS
#undef RL_STUDY_COLS
#undef RL_TRIALS_SUMMARY
#undef RL_TRIAL_COLS
#undef RL_DIGEST_COLS
#undef RL_PROPOSAL_SUMMARY_COLS
#undef RL_PROPOSAL_JOINS
#undef RL_PROPOSAL_DETAIL_COLS
#undef RL_PROPOSAL_DETAIL_JOINS
#undef RL_SINCE
#undef RL_AFTER_CURSOR
#undef RL_PAGE_ORDER
#undef RL_CLUSTER_FILTERS_AT
#undef RL_TEMPLATE_FILTERS_AT
#undef RL_STUDY_FILTERS_AT
#undef RL_PROPOSAL_FILTERS_AT
#undef RL_CLUSTER_FILTERS
#undef RL_TEMPLATE_FILTERS
#undef RL_STUDY_FILTERS
#undef RL_PROPOSAL_FILTERS
#undef RL_AFTER_KEY
#undef RL_SAME_KEY
#undef RL_SORTED_AFTER
#undef RL_SORTED_ORDER
#undef RL_Q_MATCH
#undef RL_RANK
#undef RL_SORTED_LIST
#undef RL_NO_Q
#undef RL_TRIAL_SINCE

// clang-format on

static_assert(std::size(kStatements) == static_cast<size_t>(Stmt::kCount),
              "one statement per Stmt");

}  // namespace

std::span<const rl_statement_t> statements() noexcept { return kStatements; }

const rl_statement_t &statement(Stmt s) noexcept { return kStatements[static_cast<int>(s)]; }

}  // namespace relyloop::core::db
