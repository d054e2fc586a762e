// Proposals and open_pr through the C API with fabricated results.

#include "core_request_harness.hpp"

using namespace rltest;
using relyloop::Json;

// ---- proposals ------------------------------------------------------------------

const std::vector<std::string> kSummaryKeys = {
    "id",       "study_id", "cluster",      "template",          "status",
    "pr_state", "pr_url",   "metric_delta", "is_currently_live", "created_at"};

TEST(ProposalGet, DetailOfAStudyProposalWithItsJob) {
    Core core;
    Call c(core, "GET", "/api/v1/proposals/p1");
    EXPECT_EQ(c.expect_query().name, "rl_proposal_get");
    c.rows({proposal_detail_row("p1", true, true)});
    Response r = c.expect_response();
    Json j = r.json();
    std::vector<std::string> detail = {
        "id",       "study_id",     "study_summary", "study_trial_id",  "cluster",
        "template", "config_diff",  "metric_delta",  "status",          "pr_url",
        "pr_state", "pr_merged_at", "pr_open_error", "rejected_reason", "is_currently_live",
        "digest",   "created_at",   "pr_job"};
    EXPECT_EQ(keys(j.get()), detail);
    EXPECT_NE(
        r.body.find(
            R"("cluster":{"id":"c1","name":"prod-es","engine_type":"elasticsearch","environment":"prod"})"),
        std::string::npos);
    EXPECT_NE(
        r.body.find(
            R"("template":{"id":"t1","name":"products","version":2,"engine_type":"elasticsearch"})"),
        std::string::npos);
    EXPECT_NE(
        r.body.find(
            R"("study_summary":{"id":"s1","name":"study-1","status":"completed","best_metric":0.487,"best_trial_id":"tr1",)"
            R"("query_set":{"id":"qs1","name":"qs-1","query_count":12},)"
            R"("judgment_list":{"id":"jl1","name":"jl-1","status":"complete"}})"),
        std::string::npos);
    EXPECT_NE(r.body.find(R"("config_diff":{"title.boost":{"to":2.5,"from":1.0}})"),
              std::string::npos);
    EXPECT_EQ(keys(json_object_get(j.get(), "digest")),
              (std::vector<std::string>{"id", "study_id", "narrative", "parameter_importance",
                                        "recommended_config", "suggested_followups", "generated_by",
                                        "generated_at"}));
    EXPECT_NE(
        r.body.find(
            R"("pr_job":{"state":"running","attempts":1,"last_event":"claimed","last_error":null,)"
            R"("created_at":"2026-05-11T20:13:43.000000+00:00","started_at":"2026-05-11T20:13:44.000000+00:00","finished_at":null})"),
        std::string::npos);
}

TEST(ProposalGet, ManualProposalHasNulls) {
    Core core;
    Call c(core, "GET", "/api/v1/proposals/p1");
    c.expect_query();
    c.rows({proposal_detail_row("p1", false, false)});
    Json j = c.expect_response().json();
    for (const char *k : {"study_id", "study_summary", "study_trial_id", "digest", "pr_job"}) {
        EXPECT_TRUE(json_is_null(json_object_get(j.get(), k))) << k;
    }
    Call gone(core, "GET", "/api/v1/proposals/p9");
    gone.expect_query();
    gone.rows({}, 47);
    EXPECT_EQ(gone.expect_response().code(), "PROPOSAL_NOT_FOUND");
}

TEST(ProposalList, FiltersAndSummaryShape) {
    Core core;
    Call c(core, "GET", "/api/v1/proposals",
           args("status=pending&cluster_id=c1&study_id=s1&template_id=t1&limit=10"));
    Query q = c.expect_query();
    EXPECT_EQ(q.name, "rl_proposal_list");
    EXPECT_EQ(q.params, (std::vector<Cell>{"11", N, N, N, "pending", "c1", "s1", "t1", "f", N, N}));
    c.rows({concat({"1"}, proposal_summary_row("p1"))});
    Json j = c.expect_response().json();
    EXPECT_EQ(keys(json_array_get(json_object_get(j.get(), "data"), 0)), kSummaryKeys);
    Call bad(core, "GET", "/api/v1/proposals",
             args("status=open&template_id=" + std::string(129, 't')));
    EXPECT_EQ(bad.expect_response().message(),
              "Request validation failed: query.status: must be one of: pending, pr_opened, "
              "pr_merged, rejected, superseded; query.template_id: must be at most 128 characters");
}

TEST(ProposalCreate, ManualProposal) {
    Core core;
    Call c(
        core, "POST", "/api/v1/proposals",
        body(
            R"({"cluster_id":"c1","template_id":"t1","config_diff":{"title.boost":{"from":1.0,"to":2.5}},)"
            R"("metric_delta":{"ndcg@10":{"baseline":0.412,"achieved":0.487,"delta_pct":18.2}}})"));
    Query q = c.expect_query();
    EXPECT_EQ(q.name, "rl_proposal_insert");
    EXPECT_TRUE(q.isolated);
    EXPECT_EQ(
        std::vector<Cell>(q.params.begin() + 1, q.params.end()),
        (std::vector<Cell>{"c1", "t1", R"({"title.boost":{"from":1.0,"to":2.5}})",
                           R"({"ndcg@10":{"baseline":0.412,"achieved":0.487,"delta_pct":18.2}})"}));
    c.rows({concat({"t", "t"}, proposal_detail_row(*q.params[0], false, false))});
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 201);
    EXPECT_TRUE(json_is_null(json_object_get(r.json().get(), "study_summary")));
}

TEST(ProposalCreate, MissingClusterOrTemplate) {
    Core core;
    for (const auto &[flags, code] :
         std::vector<std::pair<Row, std::string>>{{{"f", "t"}, "CLUSTER_NOT_FOUND"},
                                                  {{"f", "f"}, "CLUSTER_NOT_FOUND"},
                                                  {{"t", "f"}, "TEMPLATE_NOT_FOUND"}}) {
        Call c(core, "POST", "/api/v1/proposals",
               body(R"({"cluster_id":"c1","template_id":"t1","config_diff":{"a":{"to":1}}})"));
        Query q = c.expect_query();
        EXPECT_EQ(q.params[4], N);
        c.rows({concat(flags, Row(47, N))});
        EXPECT_EQ(c.expect_response().code(), code);
    }
}

TEST(ProposalCreate, Validation) {
    Core core;
    Call c(
        core, "POST", "/api/v1/proposals",
        body(
            R"({"cluster_id":1,"config_diff":{},"metric_delta":{"m":{"baseline":1}},"status":"x"})"));
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 422);
    EXPECT_EQ(r.message(),
              "Request validation failed: body.cluster_id: must be a string; body.template_id: "
              "field required; body.config_diff: must not be empty; body.status: extra fields "
              "not permitted");
}

TEST(ProposalReject, AcceptedBodies) {
    Core core;
    struct Case {
        std::optional<std::string> body;
        Cell reason;
    };
    for (const Case &k :
         {Case{std::nullopt, N}, Case{"", N}, Case{"{}", N}, Case{R"({"reason":null})", N},
          Case{R"({"reason":"too risky"})", "too risky"}, Case{R"({"reason":""})", ""}}) {
        Options o;
        o.body = k.body;
        Call c(core, "POST", "/api/v1/proposals/p1/reject", o);
        Query q = c.expect_query();
        EXPECT_EQ(q.name, "rl_proposal_reject");
        EXPECT_TRUE(q.isolated);
        EXPECT_EQ(q.params, (std::vector<Cell>{"p1", k.reason}));
    }
    Call long_reason(core, "POST", "/api/v1/proposals/p1/reject",
                     body(R"({"reason":")" + std::string(501, 'r') + "\"}"));
    EXPECT_EQ(long_reason.expect_response().message(),
              "Request validation failed: body.reason: must be at most 500 characters");
    Call extra(core, "POST", "/api/v1/proposals/p1/reject", body(R"({"why":"x"})"));
    EXPECT_EQ(extra.expect_response().message(),
              "Request validation failed: body.why: extra fields not permitted");
}

TEST(ProposalReject, Transitions) {
    Core core;
    Call gone(core, "POST", "/api/v1/proposals/p1/reject");
    gone.expect_query();
    gone.rows({concat({N}, Row(47, N))});
    EXPECT_EQ(gone.expect_response().code(), "PROPOSAL_NOT_FOUND");

    Call opened(core, "POST", "/api/v1/proposals/p1/reject");
    opened.expect_query();
    opened.rows({concat({"pr_opened"}, Row(47, N))});
    Response r = opened.expect_response();
    EXPECT_EQ(r.status, 409);
    EXPECT_EQ(r.message(), "Proposal \"p1\" is pr_opened; only pending proposals can be rejected");

    Call ok(core, "POST", "/api/v1/proposals/p1/reject");
    ok.expect_query();
    ok.rows({concat({"pending"}, proposal_detail_row("p1", true, false))});
    EXPECT_EQ(ok.expect_response().status, 200);

    // Still pending at the statement's snapshot, but a racing reject won.
    Call raced(core, "POST", "/api/v1/proposals/p1/reject");
    raced.expect_query();
    raced.rows({concat({"pending"}, Row(47, N))});
    Response r2 = raced.expect_response();
    EXPECT_EQ(r2.status, 409);
    EXPECT_EQ(r2.message(),
              "Proposal \"p1\" is no longer pending; only pending proposals can be "
              "rejected");
}

// ---- open_pr ----------------------------------------------------------------------

namespace {

Row preflight(const char *status, const Cell &cluster, const Cell &repo_id, const Cell &repo,
              const Cell &auth_ref) {
    return {status, cluster, repo_id, repo, auth_ref};
}

}  // namespace

TEST(OpenPr, QueuesThroughTheWorker) {
    Core core;
    Call c(core, "POST", "/api/v1/proposals/p1/open_pr",
           Options{.body = "{}", .request_id = "rid-7"});
    EXPECT_TRUE(c.wants_body());
    Query q = c.expect_query();
    EXPECT_EQ(q.name, "rl_open_pr_preflight");
    EXPECT_FALSE(q.isolated);  // a read: the endpoint never writes the proposal
    EXPECT_EQ(q.params, std::vector<Cell>{"p1"});
    c.rows({preflight("pending", "c1", "r1", "r1", "gh-main")});
    EXPECT_EQ(c.expect_worker(),
              "{\"op\":\"enqueue\",\"proposal_id\":\"p1\",\"request_id\":\"rid-7\"}\n");
    c.reply(R"({"ok":true,"job_id":"j1","deduplicated":false})");
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 202);
    EXPECT_EQ(r.body, R"({"proposal_id":"p1","status":"pending","message":"PR creation queued"})");
    EXPECT_EQ(r.header("X-Request-ID"), "rid-7");
}

TEST(OpenPr, AnyObjectOrNoBody) {
    Core core;
    for (const char *b : {"", R"({"anything": [1, 2]})"}) {
        Call c(core, "POST", "/api/v1/proposals/p1/open_pr", body(b));
        EXPECT_EQ(c.expect_query().name, "rl_open_pr_preflight");
    }
    Call bad(core, "POST", "/api/v1/proposals/p1/open_pr", body("[]"));
    EXPECT_EQ(bad.expect_response().status, 422);
}

TEST(OpenPr, PreflightOrder) {
    Core core;
    Call missing(core, "POST", "/api/v1/proposals/p1/open_pr");
    missing.expect_query();
    missing.rows({}, 5);
    EXPECT_EQ(missing.expect_response().code(), "PROPOSAL_NOT_FOUND");

    Call merged(core, "POST", "/api/v1/proposals/p1/open_pr");
    merged.expect_query();
    merged.rows({preflight("pr_merged", N, N, N, N)});
    Response m = merged.expect_response();
    EXPECT_EQ(m.status, 409);
    EXPECT_EQ(m.code(), "INVALID_STATE_TRANSITION");
    EXPECT_EQ(m.message(), "Proposal \"p1\" is pr_merged; only pending proposals can open a PR");

    for (const Row &row : {preflight("pending", N, N, N, N),           // cluster deleted
                           preflight("pending", "c1", N, N, N),        // no repo bound
                           preflight("pending", "c1", "r1", N, N)}) {  // repo row gone
        Call c(core, "POST", "/api/v1/proposals/p1/open_pr");
        c.expect_query();
        c.rows({row});
        Response r = c.expect_response();
        EXPECT_EQ(r.status, 422);
        EXPECT_EQ(r.code(), "CLUSTER_HAS_NO_CONFIG_REPO");
        EXPECT_FALSE(r.retryable());
    }
}

TEST(OpenPr, UnusablePatIsGithubNotConfigured) {
    Core core;
    core.secrets().write("dir-ref", "");
    core.secrets().write("zero-bytes", "");
    std::string token = "ghp_" + std::string(36, 'A');
    for (const char *ref : {"missing", "zero-bytes", "../gh-main"}) {
        Call c(core, "POST", "/api/v1/proposals/p1/open_pr");
        c.expect_query();
        c.rows({preflight("pending", "c1", "r1", "r1", ref)});
        Response r = c.expect_response();
        EXPECT_EQ(r.status, 503) << ref;
        EXPECT_EQ(r.code(), "GITHUB_NOT_CONFIGURED");
        EXPECT_TRUE(r.retryable());
        EXPECT_NE(r.message().find(std::string("\"") + ref + "\""), std::string::npos);
        EXPECT_EQ(r.body.find(token), std::string::npos);
        for (const Logged &l : c.logs()) {
            EXPECT_EQ(l.msg.find(token), std::string::npos);
        }
    }
    Call empty(core, "POST", "/api/v1/proposals/p1/open_pr");
    empty.expect_query();
    empty.rows({preflight("pending", "c1", "r1", "r1", "zero-bytes")});
    EXPECT_NE(empty.expect_response().message().find("the file is empty"), std::string::npos);
    // Checked by stat only (nginx cannot read PATs): a file of whitespace
    // passes here; the worker reads it and fails the job.
    Call blank(core, "POST", "/api/v1/proposals/p1/open_pr");
    blank.expect_query();
    blank.rows({preflight("pending", "c1", "r1", "r1", "empty")});
    blank.expect_worker();
}

TEST(OpenPr, WorkerTroubleIsQueueUnavailable) {
    Core core;
    const char *bad_replies[] = {
        R"({"ok":false,"error":"db down"})", "garbage", "", R"({"ok":true})",
        R"({"ok":"true","job_id":"j"})",     "[true]"};
    for (const char *reply : bad_replies) {
        Call c(core, "POST", "/api/v1/proposals/p1/open_pr");
        c.expect_query();
        c.rows({preflight("pending", "c1", "r1", "r1", "gh-main")});
        c.expect_worker();
        c.reply(reply);
        Response r = c.expect_response();
        EXPECT_EQ(r.status, 503) << reply;
        EXPECT_EQ(r.code(), "QUEUE_UNAVAILABLE");
        EXPECT_TRUE(r.retryable());
        EXPECT_TRUE(c.logged(RL_LOG_ERR, "worker refused"));
    }
    Call down(core, "POST", "/api/v1/proposals/p1/open_pr");
    down.expect_query();
    down.rows({preflight("pending", "c1", "r1", "r1", "gh-main")});
    down.expect_worker();
    rl_request_worker_failed(down.req(), "timeout");
    Response r = down.expect_response();
    EXPECT_EQ(r.code(), "QUEUE_UNAVAILABLE");
    EXPECT_EQ(r.message(), "PR queue unavailable");
    EXPECT_TRUE(down.logged(RL_LOG_ERR, "timeout"));
}

TEST(ProposalReinstate, OneConditionalUpdate) {
    Core core;
    for (const char *b : {"", "{}", R"({"anything":[1]})"}) {
        Options o;
        o.body = std::string(b);
        Call c(core, "POST", "/api/v1/proposals/p1/reinstate", o);
        Query q = c.expect_query();
        EXPECT_EQ(q.name, "rl_proposal_reinstate");
        EXPECT_TRUE(q.isolated);
        EXPECT_EQ(q.params, (std::vector<Cell>{"p1"}));
    }
    Call gone(core, "POST", "/api/v1/proposals/p1/reinstate");
    gone.expect_query();
    gone.rows({concat({N}, Row(47, N))});
    Response r = gone.expect_response();
    EXPECT_EQ(r.code(), "PROPOSAL_NOT_FOUND");
    EXPECT_EQ(r.message(), "proposal p1 not found");
    Call pending(core, "POST", "/api/v1/proposals/p1/reinstate");
    pending.expect_query();
    pending.rows({concat({"pending"}, Row(47, N))});
    r = pending.expect_response();
    EXPECT_EQ(r.status, 409);
    EXPECT_EQ(r.message(),
              "proposal p1 is in status 'pending'; only 'superseded' proposals can be reinstated");
    // Seen superseded, not updated: a concurrent reinstate won.
    Call raced(core, "POST", "/api/v1/proposals/p1/reinstate");
    raced.expect_query();
    raced.rows({concat({"superseded"}, Row(47, N))});
    EXPECT_EQ(raced.expect_response().message(),
              "proposal p1 is in status 'pending'; only 'superseded' proposals can be reinstated");
}

TEST(ProposalList, SortsBooleansAndUnknownParameters) {
    Core core;
    Call c(core, "GET", "/api/v1/proposals",
           args("sort=status:asc&include_superseded=YES&source=manual&is_last_merged=0&limit=5"));
    Query q = c.expect_query();
    EXPECT_EQ(q.name, "rl_proposal_list_sorted");
    EXPECT_EQ(q.params, (std::vector<Cell>{"6", N, N, N, "status", "asc", N, N, N, N, N, N, N, "t",
                                           "manual", "f"}));
    // created_at:desc is the plain list.
    Call plain(core, "GET", "/api/v1/proposals", args("sort=created_at:desc"));
    EXPECT_EQ(plain.expect_query().name, "rl_proposal_list");
    Call bad(core, "GET", "/api/v1/proposals",
             args("sort=status&include_superseded=maybe&source=x&q=a&is_last_merged=2"));
    EXPECT_EQ(bad.expect_response().message(),
              "Request validation failed: query.q: unknown parameter; query.sort: must be one of: "
              "created_at:asc, created_at:desc, status:asc, status:desc, pr_state:asc, "
              "pr_state:desc; query.include_superseded: Input should be a valid boolean; "
              "query.source: must be one of: study, manual; query.is_last_merged: Input should be "
              "a valid boolean");
}
