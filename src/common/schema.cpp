#include "common/schema.hpp"

#include <array>
#include <cstddef>
#include <string>

namespace relyloop::schema {

namespace {

// Joins string literals at compile time (one NUL, at the end).
template <size_t... N>
constexpr std::array<char, (N + ...) - sizeof...(N) + 1> join(const char (&...parts)[N]) {
    std::array<char, (N + ...) - sizeof...(N) + 1> out{};
    size_t at = 0;
    auto append = [&](const char *p, size_t n) {
        for (size_t i = 0; i + 1 < n; i++) out[at++] = p[i];
    };
    (append(parts, N), ...);
    return out;
}

// The pr_jobs table and its indexes, written once: step 1 (kInitial) and
// own_tables_sql() for an upstream database (kOwnTablesStep1) both use them.
constexpr const char kPrJobsTable[] = R"SQL(CREATE TABLE IF NOT EXISTS pr_jobs (
    id          VARCHAR(36)  PRIMARY KEY,
    proposal_id VARCHAR(36)  NOT NULL REFERENCES proposals (id) ON DELETE CASCADE,
    state       VARCHAR(16)  NOT NULL
                CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    attempts    INT          NOT NULL DEFAULT 0,
    lock_waits  INT          NOT NULL DEFAULT 0,
    run_after   TIMESTAMPTZ  NOT NULL DEFAULT now(),
    lease_until TIMESTAMPTZ,
    worker_id   VARCHAR(128),
    last_event  VARCHAR(64),
    last_error  TEXT,
    created_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ
);
)SQL";
constexpr const char kPrJobsIndexes[] =
    R"SQL(CREATE UNIQUE INDEX IF NOT EXISTS pr_jobs_live_proposal_idx
    ON pr_jobs (proposal_id) WHERE state IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS pr_jobs_claim_idx ON pr_jobs (run_after) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS pr_jobs_lease_idx ON pr_jobs (lease_until) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS pr_jobs_proposal_idx ON pr_jobs (proposal_id, created_at DESC);
)SQL";

// Names, types, CHECK values and unique constraints follow RelyLoop's schema
// so that the module can serve an existing RelyLoop database.
constexpr const char kInitialHead[] = R"SQL(
CREATE TABLE IF NOT EXISTS config_repos (
    id                         VARCHAR(36)  PRIMARY KEY,
    name                       VARCHAR(128) NOT NULL UNIQUE,
    provider                   VARCHAR(32)  NOT NULL CHECK (provider IN ('github')),
    repo_url                   VARCHAR(512) NOT NULL,
    default_branch             VARCHAR(128) NOT NULL DEFAULT 'main',
    pr_base_branch             VARCHAR(128) NOT NULL DEFAULT 'main',
    auth_ref                   VARCHAR(128) NOT NULL,
    webhook_secret_ref         VARCHAR(128),
    webhook_registration_error TEXT,
    created_at                 TIMESTAMPTZ  NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS config_repos_created_idx ON config_repos (created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS clusters (
    id              VARCHAR(36)  PRIMARY KEY,
    name            VARCHAR(128) NOT NULL UNIQUE,
    engine_type     VARCHAR(32)  NOT NULL CHECK (engine_type IN ('elasticsearch', 'opensearch')),
    environment     VARCHAR(16)  NOT NULL CHECK (environment IN ('prod', 'staging', 'dev')),
    base_url        VARCHAR(512) NOT NULL,
    auth_kind       VARCHAR(32)  NOT NULL CHECK (auth_kind IN ('es_apikey', 'es_basic',
                                                'opensearch_basic', 'opensearch_sigv4')),
    credentials_ref VARCHAR(128) NOT NULL,
    config_repo_id  VARCHAR(36)  REFERENCES config_repos (id) ON DELETE SET NULL,
    config_path     VARCHAR(512),
    engine_config   JSONB,
    notes           TEXT,
    created_at      TIMESTAMPTZ  NOT NULL DEFAULT now(),
    deleted_at      TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS clusters_created_idx ON clusters (created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS query_templates (
    id              VARCHAR(36)  PRIMARY KEY,
    name            VARCHAR(128) NOT NULL,
    engine_type     VARCHAR(32)  NOT NULL CHECK (engine_type IN ('elasticsearch', 'opensearch')),
    body            TEXT         NOT NULL,
    declared_params JSONB        NOT NULL DEFAULT '{}'::jsonb,
    version         INT          NOT NULL DEFAULT 1,
    parent_id       VARCHAR(36)  REFERENCES query_templates (id) ON DELETE SET NULL,
    created_at      TIMESTAMPTZ  NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);
CREATE INDEX IF NOT EXISTS query_templates_created_idx
    ON query_templates (created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS query_sets (
    id          VARCHAR(36)  PRIMARY KEY,
    name        VARCHAR(256) NOT NULL UNIQUE,
    description TEXT,
    cluster_id  VARCHAR(36)  NOT NULL REFERENCES clusters (id),
    created_at  TIMESTAMPTZ  NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS judgment_lists (
    id                  VARCHAR(36)  PRIMARY KEY,
    name                VARCHAR(256) NOT NULL UNIQUE,
    description         TEXT,
    query_set_id        VARCHAR(36)  NOT NULL REFERENCES query_sets (id),
    cluster_id          VARCHAR(36)  NOT NULL REFERENCES clusters (id),
    target              VARCHAR(256) NOT NULL,
    current_template_id VARCHAR(36)  REFERENCES query_templates (id),
    rubric              TEXT,
    status              VARCHAR(16)  NOT NULL
                        CHECK (status IN ('generating', 'complete', 'failed')),
    failed_reason       TEXT,
    calibration         JSONB,
    created_at          TIMESTAMPTZ  NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS studies (
    id                VARCHAR(36)  PRIMARY KEY,
    name              VARCHAR(256) NOT NULL,
    cluster_id        VARCHAR(36)  NOT NULL REFERENCES clusters (id),
    target            VARCHAR(256) NOT NULL,
    template_id       VARCHAR(36)  NOT NULL REFERENCES query_templates (id),
    query_set_id      VARCHAR(36)  NOT NULL REFERENCES query_sets (id),
    judgment_list_id  VARCHAR(36)  NOT NULL REFERENCES judgment_lists (id),
    search_space      JSONB        NOT NULL DEFAULT '{}'::jsonb,
    objective         JSONB        NOT NULL DEFAULT '{}'::jsonb,
    config            JSONB        NOT NULL DEFAULT '{}'::jsonb,
    status            VARCHAR(16)  NOT NULL
                      CHECK (status IN ('queued', 'running', 'completed', 'cancelled', 'failed')),
    failed_reason     TEXT,
    optuna_study_name VARCHAR(256) NOT NULL UNIQUE,
    parent_study_id   VARCHAR(36)  REFERENCES studies (id),
    baseline_metric   DOUBLE PRECISION,
    best_metric       DOUBLE PRECISION,
    best_trial_id     VARCHAR(36),
    created_at        TIMESTAMPTZ  NOT NULL DEFAULT now(),
    started_at        TIMESTAMPTZ,
    completed_at      TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS studies_created_idx ON studies (created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS trials (
    id                  VARCHAR(36) PRIMARY KEY,
    study_id            VARCHAR(36) NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    optuna_trial_number INT         NOT NULL,
    params              JSONB       NOT NULL DEFAULT '{}'::jsonb,
    primary_metric      DOUBLE PRECISION,
    metrics             JSONB       NOT NULL DEFAULT '{}'::jsonb,
    duration_ms         INT,
    status              VARCHAR(16) NOT NULL CHECK (status IN ('complete', 'failed', 'pruned')),
    error               TEXT,
    started_at          TIMESTAMPTZ,
    ended_at            TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS trials_study_metric_idx
    ON trials (study_id, primary_metric DESC NULLS LAST);

CREATE TABLE IF NOT EXISTS digests (
    id                   VARCHAR(36)  PRIMARY KEY,
    study_id             VARCHAR(36)  NOT NULL UNIQUE REFERENCES studies (id) ON DELETE CASCADE,
    narrative            TEXT         NOT NULL,
    parameter_importance JSONB        NOT NULL DEFAULT '{}'::jsonb,
    recommended_config   JSONB        NOT NULL DEFAULT '{}'::jsonb,
    suggested_followups  TEXT[]       NOT NULL DEFAULT '{}',
    generated_by         VARCHAR(128) NOT NULL,
    generated_at         TIMESTAMPTZ  NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS proposals (
    id              VARCHAR(36) PRIMARY KEY,
    study_id        VARCHAR(36) REFERENCES studies (id),
    study_trial_id  VARCHAR(36) REFERENCES trials (id),
    cluster_id      VARCHAR(36) NOT NULL REFERENCES clusters (id),
    template_id     VARCHAR(36) NOT NULL REFERENCES query_templates (id),
    config_diff     JSONB       NOT NULL,
    metric_delta    JSONB,
    status          VARCHAR(16) NOT NULL
                    CHECK (status IN ('pending', 'pr_opened', 'pr_merged', 'rejected')),
    pr_url          VARCHAR(512),
    pr_state        VARCHAR(16) CHECK (pr_state IN ('open', 'closed', 'merged')),
    pr_merged_at    TIMESTAMPTZ,
    pr_open_error   TEXT,
    rejected_reason TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS proposals_created_idx ON proposals (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS proposals_status_idx ON proposals (status, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS proposals_cluster_idx ON proposals (cluster_id, created_at DESC);
CREATE INDEX IF NOT EXISTS proposals_study_idx ON proposals (study_id);

)SQL";
constexpr auto kInitial =
    join(kInitialHead, kPrJobsTable, "-- The dedup key: at most one live job per proposal.\n",
         kPrJobsIndexes);

// Step 2 (docs/upstream-schema.md): an own database converges on upstream
// RelyLoop's shape at alembic revision 0023, in one transaction, data kept.
// Afterwards a catalog dump of the shared tables equals the upstream one
// except for the own indexes (t/migrate_upstream.t checks it).
constexpr const char kConverge0023[] = R"SQL(
-- 1. Types (binary-compatible: no table rewrite).
ALTER TABLE config_repos
    ALTER COLUMN name TYPE VARCHAR,
    ALTER COLUMN provider TYPE VARCHAR,
    ALTER COLUMN repo_url TYPE VARCHAR,
    ALTER COLUMN default_branch TYPE VARCHAR,
    ALTER COLUMN pr_base_branch TYPE VARCHAR,
    ALTER COLUMN auth_ref TYPE VARCHAR,
    ALTER COLUMN webhook_secret_ref TYPE VARCHAR,
    ALTER COLUMN webhook_registration_error TYPE VARCHAR;
ALTER TABLE clusters
    ALTER COLUMN name TYPE VARCHAR,
    ALTER COLUMN engine_type TYPE VARCHAR,
    ALTER COLUMN environment TYPE VARCHAR,
    ALTER COLUMN base_url TYPE VARCHAR,
    ALTER COLUMN auth_kind TYPE VARCHAR,
    ALTER COLUMN credentials_ref TYPE VARCHAR,
    ALTER COLUMN config_path TYPE VARCHAR,
    ALTER COLUMN notes TYPE VARCHAR;
ALTER TABLE query_templates
    ALTER COLUMN name TYPE TEXT,
    ALTER COLUMN engine_type TYPE TEXT;
ALTER TABLE query_sets ALTER COLUMN name TYPE TEXT;
ALTER TABLE judgment_lists
    ALTER COLUMN name TYPE TEXT,
    ALTER COLUMN target TYPE TEXT,
    ALTER COLUMN status TYPE TEXT;
ALTER TABLE studies
    ALTER COLUMN name TYPE TEXT,
    ALTER COLUMN target TYPE TEXT,
    ALTER COLUMN status TYPE TEXT,
    ALTER COLUMN optuna_study_name TYPE TEXT;
ALTER TABLE trials ALTER COLUMN status TYPE TEXT;
ALTER TABLE digests ALTER COLUMN generated_by TYPE TEXT;
ALTER TABLE proposals
    ALTER COLUMN status TYPE TEXT,
    ALTER COLUMN pr_url TYPE TEXT,
    ALTER COLUMN pr_state TYPE TEXT;

-- 2. Defaults upstream does not have.
ALTER TABLE query_templates ALTER COLUMN declared_params DROP DEFAULT;
ALTER TABLE studies
    ALTER COLUMN search_space DROP DEFAULT,
    ALTER COLUMN objective DROP DEFAULT,
    ALTER COLUMN config DROP DEFAULT;
ALTER TABLE trials
    ALTER COLUMN params DROP DEFAULT,
    ALTER COLUMN metrics DROP DEFAULT;
ALTER TABLE digests
    ALTER COLUMN parameter_importance DROP DEFAULT,
    ALTER COLUMN recommended_config DROP DEFAULT;

-- 3. Constraints, re-created after the type changes with upstream's text.
ALTER TABLE query_templates DROP CONSTRAINT query_templates_engine_type_check;
ALTER TABLE config_repos DROP CONSTRAINT config_repos_provider_check;
ALTER TABLE config_repos ADD CONSTRAINT config_repos_provider_check
    CHECK (provider IN ('github'));
ALTER TABLE clusters DROP CONSTRAINT clusters_engine_type_check;
ALTER TABLE clusters ADD CONSTRAINT clusters_engine_type_check
    CHECK (engine_type IN ('elasticsearch', 'opensearch', 'solr'));
ALTER TABLE clusters DROP CONSTRAINT clusters_environment_check;
ALTER TABLE clusters ADD CONSTRAINT clusters_environment_check
    CHECK (environment IN ('prod', 'staging', 'dev'));
ALTER TABLE clusters DROP CONSTRAINT clusters_auth_kind_check;
ALTER TABLE clusters ADD CONSTRAINT clusters_auth_kind_check
    CHECK (auth_kind IN ('es_apikey', 'es_basic', 'opensearch_basic', 'opensearch_sigv4',
                         'solr_basic', 'solr_apikey'));
ALTER TABLE judgment_lists DROP CONSTRAINT judgment_lists_status_check;
ALTER TABLE judgment_lists ADD CONSTRAINT judgment_lists_status_check
    CHECK (status IN ('generating', 'complete', 'failed'));
ALTER TABLE studies DROP CONSTRAINT studies_status_check;
ALTER TABLE studies ADD CONSTRAINT studies_status_check
    CHECK (status IN ('queued', 'running', 'completed', 'cancelled', 'failed'));
ALTER TABLE trials DROP CONSTRAINT trials_status_check;
ALTER TABLE trials ADD CONSTRAINT trials_status_check
    CHECK (status IN ('complete', 'failed', 'pruned'));
ALTER TABLE proposals DROP CONSTRAINT proposals_status_check;
ALTER TABLE proposals ADD CONSTRAINT proposals_status_check
    CHECK (status IN ('pending', 'pr_opened', 'pr_merged', 'rejected', 'superseded'));
ALTER TABLE proposals DROP CONSTRAINT proposals_pr_state_check;
ALTER TABLE proposals ADD CONSTRAINT proposals_pr_state_check
    CHECK (pr_state IS NULL OR pr_state IN ('open', 'closed', 'merged'));
ALTER TABLE clusters DROP CONSTRAINT clusters_config_repo_id_fkey;
ALTER TABLE clusters ADD CONSTRAINT clusters_config_repo_id_fkey
    FOREIGN KEY (config_repo_id) REFERENCES config_repos (id);
ALTER TABLE query_templates DROP CONSTRAINT query_templates_parent_id_fkey;
ALTER TABLE query_templates ADD CONSTRAINT query_templates_parent_id_fkey
    FOREIGN KEY (parent_id) REFERENCES query_templates (id);
ALTER TABLE digests DROP CONSTRAINT digests_study_id_fkey;
ALTER TABLE digests ADD CONSTRAINT digests_study_id_fkey
    FOREIGN KEY (study_id) REFERENCES studies (id);

-- 4. rubric is NOT NULL upstream.
UPDATE judgment_lists SET rubric = '' WHERE rubric IS NULL;
ALTER TABLE judgment_lists ALTER COLUMN rubric SET NOT NULL;

-- 5. Columns upstream added, in its revision order (0008 .. 0021).
ALTER TABLE clusters ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('english', coalesce(name, '') || ' ' || coalesce(base_url, ''))) STORED;
CREATE INDEX clusters_search_vector_idx ON clusters USING GIN (search_vector);
ALTER TABLE studies ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('english', coalesce(name, '') || ' ' || coalesce(target, ''))) STORED;
CREATE INDEX studies_search_vector_idx ON studies USING GIN (search_vector);
ALTER TABLE query_sets ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('english', coalesce(name, ''))) STORED;
CREATE INDEX query_sets_search_vector_idx ON query_sets USING GIN (search_vector);
ALTER TABLE query_templates ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('english', coalesce(name, ''))) STORED;
CREATE INDEX query_templates_search_vector_idx ON query_templates USING GIN (search_vector);
ALTER TABLE judgment_lists ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('english', coalesce(name, '') || ' ' || coalesce(target, ''))) STORED;
CREATE INDEX judgment_lists_search_vector_idx ON judgment_lists USING GIN (search_vector);
ALTER TABLE clusters ADD COLUMN target_filter VARCHAR(256);
ALTER TABLE trials ADD COLUMN per_query_metrics JSONB;
ALTER TABLE trials ADD CONSTRAINT trials_per_query_metrics_object_check
    CHECK (per_query_metrics IS NULL OR jsonb_typeof(per_query_metrics) = 'object');
ALTER TABLE config_repos ADD COLUMN last_merged_proposal_id VARCHAR(36);
ALTER TABLE config_repos ADD CONSTRAINT config_repos_last_merged_proposal_id_fkey
    FOREIGN KEY (last_merged_proposal_id) REFERENCES proposals (id) ON DELETE SET NULL;
CREATE INDEX config_repos_last_merged_proposal_id_idx ON config_repos (last_merged_proposal_id)
    WHERE last_merged_proposal_id IS NOT NULL;
UPDATE config_repos cr SET last_merged_proposal_id = sub.proposal_id
FROM (SELECT DISTINCT ON (c.config_repo_id) c.config_repo_id, p.id AS proposal_id
      FROM proposals p JOIN clusters c ON c.id = p.cluster_id
      WHERE p.pr_state = 'merged' AND p.pr_merged_at IS NOT NULL AND c.config_repo_id IS NOT NULL
      ORDER BY c.config_repo_id, p.pr_merged_at DESC, p.id DESC) sub
WHERE cr.id = sub.config_repo_id;
ALTER TABLE proposals ADD COLUMN last_polled_at TIMESTAMPTZ;
ALTER TABLE studies ADD COLUMN parent_proposal_id VARCHAR(36);
ALTER TABLE studies ADD CONSTRAINT studies_parent_proposal_id_fkey
    FOREIGN KEY (parent_proposal_id) REFERENCES proposals (id);
ALTER TABLE studies ADD COLUMN parent_proposal_followup_index INTEGER;
CREATE INDEX ix_studies_parent_proposal_id ON studies (parent_proposal_id)
    WHERE parent_proposal_id IS NOT NULL;
ALTER TABLE studies ADD CONSTRAINT studies_parent_proposal_pair_check
    CHECK ((parent_proposal_id IS NULL AND parent_proposal_followup_index IS NULL)
        OR (parent_proposal_id IS NOT NULL AND parent_proposal_followup_index IS NOT NULL
            AND parent_proposal_followup_index >= 0));
-- Deleting a proposal detaches the studies it started (both lineage columns).
CREATE OR REPLACE FUNCTION fn_clear_studies_parent_proposal_on_proposal_delete()
RETURNS TRIGGER AS $$
BEGIN
    UPDATE studies SET parent_proposal_id = NULL, parent_proposal_followup_index = NULL
     WHERE parent_proposal_id = OLD.id;
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER trg_clear_studies_parent_proposal_on_proposal_delete
    BEFORE DELETE ON proposals
    FOR EACH ROW EXECUTE FUNCTION fn_clear_studies_parent_proposal_on_proposal_delete();
ALTER TABLE studies ADD COLUMN baseline_trial_id VARCHAR(36);
ALTER TABLE trials ADD COLUMN is_baseline BOOLEAN NOT NULL DEFAULT FALSE;
CREATE UNIQUE INDEX uq_trials_study_baseline_complete ON trials (study_id)
    WHERE is_baseline = TRUE AND status = 'complete';
ALTER TABLE judgment_lists ADD COLUMN generation_params JSONB;

-- 6. suggested_followups TEXT[] -> JSONB: each string s becomes
--    {"kind":"text","rationale":s,"search_space":null}, NULL becomes [].
CREATE FUNCTION pg_temp.relyloop_followups_jsonb(arr TEXT[]) RETURNS JSONB AS $$
DECLARE
    out  JSONB := '[]'::jsonb;
    item TEXT;
BEGIN
    IF arr IS NULL THEN
        RETURN '[]'::jsonb;
    END IF;
    FOREACH item IN ARRAY arr LOOP
        out := out || jsonb_build_array(jsonb_build_object(
            'kind', 'text', 'rationale', item, 'search_space', NULL));
    END LOOP;
    RETURN out;
END;
$$ LANGUAGE plpgsql IMMUTABLE;
ALTER TABLE digests ALTER COLUMN suggested_followups DROP DEFAULT;
ALTER TABLE digests ALTER COLUMN suggested_followups TYPE JSONB
    USING pg_temp.relyloop_followups_jsonb(suggested_followups);
ALTER TABLE digests ALTER COLUMN suggested_followups SET DEFAULT '[]'::jsonb;
DROP FUNCTION pg_temp.relyloop_followups_jsonb(TEXT[]);

-- 7. The table and index step 1 lacked; upstream's name for the trial index.
CREATE TABLE queries (
    id               VARCHAR(36) NOT NULL PRIMARY KEY,
    query_set_id     VARCHAR(36) NOT NULL REFERENCES query_sets (id) ON DELETE CASCADE,
    query_text       TEXT        NOT NULL,
    reference_answer TEXT,
    metadata         JSONB
);
CREATE INDEX proposals_pr_url_idx ON proposals (pr_url) WHERE pr_url IS NOT NULL;
ALTER INDEX trials_study_metric_idx RENAME TO trials_study_metric;
)SQL";

// Step 3: the PR lifecycle's own tables (docs/webhooks.md): the replay cache,
// the webhook registration jobs and the reconciler's tick slots.
constexpr const char kPrLifecycle[] = R"SQL(
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    body_sha256    CHAR(64)    PRIMARY KEY,
    delivery_id    VARCHAR(64),
    event          VARCHAR(64) NOT NULL,
    action         VARCHAR(16) NOT NULL
                   CHECK (action IN ('applied', 'noop', 'unknown_pr', 'ping')),
    proposal_id    VARCHAR(36),
    config_repo_id VARCHAR(36),
    received_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at     TIMESTAMPTZ NOT NULL
);
-- The second replay key: a delivery id seen before (docs/webhooks.md).
CREATE UNIQUE INDEX IF NOT EXISTS webhook_deliveries_delivery_id_idx
    ON webhook_deliveries (delivery_id) WHERE delivery_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS webhook_deliveries_expires_idx ON webhook_deliveries (expires_at);

CREATE TABLE IF NOT EXISTS webhook_jobs (
    id             VARCHAR(36)  PRIMARY KEY,
    config_repo_id VARCHAR(36)  NOT NULL REFERENCES config_repos (id) ON DELETE CASCADE,
    state          VARCHAR(16)  NOT NULL
                   CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    attempts       INT          NOT NULL DEFAULT 0,
    run_after      TIMESTAMPTZ  NOT NULL DEFAULT now(),
    lease_until    TIMESTAMPTZ,
    worker_id      VARCHAR(128),
    last_event     VARCHAR(64),
    last_error     TEXT,
    created_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    started_at     TIMESTAMPTZ,
    finished_at    TIMESTAMPTZ
);
-- The dedup key: at most one live registration job per config repo.
CREATE UNIQUE INDEX IF NOT EXISTS webhook_jobs_live_repo_idx
    ON webhook_jobs (config_repo_id) WHERE state IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS webhook_jobs_claim_idx ON webhook_jobs (run_after)
    WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS webhook_jobs_lease_idx ON webhook_jobs (lease_until)
    WHERE state = 'running';

CREATE TABLE IF NOT EXISTS worker_ticks (
    name             VARCHAR(64) PRIMARY KEY,
    last_slot        BIGINT      NOT NULL DEFAULT 0,
    last_started_at  TIMESTAMPTZ,
    last_finished_at TIMESTAMPTZ,
    last_summary     JSONB
);
INSERT INTO worker_ticks (name, last_slot) VALUES ('reconcile_pr_state', 0)
    ON CONFLICT (name) DO NOTHING;

-- The webhook's transaction (docs/webhooks.md): one call records the delivery
-- and applies it. PL/pgSQL runs each statement with a fresh READ COMMITTED
-- snapshot, which the last-merged pointer rule needs: the pointed-to
-- proposal's pr_merged_at is read by a separate statement after the
-- config_repos row lock was granted.
CREATE OR REPLACE FUNCTION relyloop_set_last_merged(p_repo VARCHAR, p_proposal VARCHAR,
                                                    p_merged_at TIMESTAMPTZ)
RETURNS JSONB LANGUAGE plpgsql AS $fn$
DECLARE
    v_prev    VARCHAR;
    v_prev_at TIMESTAMPTZ;
    v_found   BOOLEAN;
BEGIN
    SELECT last_merged_proposal_id INTO v_prev FROM config_repos WHERE id = p_repo FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT pr_merged_at INTO v_prev_at FROM proposals WHERE id = v_prev;
    v_found := FOUND;
    IF v_prev IS NULL OR NOT v_found OR v_prev_at IS NULL OR p_merged_at > v_prev_at THEN
        UPDATE config_repos SET last_merged_proposal_id = p_proposal WHERE id = p_repo;
        RETURN jsonb_build_object('updated', true, 'config_repo_id', p_repo,
            'previous_proposal_id', v_prev, 'new_proposal_id', p_proposal,
            'pr_merged_at', p_merged_at);
    END IF;
    RETURN jsonb_build_object('updated', false, 'config_repo_id', p_repo,
        'previous_proposal_id', v_prev, 'new_proposal_id', p_proposal,
        'pr_merged_at', p_merged_at);
END;
$fn$;

-- p_kind: ping | merged | closed | reopened | noop. Returns one row:
-- replayed, stale, action, proposal_id, pointer log entries (JSONB array).
CREATE OR REPLACE FUNCTION relyloop_webhook_apply(
    p_sha TEXT, p_delivery TEXT, p_event TEXT, p_kind TEXT, p_html_url TEXT,
    p_merged_at TIMESTAMPTZ, p_updated_at TIMESTAMPTZ, p_window_s BIGINT, p_repo TEXT)
RETURNS TABLE (replayed BOOLEAN, stale BOOLEAN, action TEXT, proposal_id TEXT, pointers JSONB)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_action TEXT;
    v_stale  BOOLEAN := false;
    v_pid    TEXT;
    v_n      INT;
    v_ptrs   JSONB := '[]'::jsonb;
    v_r      RECORD;
    v_log    JSONB;
BEGIN
    IF p_kind IN ('merged', 'closed', 'reopened') THEN
        SELECT p.id INTO v_pid FROM proposals p WHERE p.pr_url = p_html_url
         ORDER BY p.created_at, p.id LIMIT 1;
        v_action := CASE WHEN v_pid IS NULL THEN 'unknown_pr' ELSE 'applied' END;
        IF p_updated_at IS NOT NULL
           AND p_updated_at < now() - make_interval(secs => p_window_s) THEN
            v_stale := true;
            v_action := 'noop';
        END IF;
    ELSIF p_kind = 'ping' THEN
        v_action := 'ping';
    ELSE
        v_action := 'noop';
        IF p_event = 'pull_request' AND p_updated_at IS NOT NULL
           AND p_updated_at < now() - make_interval(secs => p_window_s) THEN
            v_stale := true;
        END IF;
    END IF;
    INSERT INTO webhook_deliveries AS d (body_sha256, delivery_id, event, action, proposal_id,
                                         config_repo_id, expires_at)
    VALUES (p_sha, p_delivery, left(p_event, 64), v_action, v_pid, p_repo,
            now() + make_interval(secs => p_window_s) + interval '1 day')
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    IF v_n = 0 THEN
        RETURN QUERY SELECT true, false, d.action::text, d.proposal_id::text, '[]'::jsonb
          FROM webhook_deliveries d
         WHERE d.body_sha256 = p_sha OR (p_delivery IS NOT NULL AND d.delivery_id = p_delivery)
         ORDER BY (d.body_sha256 = p_sha) DESC LIMIT 1;
        RETURN;
    END IF;
    IF v_stale OR v_pid IS NULL THEN
        RETURN QUERY SELECT false, v_stale, v_action, v_pid, v_ptrs;
        RETURN;
    END IF;
    IF p_kind = 'merged' THEN
        FOR v_r IN
            UPDATE proposals p SET status = 'pr_merged', pr_state = 'merged',
                   pr_merged_at = p_merged_at
             WHERE p.pr_url = p_html_url AND p.status = 'pr_opened'
               AND p.pr_state IN ('open', 'closed')
            RETURNING p.id, p.cluster_id
        LOOP
            FOR v_log IN
                SELECT relyloop_set_last_merged(c.config_repo_id, v_r.id, p_merged_at)
                  FROM clusters c WHERE c.id = v_r.cluster_id AND c.config_repo_id IS NOT NULL
            LOOP
                IF v_log IS NOT NULL THEN
                    v_ptrs := v_ptrs || jsonb_build_array(v_log);
                END IF;
            END LOOP;
        END LOOP;
    ELSIF p_kind = 'closed' THEN
        UPDATE proposals p SET pr_state = 'closed'
         WHERE p.pr_url = p_html_url AND p.status = 'pr_opened' AND p.pr_state = 'open';
    ELSIF p_kind = 'reopened' THEN
        UPDATE proposals p SET pr_state = 'open'
         WHERE p.pr_url = p_html_url AND p.status = 'pr_opened' AND p.pr_state = 'closed';
    END IF;
    RETURN QUERY SELECT false, false, v_action, v_pid, v_ptrs;
END;
$fn$;
)SQL";

// The own tables again, for an upstream database (IF NOT EXISTS throughout):
// step 1's own tables here, then step 3 (kPrLifecycle) as it is.
constexpr const char kOwnTablesHead[] = R"SQL(
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INT         PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
)SQL";
constexpr auto kOwnTablesStep1 = join(kOwnTablesHead, kPrJobsTable, kPrJobsIndexes);

constexpr Migration kMigrations[] = {
    {1, "initial schema", kInitial.data()},
    {2, "converge with upstream 0023", kConverge0023},
    {3, "pr lifecycle tables", kPrLifecycle},
};

}  // namespace

std::span<const Migration> migrations() { return kMigrations; }

const char *own_tables_sql() {
    static const std::string sql = std::string(kOwnTablesStep1.data()) + kPrLifecycle;
    return sql.c_str();
}

}  // namespace relyloop::schema
