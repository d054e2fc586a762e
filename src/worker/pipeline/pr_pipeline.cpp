// The PR pipeline (docs/worker.md, "Pipeline steps" 2 and 4–12; the runner did 1 and 3).
#include "pipeline/pr_pipeline.hpp"

#include <fcntl.h>
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <optional>
#include <string>

#include "common/redact.hpp"
#include "common/secret.hpp"
#include "common/strings.hpp"
#include "common/validate.hpp"
#include "pipeline/cancel.hpp"
#include "pipeline/chart.hpp"
#include "pipeline/git_ops.hpp"
#include "pipeline/github_client.hpp"
#include "pipeline/normalizer_snippets.hpp"
#include "pipeline/params_edit.hpp"
#include "pipeline/pipeline_db.hpp"
#include "pipeline/pr_text.hpp"

namespace relyloop::worker {

namespace {

// One run's identity for every event it logs, and where its time went
// ("loading=4,cloning=52,..." in pr_open_complete's steps_ms).
struct RunIds {
    std::string job_id;
    std::string proposal_id;
    std::string study_id;
    std::string config_repo_id;
    std::string branch;
    std::string steps_ms;
    std::string step;
    std::chrono::steady_clock::time_point step_start;

    void enter(const JobContext &ctx, const char *next) {
        auto now = std::chrono::steady_clock::now();
        if (!step.empty()) {
            auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - step_start);
            steps_ms += (steps_ms.empty() ? "" : ",") + step + "=" + std::to_string(ms.count());
        }
        step = next;
        step_start = now;
        if (*next != '\0') ctx.report(next);
    }
};

struct DryRun;

class PrPipeline final : public Pipeline {
  public:
    PrPipeline(const Settings &settings, EventLog &log) : settings_(settings), log_(log) {
        git::configure_libgit2(settings_.ca_file);
    }
    ~PrPipeline() override { release_chart_caches(); }

    PipelineResult run(const JobContext &ctx) noexcept override;

  private:
    PipelineResult run_steps(const JobContext &ctx, RunIds &ids, Secret &pat);
    PipelineResult record_dry_run(const JobContext &ctx, const RunIds &ids, const DryRun &d);
    EventLog &log_for(const JobContext &ctx) const { return ctx.log != nullptr ? *ctx.log : log_; }

    // Declared first: libgit2 and libcurl are initialised (both reference
    // counted) on the constructing thread, before any job thread exists, and
    // shut down after everything else.
    git::Libgit2Runtime runtime_;
    github::CurlGlobal curl_;
    Settings settings_;
    EventLog &log_;
};

void check_cancel(const JobContext &ctx) {
    if (ctx.cancelled()) throw Cancelled();
}

std::string web_base(std::string url) { return std::string(strip_trailing_slashes(url)); }

PipelineResult failed(ErrorCode code, const std::string &message, const Secret &pat,
                      const RunIds &ids) {
    PipelineResult r;
    r.outcome = PipelineOutcome::kFailed;
    r.code = code;
    r.message = redact(message, pat.reveal());  // the runner caps the stored text
    r.branch = ids.branch;
    return r;
}

// What a dry run would have sent (docs/worker.md, "Dry run").
struct DryRun {
    std::string repository;  // owner/repo
    std::string clone;
    std::string base;
    std::string commit;  // "" when the branch already was on the remote
    bool branch_on_remote = false;
    std::string create_pull_url;
    std::string title;
    std::string body;
};

// <clone_root>/dry-run/<proposal_id>.json, written under a temporary name and
// renamed, mode 0600 in a 0700 directory (the record holds repository text).
std::string write_dry_run_file(const std::string &clone_root, const std::string &name,
                               const std::string &text) {
    std::string dir = clone_root + "/dry-run";
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        throw Error(ErrorCode::kInternalError,
                    "cannot create " + dir + ": " + std::strerror(errno));
    }
    // Path containment: an existing dry-run/ must be a real directory, not a
    // link that would send the record elsewhere.
    struct stat st {};
    if (lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        throw Error(ErrorCode::kInternalError, dir + " is not a directory");
    }
    std::string path = dir + "/" + name + ".json";
    std::string tmp = path + ".tmp";
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        throw Error(ErrorCode::kInternalError, "cannot write " + tmp + ": " + std::strerror(errno));
    }
    size_t off = 0;
    while (off < text.size()) {
        ssize_t n = write(fd, text.data() + off, text.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp.c_str());
            throw Error(ErrorCode::kInternalError, "cannot write " + tmp + ": " + std::strerror(e));
        }
        off += static_cast<size_t>(n);
    }
    if (close(fd) != 0 || rename(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        unlink(tmp.c_str());
        throw Error(ErrorCode::kInternalError, "cannot write " + path + ": " + std::strerror(e));
    }
    return path;
}

bool safe_file_name(const std::string &s) {
    if (s.empty() || s.size() > 64) return false;
    for (char c : s) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
    }
    return true;
}

PipelineResult PrPipeline::record_dry_run(const JobContext &ctx, const RunIds &ids,
                                          const DryRun &d) {
    std::string payload = github::create_pull_payload(d.title, ids.branch, d.base, d.body);
    Json rec(json_object());
    auto str = [&](const char *k, const std::string &v) {
        json_object_set_new(rec.get(), k, json_stringn(v.data(), v.size()));
    };
    str("proposal_id", ids.proposal_id);
    str("job_id", ids.job_id);
    str("config_repo_id", ids.config_repo_id);
    str("repository", d.repository);
    str("clone", d.clone);
    str("branch", ids.branch);
    str("base", d.base);
    if (d.commit.empty()) {
        json_object_set_new(rec.get(), "commit", json_null());
    } else {
        str("commit", d.commit);
    }
    json_object_set_new(rec.get(), "branch_on_remote", json_boolean(d.branch_on_remote));
    str("create_pull_url", d.create_pull_url);
    json_error_t err;
    json_object_set_new(rec.get(), "create_pull", json_loads(payload.c_str(), 0, &err));
    CString text(json_dumps(rec.get(), JSON_INDENT(2) | JSON_PRESERVE_ORDER));
    if (!text) throw std::bad_alloc();
    std::string name = safe_file_name(ids.proposal_id) ? ids.proposal_id
                       : safe_file_name(ids.job_id)    ? ids.job_id
                                                       : throw Error(ErrorCode::kInternalError,
                                                                     "no safe file name for the dry-run record");
    std::string file =
        write_dry_run_file(settings_.clone_root, name, std::string(text.get()) + "\n");

    log_for(ctx).info("pr_dry_run", {{"job_id", ids.job_id},
                                     {"proposal_id", ids.proposal_id},
                                     {"study_id", ids.study_id},
                                     {"config_repo_id", ids.config_repo_id},
                                     {"branch", ids.branch},
                                     {"commit", d.commit},
                                     {"file", file},
                                     {"title", d.title},
                                     {"body", d.body},
                                     {"message", "dry run: nothing pushed, no PR opened"}});
    PipelineResult r;
    r.outcome = PipelineOutcome::kDryRun;
    r.branch = ids.branch;
    return r;
}

PipelineResult PrPipeline::run(const JobContext &ctx) noexcept {
    auto t0 = std::chrono::steady_clock::now();
    RunIds ids;
    Secret pat;
    try {
        ids.job_id = ctx.job_id;
        ids.proposal_id = ctx.proposal_id;
        ids.config_repo_id = ctx.config_repo_id;
        PipelineResult r = run_steps(ctx, ids, pat);
        ids.enter(ctx, "");
        if (r.outcome == PipelineOutcome::kOpened) {
            auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - t0)
                          .count();
            log_for(ctx).info("pr_open_complete", {{"job_id", ids.job_id},
                                                   {"proposal_id", ids.proposal_id},
                                                   {"study_id", ids.study_id},
                                                   {"config_repo_id", ids.config_repo_id},
                                                   {"branch", ids.branch},
                                                   {"pr_url", r.pr_url},
                                                   {"duration_ms", static_cast<long long>(ms)},
                                                   {"steps_ms", ids.steps_ms}});
        }
        return r;
    } catch (const Cancelled &) {
        PipelineResult r;
        r.outcome = PipelineOutcome::kCancelled;
        r.branch = ids.branch;
        return r;
    } catch (const DbError &e) {
        // Only transient ones get here (PipelineDb): retried later.
        PipelineResult r =
            failed(ErrorCode::kInternalError, std::string("database: ") + e.what(), pat, ids);
        r.retry = true;
        return r;
    } catch (const github::ApiError &e) {
        return failed(ErrorCode::kGithubApiFailed, e.what(), pat, ids);
    } catch (const Error &e) {
        return failed(e.code(), e.what(), pat, ids);
    } catch (const std::exception &e) {
        return failed(ErrorCode::kInternalError, e.what(), pat, ids);
    } catch (...) {
        return failed(ErrorCode::kInternalError, "unexpected failure", pat, ids);
    }
}

PipelineResult PrPipeline::run_steps(const JobContext &ctx, RunIds &ids, Secret &pat) {
    EventLog &log = log_for(ctx);
    PipelineDb db(ctx.db);
    if (ctx.db == nullptr) {
        throw Error(ErrorCode::kInternalError, "no database connection");
    }

    // Step 2 (and the re-read of step 3, inside the lock the runner holds).
    ids.enter(ctx, "loading");
    std::optional<ProposalRow> proposal = db.proposal(ctx.proposal_id);
    if (!proposal || proposal->status != "pending") {
        log.info("pr_open_proposal_no_longer_pending",
                 {{"job_id", ids.job_id},
                  {"proposal_id", ids.proposal_id},
                  {"config_repo_id", ids.config_repo_id},
                  {"message", proposal ? "status is " + proposal->status
                                       : std::string("the proposal no longer exists")}});
        PipelineResult r;
        r.outcome = PipelineOutcome::kNotPending;
        return r;
    }
    const bool manual = !proposal->study_id.has_value();
    ids.study_id = proposal->study_id.value_or("");

    std::optional<ClusterRow> cluster = db.cluster(proposal->cluster_id);
    if (!cluster || !cluster->config_repo_id) {
        throw Error(ErrorCode::kClusterHasNoConfigRepo,
                    cluster ? "cluster '" + cluster->name + "' has no config repo"
                            : std::string("the proposal's cluster no longer exists"));
    }
    std::optional<RepoRow> repo = db.config_repo(*cluster->config_repo_id);
    if (!repo) {
        throw Error(
            ErrorCode::kClusterHasNoConfigRepo,
            "cluster '" + cluster->name + "' points at a config repo that no longer exists");
    }
    if (!ctx.config_repo_id.empty() && repo->id != ctx.config_repo_id) {
        throw Error(
            ErrorCode::kInternalError,
            "cluster '" + cluster->name +
                "' was bound to another config repo while the job waited; open the PR again");
    }
    ids.config_repo_id = repo->id;
    std::optional<TemplateRow> tmpl = db.query_template(proposal->template_id);
    if (!tmpl) {
        throw Error(ErrorCode::kInternalError, "the proposal's template no longer exists");
    }
    std::optional<StudyRows> study;
    if (!manual) {
        study = db.study(*proposal->study_id);
        if (!study) {
            throw Error(ErrorCode::kInternalError, "the proposal's study no longer exists");
        }
    }

    // Re-check what the API checked at enqueue time: the PAT (read fresh, so a
    // rotated token needs no restart) and the repo URL.
    SecretStatus st = check_secret_file(settings_.secrets_dir, repo->auth_ref, &pat);
    if (st != SecretStatus::kOk) {
        throw Error(ErrorCode::kGithubNotConfigured,
                    "the PAT file of auth_ref '" + repo->auth_ref +
                        "' is unusable: " + secret_status_text(st));
    }
    std::optional<RepoCoordinates> coords =
        parse_repo_url(repo->repo_url, settings_.github_web_url);
    if (!coords) {
        throw Error(ErrorCode::kUnsupportedProvider,
                    "repo_url '" + repo->repo_url + "' is not a " +
                        web_base(settings_.github_web_url) +
                        "/<owner>/<repo> URL (GitLab and Bitbucket are not supported)");
    }
    if (!valid_branch_name(repo->pr_base_branch)) {
        throw Error(ErrorCode::kCloneFailed,
                    "pr_base_branch '" + repo->pr_base_branch + "' is not a valid branch name");
    }
    if (!cluster->config_path) {
        throw Error(ErrorCode::kConfigPathInvalid,
                    "cluster '" + cluster->name + "' has no config_path");
    }
    if (!valid_config_path(*cluster->config_path)) {
        throw Error(ErrorCode::kConfigPathInvalid,
                    "config_path '" + *cluster->config_path + "' is not a safe relative path");
    }
    if (!valid_stored_template_name(tmpl->name)) {
        throw Error(ErrorCode::kConfigPathInvalid,
                    "template name '" + tmpl->name + "' cannot be used as a file name");
    }
    ids.branch = manual ? "relyloop/proposal-" + proposal->id : "relyloop/study-" + ids.study_id;
    if (!valid_branch_name(ids.branch)) {
        throw Error(ErrorCode::kInternalError, "branch name '" + ids.branch + "' is not valid");
    }

    PrText text;
    text.proposal_id = proposal->id;
    text.manual = manual;
    text.cluster_name = cluster->name;
    text.template_name = tmpl->name;
    text.template_version = tmpl->version;
    text.config_diff = Json(json_incref(proposal->config_diff.get()));
    text.metric_delta = Json(json_incref(proposal->metric_delta.get()));
    if (!manual) {
        text.study_id = ids.study_id;
        text.study_name = study->name;
        text.base_url = settings_.base_url;
        text.trial_count = study->trial_count;
        text.best_trial_number = study->best_trial_number;
        text.best_metric = study->best_metric;
        text.top_trials = std::move(study->top_trials);
        text.followups = study->followups;
        text.confidence = std::move(study->confidence);
        if (operator_section(text.config_diff.get()).unknown) {
            log.warn("pr_body_unknown_normalizer",
                     {{"job_id", ids.job_id}, {"proposal_id", ids.proposal_id}});
        }
    }
    const std::string chart_file = manual ? std::string() : chart_path(ids.study_id);
    // pr_text already applies the token patterns; the literal PAT goes too, in
    // case it turned up in stored text (a study name, a follow-up).
    auto clean = [&](const std::string &s) { return redact(s, pat.reveal()); };
    const git::Identity bot{settings_.git_author_name, settings_.git_author_email};

    // Step 4.
    check_cancel(ctx);
    ids.enter(ctx, "cloning");
    git::RepoSpec spec;
    spec.clone_root = settings_.clone_root;
    spec.repo_id = repo->id;
    spec.url =
        web_base(settings_.github_web_url) + "/" + coords->owner + "/" + coords->repo + ".git";
    spec.base_branch = repo->pr_base_branch;
    spec.branch = ids.branch;
    git::Workspace ws(spec, pat, ctx.cancel);
    if (!ws.reclone_reason().empty()) {
        log.warn("pr_open_clone_reset", {{"job_id", ids.job_id},
                                         {"proposal_id", ids.proposal_id},
                                         {"config_repo_id", ids.config_repo_id},
                                         {"message", ws.reclone_reason()}});
    }

    // Step 5.
    git::RemoteBranch remote = ws.remote_branch(proposal->id, chart_file);
    bool chart_committed = false;
    std::string commit;  // a dry run's local branch tip
    if (remote.exists && !remote.ours) {
        throw Error(ErrorCode::kBranchExists,
                    "branch '" + ids.branch +
                        "' already exists on the remote and was not made for "
                        "this proposal; delete or rename it, then open the PR again");
    }
    if (remote.exists) {
        chart_committed = remote.has_path;
        log.info("pr_open_resume", {{"job_id", ids.job_id},
                                    {"proposal_id", ids.proposal_id},
                                    {"study_id", ids.study_id},
                                    {"config_repo_id", ids.config_repo_id},
                                    {"branch", ids.branch},
                                    {"message",
                                     "the branch of an earlier run exists; "
                                     "opening its PR"}});
    } else {
        // Steps 6–7.
        check_cancel(ctx);
        ids.enter(ctx, "editing");
        ParamsFilePath file = resolve_params_file(ws.workdir(), *cluster->config_path, tmpl->name);
        std::optional<std::string> original = ws.read_base_file(file.relative, kMaxParamsFileBytes);
        if (!original) {
            throw Error(ErrorCode::kParamsFileNotFound,
                        file.display + ": no such file in the repository");
        }
        ParamsEdit edit = [&] {
            try {
                return apply_config_diff(*original, tmpl->declared_params.get(),
                                         proposal->config_diff.get());
            } catch (const Error &e) {
                if (e.code() == ErrorCode::kParamsFileNotFound) {
                    throw Error(e.code(), file.display + " " + e.what());
                }
                throw;
            }
        }();
        for (const ParamDrift &d : edit.drifts) {
            log.warn("pr_open_param_drift",
                     {{"job_id", ids.job_id},
                      {"proposal_id", ids.proposal_id},
                      {"config_repo_id", ids.config_repo_id},
                      {"param", d.param},
                      {"expected", d.expected},
                      {"actual", d.actual},
                      {"message", "the params file no longer holds the proposal's `from` value"}});
        }

        // Step 8.
        check_cancel(ctx);
        ids.enter(ctx, "committing");
        ws.commit_file(file.relative, edit.text, clean(commit_message(text)), bot);
        if (!manual && study->importance_entries > 0) {
            ids.enter(ctx, "rendering_chart");
            try {
                std::string png = render_importance_chart(study->importance);
                ws.commit_file(chart_file, png, clean(chart_commit_message(text)), bot);
                chart_committed = true;
            } catch (const Cancelled &) {
                throw;
            } catch (const std::exception &e) {
                log.warn("pr_open_chart_failed", {{"job_id", ids.job_id},
                                                  {"proposal_id", ids.proposal_id},
                                                  {"study_id", ids.study_id},
                                                  {"message", redact(e.what(), pat.reveal())}});
            }
        }

        // Step 9 (a dry run stops at the local branch).
        check_cancel(ctx);
        if (settings_.dry_run) {
            commit = ws.create_branch();
            ws.keep_branch();
        } else {
            ids.enter(ctx, "pushing");
            ws.push();
        }
    }
    if (settings_.dry_run) {
        check_cancel(ctx);
        DryRun d;
        d.repository = coords->owner + "/" + coords->repo;
        d.clone = ws.workdir();
        d.base = repo->pr_base_branch;
        d.commit = commit;
        d.branch_on_remote = remote.exists;
        d.create_pull_url =
            web_base(settings_.github_api_url) + "/repos/" + d.repository + "/pulls";
        d.title = clean(pr_title(text));
        d.body = clean(pr_body(text));
        return record_dry_run(ctx, ids, d);
    }

    // Step 10.
    check_cancel(ctx);
    ids.enter(ctx, "opening_pr");
    github::CurlOptions curl_options;
    curl_options.ca_file = settings_.ca_file;
    github::CurlTransport transport(curl_options, pat, ctx.cancel);
    github::Client gh(settings_.github_api_url, transport, github::Timing::real(ctx.cancel));
    gh.set_retry_listener([&](const github::RetryDecision &d, int attempt) {
        log.warn("pr_open_github_retry", {{"job_id", ids.job_id},
                                          {"proposal_id", ids.proposal_id},
                                          {"attempt", attempt},
                                          {"duration_ms", static_cast<long long>(d.delay.count())},
                                          {"message", d.reason}});
    });
    github::Client::Opened opened =
        gh.open_or_adopt_pull(coords->owner, coords->repo, clean(pr_title(text)), ids.branch,
                              repo->pr_base_branch, clean(pr_body(text)));
    // A hostile or broken API must not get a javascript: or foreign URL into
    // pr_url, which the UI links to (docs/runbook.md, GITHUB_API_FAILED).
    if (!valid_pull_url(opened.pr.html_url, settings_.github_web_url, coords->owner, coords->repo,
                        opened.pr.number)) {
        throw Error(ErrorCode::kGithubApiFailed,
                    "malformed pull request: html_url is not " +
                        web_base(settings_.github_web_url) + "/" + coords->owner + "/" +
                        coords->repo + "/pull/" + std::to_string(opened.pr.number) +
                        " (GitHub answered \"" +
                        redact_truncate(opened.pr.html_url, 200, pat.reveal()) + "\")");
    }
    if (opened.adopted) {
        log.info("pr_open_adopted", {{"job_id", ids.job_id},
                                     {"proposal_id", ids.proposal_id},
                                     {"branch", ids.branch},
                                     {"pr_url", opened.pr.html_url}});
    }

    // Step 11: never fatal.
    if (!manual) {
        ids.enter(ctx, "commenting");
        auto post = [&](const std::string &body) {
            try {
                gh.create_issue_comment(coords->owner, coords->repo, opened.pr.number, body);
                return true;
            } catch (const Cancelled &) {
                throw;
            } catch (const std::exception &e) {
                log.warn("pr_open_comment_failed", {{"job_id", ids.job_id},
                                                    {"proposal_id", ids.proposal_id},
                                                    {"pr_url", opened.pr.html_url},
                                                    {"message", redact(e.what(), pat.reveal())}});
                return false;
            }
        };
        bool posted =
            chart_committed && post(clean(chart_comment(settings_.github_web_url, coords->owner,
                                                        coords->repo, ids.branch, chart_file)));
        if (!posted) {
            std::string table = clean(importance_table_comment(study->importance));
            if (!post(table)) {
                log.warn("pr_open_importance_table", {{"job_id", ids.job_id},
                                                      {"proposal_id", ids.proposal_id},
                                                      {"pr_url", opened.pr.html_url},
                                                      {"message", table}});
            }
        }
    }

    // Step 12. After a cancel the row is left alone: the next run adopts the PR.
    check_cancel(ctx);
    ids.enter(ctx, "finalizing");
    PipelineResult r;
    r.branch = ids.branch;
    r.pr_url = opened.pr.html_url;
    if (!db.mark_pr_opened(proposal->id, opened.pr.html_url)) {
        log.info("pr_open_proposal_no_longer_pending",
                 {{"job_id", ids.job_id},
                  {"proposal_id", ids.proposal_id},
                  {"config_repo_id", ids.config_repo_id},
                  {"branch", ids.branch},
                  {"pr_url", opened.pr.html_url},
                  {"message",
                   "the proposal left pending while its PR was opened; the PR stays "
                   "open for the operator to close"}});
        r.outcome = PipelineOutcome::kNotPending;
        return r;
    }
    r.outcome = PipelineOutcome::kOpened;
    return r;
}

}  // namespace

std::unique_ptr<Pipeline> make_pr_pipeline(const Settings &settings, EventLog &log) {
    return std::make_unique<PrPipeline>(settings, log);
}

}  // namespace relyloop::worker
