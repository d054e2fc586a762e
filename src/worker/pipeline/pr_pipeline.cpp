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

#include "common/raii.hpp"
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

// What one run carries from step to step: its identity on the log (bound
// once, docs/worker.md "Log"), the PAT, where its time went ("loading=4,
// cloning=52,..." in pr_open_complete's steps_ms), the rows load() read and
// the text it composed, and what prepare_branch() left for open and finalize.
// Constructing it allocates nothing (run() is noexcept).
struct Run {
    Run(const JobContext &c, EventLog &log) noexcept : ctx(c), ev(log) {
        ev.bind(EventScope::kJob, job_id)
            .bind(EventScope::kProposal, proposal_id)
            .bind(EventScope::kStudy, study_id)
            .bind(EventScope::kRepo, config_repo_id)
            .bind(EventScope::kBranch, branch);
    }
    Run(const Run &) = delete;
    Run &operator=(const Run &) = delete;

    // Ends the current step's time and starts `next` ("" ends the last).
    void enter(const char *next) {
        auto now = std::chrono::steady_clock::now();
        if (!step.empty()) {
            auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - step_start);
            steps_ms += (steps_ms.empty() ? "" : ",") + step + "=" + std::to_string(ms.count());
        }
        step = next;
        step_start = now;
        if (*next != '\0') ctx.report(next);
    }

    // pr_text already applies the token patterns; the literal PAT goes too, in
    // case it turned up in stored text (a study name, a follow-up).
    [[nodiscard]] std::string clean(const std::string &s) const { return redact(s, pat.reveal()); }

    const JobContext &ctx;
    std::string job_id;
    std::string proposal_id;
    std::string study_id;
    std::string config_repo_id;
    std::string branch;
    EventScope ev;
    Secret pat;

    std::string steps_ms;
    std::string step;
    std::chrono::steady_clock::time_point step_start;

    // load(): steps 2 and 3's re-read, the re-checks, the PR's text.
    ProposalRow proposal;
    ClusterRow cluster;
    RepoRow repo;
    TemplateRow tmpl;
    std::optional<StudyRows> study;  // study-backed proposals only
    bool manual = false;
    RepoCoordinates coords;
    PrText text;
    std::string chart_file;  // "" for manual proposals

    // prepare_branch(): steps 5–9.
    bool branch_on_remote = false;  // an earlier run's branch: resumed
    bool chart_committed = false;
    std::string commit;  // a dry run's local branch tip
};

class PrPipeline final : public Pipeline {
  public:
    PrPipeline(const Settings &settings, EventLog &log) : settings_(settings), log_(log) {
        git::configure_libgit2(settings_.ca_file);
    }
    ~PrPipeline() override { release_chart_caches(); }

    PipelineResult run(const JobContext &ctx) noexcept override;

  private:
    // The steps in order: load, clone, prepare_branch, then open_pull and
    // finalize (or record_dry_run).
    PipelineResult run_steps(Run &run);
    // Step 2 and the re-read of step 3. False: the proposal is no longer
    // pending (logged; nothing written).
    bool load(Run &run, PipelineDb &db);
    // Re-checks what the API checked at enqueue time and names the branch.
    void recheck(Run &run);
    void compose_text(Run &run);
    // Step 4's workspace spec.
    [[nodiscard]] git::RepoSpec clone_spec(const Run &run) const;
    // Steps 5–9: resume an earlier run's branch, or edit, commit, chart and
    // push (a dry run stops at the local branch).
    void prepare_branch(Run &run, git::Workspace &ws);
    // Step 10.
    github::PullRequest open_pull(Run &run, github::Client &gh);
    // Steps 11–12.
    PipelineResult finalize(Run &run, github::Client &gh, PipelineDb &db,
                            const github::PullRequest &pr);
    PipelineResult record_dry_run(const Run &run, const git::Workspace &ws);

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

PipelineResult failed(ErrorCode code, const std::string &message, const Run &run) {
    PipelineResult r;
    r.outcome = PipelineOutcome::kFailed;
    r.code = code;
    r.message = redact(message, run.pat.reveal());  // the runner caps the stored text
    r.branch = run.branch;
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
    Fd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) {
        throw Error(ErrorCode::kInternalError, "cannot write " + tmp + ": " + std::strerror(errno));
    }
    size_t off = 0;
    while (off < text.size()) {
        ssize_t n = write(fd.get(), text.data() + off, text.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int e = errno;
            fd.reset();
            unlink(tmp.c_str());
            throw Error(ErrorCode::kInternalError, "cannot write " + tmp + ": " + std::strerror(e));
        }
        off += static_cast<size_t>(n);
    }
    if (fd.close() != 0 || rename(tmp.c_str(), path.c_str()) != 0) {
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

PipelineResult PrPipeline::record_dry_run(const Run &run, const git::Workspace &ws) {
    DryRun d;
    d.repository = run.coords.owner + "/" + run.coords.repo;
    d.clone = ws.workdir();
    d.base = run.repo.pr_base_branch;
    d.commit = run.commit;
    d.branch_on_remote = run.branch_on_remote;
    d.create_pull_url = web_base(settings_.github_api_url) + "/repos/" + d.repository + "/pulls";
    d.title = run.clean(pr_title(run.text));
    d.body = run.clean(pr_body(run.text));

    std::string payload = github::create_pull_payload(d.title, run.branch, d.base, d.body);
    Json rec(json_object());
    auto str = [&](const char *k, const std::string &v) {
        json_object_set_new(rec.get(), k, json_stringn(v.data(), v.size()));
    };
    str("proposal_id", run.proposal_id);
    str("job_id", run.job_id);
    str("config_repo_id", run.config_repo_id);
    str("repository", d.repository);
    str("clone", d.clone);
    str("branch", run.branch);
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
    std::string name =
        safe_file_name(run.proposal_id) ? run.proposal_id
        : safe_file_name(run.job_id)
            ? run.job_id
            : throw Error(ErrorCode::kInternalError, "no safe file name for the dry-run record");
    std::string file =
        write_dry_run_file(settings_.clone_root, name, std::string(text.get()) + "\n");

    run.ev.info("pr_dry_run", EventScope::kAll,
                {{"commit", d.commit},
                 {"file", file},
                 {"title", d.title},
                 {"body", d.body},
                 {"message", "dry run: nothing pushed, no PR opened"}});
    PipelineResult r;
    r.outcome = PipelineOutcome::kDryRun;
    r.branch = run.branch;
    return r;
}

PipelineResult PrPipeline::run(const JobContext &ctx) noexcept {
    auto t0 = std::chrono::steady_clock::now();
    Run run(ctx, ctx.log != nullptr ? *ctx.log : log_);
    try {
        run.job_id = ctx.job_id;
        run.proposal_id = ctx.proposal_id;
        run.config_repo_id = ctx.config_repo_id;
        PipelineResult r = run_steps(run);
        run.enter("");
        if (r.outcome == PipelineOutcome::kOpened) {
            auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - t0)
                          .count();
            run.ev.info("pr_open_complete", EventScope::kAll,
                        {{"pr_url", r.pr_url},
                         {"duration_ms", static_cast<long long>(ms)},
                         {"steps_ms", run.steps_ms}});
        }
        return r;
    } catch (const Cancelled &) {
        PipelineResult r;
        r.outcome = PipelineOutcome::kCancelled;
        r.branch = run.branch;
        return r;
    } catch (const DbError &e) {
        // Only transient ones get here (PipelineDb): retried later.
        PipelineResult r =
            failed(ErrorCode::kInternalError, std::string("database: ") + e.what(), run);
        r.retry = true;
        return r;
    } catch (const github::ApiError &e) {
        return failed(ErrorCode::kGithubApiFailed, e.what(), run);
    } catch (const Error &e) {
        return failed(e.code(), e.what(), run);
    } catch (const std::exception &e) {
        return failed(ErrorCode::kInternalError, e.what(), run);
    } catch (...) {
        run.ev.error("pr_open_unexpected_exception", EventScope::kIds,
                     {{"message", "a non-standard exception ended the run"}});
        return failed(ErrorCode::kInternalError, "unexpected failure", run);
    }
}

PipelineResult PrPipeline::run_steps(Run &run) {
    const JobContext &ctx = run.ctx;
    PipelineDb db(ctx.db);
    if (ctx.db == nullptr) {
        throw Error(ErrorCode::kInternalError, "no database connection");
    }
    if (!load(run, db)) {
        PipelineResult r;
        r.outcome = PipelineOutcome::kNotPending;
        return r;
    }

    // Step 4.
    check_cancel(ctx);
    run.enter("cloning");
    git::Workspace ws(clone_spec(run), run.pat, ctx.cancel);
    if (!ws.reclone_reason().empty()) {
        run.ev.warn("pr_open_clone_reset", EventScope::kIdsRepo,
                    {{"message", ws.reclone_reason()}});
    }

    prepare_branch(run, ws);
    if (settings_.dry_run) {
        check_cancel(ctx);
        return record_dry_run(run, ws);
    }

    // Step 10.
    check_cancel(ctx);
    run.enter("opening_pr");
    github::CurlOptions curl_options;
    curl_options.ca_file = settings_.ca_file;
    github::CurlTransport transport(curl_options, run.pat, ctx.cancel);
    github::Client gh(settings_.github_api_url, transport, github::Timing::real(ctx.cancel));
    github::PullRequest pr = open_pull(run, gh);
    return finalize(run, gh, db, pr);
}

bool PrPipeline::load(Run &run, PipelineDb &db) {
    // Step 2 (and the re-read of step 3, inside the lock the runner holds).
    run.enter("loading");
    std::optional<ProposalRow> proposal = db.proposal(run.ctx.proposal_id);
    if (!proposal || proposal->status != "pending") {
        run.ev.info("pr_open_proposal_no_longer_pending", EventScope::kIdsRepo,
                    {{"message", proposal ? "status is " + proposal->status
                                          : std::string("the proposal no longer exists")}});
        return false;
    }
    run.proposal = std::move(*proposal);
    run.manual = !run.proposal.study_id.has_value();
    run.study_id = run.proposal.study_id.value_or("");

    std::optional<ClusterRow> cluster = db.cluster(run.proposal.cluster_id);
    if (!cluster || !cluster->config_repo_id) {
        throw Error(ErrorCode::kClusterHasNoConfigRepo,
                    cluster ? "cluster '" + cluster->name + "' has no config repo"
                            : std::string("the proposal's cluster no longer exists"));
    }
    run.cluster = std::move(*cluster);
    std::optional<RepoRow> repo = db.config_repo(*run.cluster.config_repo_id);
    if (!repo) {
        throw Error(
            ErrorCode::kClusterHasNoConfigRepo,
            "cluster '" + run.cluster.name + "' points at a config repo that no longer exists");
    }
    if (!run.ctx.config_repo_id.empty() && repo->id != run.ctx.config_repo_id) {
        throw Error(
            ErrorCode::kInternalError,
            "cluster '" + run.cluster.name +
                "' was bound to another config repo while the job waited; open the PR again");
    }
    run.repo = std::move(*repo);
    run.config_repo_id = run.repo.id;
    std::optional<TemplateRow> tmpl = db.query_template(run.proposal.template_id);
    if (!tmpl) {
        throw Error(ErrorCode::kInternalError, "the proposal's template no longer exists");
    }
    run.tmpl = std::move(*tmpl);
    if (!run.manual) {
        run.study = db.study(*run.proposal.study_id);
        if (!run.study) {
            throw Error(ErrorCode::kInternalError, "the proposal's study no longer exists");
        }
    }

    recheck(run);
    compose_text(run);
    return true;
}

void PrPipeline::recheck(Run &run) {
    // Re-check what the API checked at enqueue time: the PAT (read fresh, so a
    // rotated token needs no restart) and the repo URL.
    SecretStatus st = check_secret_file(settings_.secrets_dir, run.repo.auth_ref, &run.pat);
    if (st != SecretStatus::kOk) {
        throw Error(ErrorCode::kGithubNotConfigured,
                    "the PAT file of auth_ref '" + run.repo.auth_ref +
                        "' is unusable: " + secret_status_text(st));
    }
    std::optional<RepoCoordinates> coords =
        parse_repo_url(run.repo.repo_url, settings_.github_web_url);
    if (!coords) {
        throw Error(ErrorCode::kUnsupportedProvider,
                    "repo_url '" + run.repo.repo_url + "' is not a " +
                        web_base(settings_.github_web_url) +
                        "/<owner>/<repo> URL (GitLab and Bitbucket are not supported)");
    }
    run.coords = std::move(*coords);
    if (!valid_branch_name(run.repo.pr_base_branch)) {
        throw Error(ErrorCode::kCloneFailed,
                    "pr_base_branch '" + run.repo.pr_base_branch + "' is not a valid branch name");
    }
    if (!run.cluster.config_path) {
        throw Error(ErrorCode::kConfigPathInvalid,
                    "cluster '" + run.cluster.name + "' has no config_path");
    }
    if (!valid_config_path(*run.cluster.config_path)) {
        throw Error(ErrorCode::kConfigPathInvalid,
                    "config_path '" + *run.cluster.config_path + "' is not a safe relative path");
    }
    if (!valid_stored_template_name(run.tmpl.name)) {
        throw Error(ErrorCode::kConfigPathInvalid,
                    "template name '" + run.tmpl.name + "' cannot be used as a file name");
    }
    run.branch =
        run.manual ? "relyloop/proposal-" + run.proposal.id : "relyloop/study-" + run.study_id;
    if (!valid_branch_name(run.branch)) {
        throw Error(ErrorCode::kInternalError, "branch name '" + run.branch + "' is not valid");
    }
}

void PrPipeline::compose_text(Run &run) {
    PrText &text = run.text;
    text.proposal_id = run.proposal.id;
    text.manual = run.manual;
    text.cluster_name = run.cluster.name;
    text.template_name = run.tmpl.name;
    text.template_version = run.tmpl.version;
    text.config_diff = Json(json_incref(run.proposal.config_diff.get()));
    text.metric_delta = Json(json_incref(run.proposal.metric_delta.get()));
    if (!run.manual) {
        StudyRows &study = *run.study;
        text.study_id = run.study_id;
        text.study_name = study.name;
        text.base_url = settings_.base_url;
        text.trial_count = study.trial_count;
        text.best_trial_number = study.best_trial_number;
        text.best_metric = study.best_metric;
        text.top_trials = std::move(study.top_trials);
        text.followups = study.followups;
        text.confidence = std::move(study.confidence);
        if (operator_section(text.config_diff.get()).unknown) {
            run.ev.warn("pr_body_unknown_normalizer", EventScope::kIds);
        }
    }
    run.chart_file = run.manual ? std::string() : chart_path(run.study_id);
}

git::RepoSpec PrPipeline::clone_spec(const Run &run) const {
    git::RepoSpec spec;
    spec.clone_root = settings_.clone_root;
    spec.repo_id = run.repo.id;
    spec.url = web_base(settings_.github_web_url) + "/" + run.coords.owner + "/" + run.coords.repo +
               ".git";
    spec.base_branch = run.repo.pr_base_branch;
    spec.branch = run.branch;
    return spec;
}

void PrPipeline::prepare_branch(Run &run, git::Workspace &ws) {
    const JobContext &ctx = run.ctx;
    const git::Identity bot{settings_.git_author_name, settings_.git_author_email};

    // Step 5.
    git::RemoteBranch remote = ws.remote_branch(run.proposal.id, run.chart_file);
    if (remote.exists && !remote.ours) {
        throw Error(ErrorCode::kBranchExists,
                    "branch '" + run.branch +
                        "' already exists on the remote and was not made for "
                        "this proposal; delete or rename it, then open the PR again");
    }
    run.branch_on_remote = remote.exists;
    if (remote.exists) {
        run.chart_committed = remote.has_path;
        run.ev.info("pr_open_resume", EventScope::kAll,
                    {{"message",
                      "the branch of an earlier run exists; "
                      "opening its PR"}});
        return;
    }

    // Steps 6–7.
    check_cancel(ctx);
    run.enter("editing");
    ParamsFilePath file =
        resolve_params_file(ws.workdir(), *run.cluster.config_path, run.tmpl.name);
    std::optional<std::string> original = ws.read_base_file(file.relative, kMaxParamsFileBytes);
    if (!original) {
        throw Error(ErrorCode::kParamsFileNotFound,
                    file.display + ": no such file in the repository");
    }
    ParamsEdit edit = [&] {
        try {
            return apply_config_diff(*original, run.tmpl.declared_params.get(),
                                     run.proposal.config_diff.get());
        } catch (const Error &e) {
            if (e.code() == ErrorCode::kParamsFileNotFound) {
                throw Error(e.code(), file.display + " " + e.what());
            }
            throw;
        }
    }();
    for (const ParamDrift &d : edit.drifts) {
        run.ev.warn("pr_open_param_drift", EventScope::kIdsRepo,
                    {{"param", d.param},
                     {"expected", d.expected},
                     {"actual", d.actual},
                     {"message", "the params file no longer holds the proposal's `from` value"}});
    }

    // Step 8.
    check_cancel(ctx);
    run.enter("committing");
    ws.commit_file(file.relative, edit.text, run.clean(commit_message(run.text)), bot);
    if (!run.manual && run.study->importance_entries > 0) {
        run.enter("rendering_chart");
        try {
            std::string png = render_importance_chart(run.study->importance);
            ws.commit_file(run.chart_file, png, run.clean(chart_commit_message(run.text)), bot);
            run.chart_committed = true;
        } catch (const Cancelled &) {
            throw;
        } catch (const std::exception &e) {
            run.ev.warn("pr_open_chart_failed", EventScope::kIds | EventScope::kStudy,
                        {{"message", redact(e.what(), run.pat.reveal())}});
        }
    }

    // Step 9 (a dry run stops at the local branch).
    check_cancel(ctx);
    if (settings_.dry_run) {
        run.commit = ws.create_branch();
        ws.keep_branch();
    } else {
        run.enter("pushing");
        ws.push();
    }
}

github::PullRequest PrPipeline::open_pull(Run &run, github::Client &gh) {
    gh.set_retry_listener([&run](const github::RetryDecision &d, int attempt) {
        run.ev.warn("pr_open_github_retry", EventScope::kIds,
                    {{"attempt", attempt},
                     {"duration_ms", static_cast<long long>(d.delay.count())},
                     {"message", d.reason}});
    });
    const RepoCoordinates &c = run.coords;
    github::Client::Opened opened =
        gh.open_or_adopt_pull(c.owner, c.repo, run.clean(pr_title(run.text)), run.branch,
                              run.repo.pr_base_branch, run.clean(pr_body(run.text)));
    // A hostile or broken API must not get a javascript: or foreign URL into
    // pr_url, which the UI links to (docs/runbook.md, GITHUB_API_FAILED).
    if (!valid_pull_url(opened.pr.html_url, settings_.github_web_url, c.owner, c.repo,
                        opened.pr.number)) {
        throw Error(ErrorCode::kGithubApiFailed,
                    "malformed pull request: html_url is not " +
                        web_base(settings_.github_web_url) + "/" + c.owner + "/" + c.repo +
                        "/pull/" + std::to_string(opened.pr.number) + " (GitHub answered \"" +
                        redact_truncate(opened.pr.html_url, 200, run.pat.reveal()) + "\")");
    }
    if (opened.adopted) {
        run.ev.info("pr_open_adopted", EventScope::kIds | EventScope::kBranch,
                    {{"pr_url", opened.pr.html_url}});
    }
    return std::move(opened.pr);
}

PipelineResult PrPipeline::finalize(Run &run, github::Client &gh, PipelineDb &db,
                                    const github::PullRequest &pr) {
    // Step 11: never fatal.
    if (!run.manual) {
        run.enter("commenting");
        const RepoCoordinates &c = run.coords;
        auto post = [&](const std::string &body) {
            try {
                gh.create_issue_comment(c.owner, c.repo, pr.number, body);
                return true;
            } catch (const Cancelled &) {
                throw;
            } catch (const std::exception &e) {
                run.ev.warn(
                    "pr_open_comment_failed", EventScope::kIds,
                    {{"pr_url", pr.html_url}, {"message", redact(e.what(), run.pat.reveal())}});
                return false;
            }
        };
        bool posted = run.chart_committed &&
                      post(run.clean(chart_comment(settings_.github_web_url, c.owner, c.repo,
                                                   run.branch, run.chart_file)));
        if (!posted) {
            std::string table = run.clean(importance_table_comment(run.study->importance));
            if (!post(table)) {
                run.ev.warn("pr_open_importance_table", EventScope::kIds,
                            {{"pr_url", pr.html_url}, {"message", table}});
            }
        }
    }

    // Step 12. After a cancel the row is left alone: the next run adopts the PR.
    check_cancel(run.ctx);
    run.enter("finalizing");
    PipelineResult r;
    r.branch = run.branch;
    r.pr_url = pr.html_url;
    if (!db.mark_pr_opened(run.proposal.id, pr.html_url)) {
        run.ev.info("pr_open_proposal_no_longer_pending",
                    EventScope::kIdsRepo | EventScope::kBranch,
                    {{"pr_url", pr.html_url},
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
