#include "common/schema.hpp"

namespace relyloop::schema {

namespace {

// Names, types, CHECK values and unique constraints follow RelyLoop's schema
// so that the module can serve an existing RelyLoop database.
constexpr const char kInitial[] = R"SQL(
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

CREATE TABLE IF NOT EXISTS pr_jobs (
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
-- The dedup key: at most one live job per proposal.
CREATE UNIQUE INDEX IF NOT EXISTS pr_jobs_live_proposal_idx
    ON pr_jobs (proposal_id) WHERE state IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS pr_jobs_claim_idx ON pr_jobs (run_after) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS pr_jobs_lease_idx ON pr_jobs (lease_until) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS pr_jobs_proposal_idx ON pr_jobs (proposal_id, created_at DESC);
)SQL";

constexpr Migration kMigrations[] = {
    {1, "initial schema", kInitial},
};

}  // namespace

std::span<const Migration> migrations() { return kMigrations; }

}  // namespace relyloop::schema
