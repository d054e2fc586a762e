#pragma once

// The rows one PR pipeline run reads (docs/worker.md, "Pipeline steps" 2) and the one it writes
// (step 12), over the runner's blocking connection. PQexecParams only: every
// value travels as a parameter.

#include <libpq-fe.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/raii.hpp"
#include "pipeline/pr_text.hpp"

namespace relyloop::worker {

struct ProposalRow {
    std::string id;
    std::optional<std::string> study_id;
    std::string cluster_id;
    std::string template_id;
    std::string status;
    Json config_diff;
    Json metric_delta;  // empty when NULL
};

struct ClusterRow {
    std::string id;
    std::string name;
    std::optional<std::string> config_repo_id;
    std::optional<std::string> config_path;
};

struct RepoRow {
    std::string id;
    std::string name;
    std::string repo_url;
    std::string pr_base_branch;
    std::string auth_ref;
};

struct TemplateRow {
    std::string id;
    std::string name;
    long long version = 1;
    Json declared_params;
};

struct StudyRows {
    std::string name;
    long long trial_count = 0;
    std::optional<long long> best_trial_number;
    std::optional<double> best_metric;
    std::vector<TrialRow> top_trials;                        // ≤ 10 complete, best first
    std::vector<std::pair<std::string, double>> importance;  // numeric entries only
    size_t importance_entries = 0;                           // all entries, numeric or not
    std::vector<std::string> followups;
    Json confidence;  // docs/analytics.md; empty when null
};

// Errors: Error(kInternalError, "database: ...").
class PipelineDb {
  public:
    explicit PipelineDb(PGconn *conn) : conn_(conn) {}

    [[nodiscard]] std::optional<ProposalRow> proposal(std::string_view id);
    [[nodiscard]] std::optional<ClusterRow> cluster(std::string_view id);  // not soft-deleted
    [[nodiscard]] std::optional<RepoRow> config_repo(std::string_view id);
    [[nodiscard]] std::optional<TemplateRow> query_template(std::string_view id);
    [[nodiscard]] std::optional<StudyRows> study(std::string_view id);

    // Pipeline step 12 (docs/worker.md); true when the row was still pending and is now pr_opened.
    [[nodiscard]] bool mark_pr_opened(std::string_view proposal_id, std::string_view pr_url);

  private:
    // db::exec, a failure as INTERNAL_ERROR "database: ..." (redacted).
    PgResult exec(const char *sql, std::initializer_list<std::optional<std::string_view>> params);

    PGconn *conn_;
};

}  // namespace relyloop::worker
