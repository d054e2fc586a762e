// The request state machine through the C API: routing answers, CORS,
// X-Request-ID, body-read failures, database and worker failures, health,
// the seed gate and openapi.json. Endpoint behaviour: core_endpoints_test.

#include "common/uuid.hpp"
#include "core_request_harness.hpp"

using namespace rltest;
using relyloop::Json;

TEST(RequestRouting, GetByIdAsksForOneStatementThenAnswers) {
    Core core;
    Call c(core, "GET", "/api/v1/config-repos/r1", Options{.request_id = "req-42"});
    EXPECT_FALSE(c.wants_body());
    Query q = c.expect_query();
    EXPECT_EQ(q.name, "rl_config_repo_get");
    EXPECT_EQ(q.params, std::vector<Cell>{"r1"});
    EXPECT_FALSE(q.isolated);
    c.rows({config_repo_detail_row("r1", "shop")});
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("X-Request-ID"), "req-42");
    EXPECT_EQ(
        r.body,
        R"({"id":"r1","name":"shop","provider":"github","repo_url":"https://github.com/acme/shop",)"
        R"("default_branch":"main","pr_base_branch":"main","auth_ref":"gh-main",)"
        R"("webhook_secret_ref":null,"webhook_registration_error":null,)"
        R"("last_merged_proposal":null,"created_at":"2026-05-11T20:13:43.123456+00:00"})");
    EXPECT_TRUE(c.logs().empty());
    // The answer stays put when asked again.
    EXPECT_EQ(c.expect_response().status, 200);
}

TEST(RequestRouting, NoRowIsTheResources404) {
    Core core;
    Call c(core, "GET", "/api/v1/config-repos/nope");
    c.expect_query();
    c.rows({}, 26);
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(r.code(), "CONFIG_REPO_NOT_FOUND");
    EXPECT_EQ(r.message(), "Config repo \"nope\" not found");
    EXPECT_FALSE(r.retryable());
    ASSERT_EQ(c.logs().size(), 1u);
    EXPECT_EQ(c.logs()[0].level, RL_LOG_INFO);
    EXPECT_TRUE(c.logged(RL_LOG_INFO, "client error 404 \"CONFIG_REPO_NOT_FOUND\""));
    EXPECT_TRUE(c.logged(RL_LOG_INFO, "path \"/api/v1/config-repos/nope\""));
}

TEST(RequestRouting, IdsThatCannotExistAre404WithoutAQuery) {
    Core core;
    for (const std::string &p :
         {"/api/v1/proposals/" + std::string(129, 'x'), std::string("/api/v1/proposals/%zz"),
          std::string("/api/v1/proposals/a%00")}) {
        Call c(core, "GET", p);
        Response r = c.expect_response();
        EXPECT_EQ(r.status, 404) << p;
        EXPECT_EQ(r.code(), "PROPOSAL_NOT_FOUND") << p;
    }
    Call post(core, "POST", "/api/v1/proposals/%zz/open_pr", body("{}"));
    EXPECT_FALSE(post.wants_body());
    EXPECT_EQ(post.expect_response().code(), "PROPOSAL_NOT_FOUND");
    Call trials(core, "GET", "/api/v1/studies/" + std::string(200, 's') + "/trials");
    EXPECT_EQ(trials.expect_response().code(), "STUDY_NOT_FOUND");
}

TEST(RequestRouting, UnknownRouteIs404Envelope) {
    Core core;
    Call c(core, "GET", "/api/v1/nothing-here");
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(
        r.body,
        R"({"detail":{"error_code":"RESOURCE_NOT_FOUND","message":"Resource not found","retryable":false}})");
    EXPECT_TRUE(relyloop::is_uuid(r.header("X-Request-ID")));
}

TEST(RequestRouting, WrongMethodIs405WithAllow) {
    Core core;
    Call c(core, "DELETE", "/api/v1/config-repos/r1");
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 405);
    EXPECT_EQ(r.code(), "METHOD_NOT_ALLOWED");
    EXPECT_EQ(r.header("Allow"), "GET, OPTIONS");
    EXPECT_EQ(r.message(), "Method DELETE not allowed");
}

TEST(RequestRouting, HeadIsAnsweredAsGet) {
    Core core;
    Call c(core, "HEAD", "/api/v1/config-repos/r1");
    EXPECT_EQ(c.expect_query().name, "rl_config_repo_get");
    c.rows({config_repo_detail_row("r1", "shop")});
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 200);
    EXPECT_FALSE(r.body.empty());  // nginx drops it for HEAD, with the right length
}

TEST(RequestRouting, OptionsWithoutCorsListsTheMethods) {
    Core core;
    Call c(core, "OPTIONS", "/api/v1/proposals");
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 204);
    EXPECT_EQ(r.header("Allow"), "GET, POST, OPTIONS");
    EXPECT_EQ(r.body, "");
    EXPECT_EQ(r.header("Content-Type"), "<absent>");
    EXPECT_EQ(r.header("Access-Control-Allow-Origin"), "<absent>");
    Call unknown(core, "OPTIONS", "/api/v1/nope");
    EXPECT_EQ(unknown.expect_response().status, 404);
}

TEST(RequestCors, PreflightForAnAllowedOrigin) {
    Core core;
    Options o{.origin = "https://ui.example.com", .cors_enabled = true, .cors_allowed = true};
    Call c(core, "OPTIONS", "/api/v1/clusters/c1", o);
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 204);
    EXPECT_EQ(r.header("Access-Control-Allow-Origin"), "https://ui.example.com");
    EXPECT_EQ(r.header("Access-Control-Allow-Methods"), "GET, POST, PATCH, DELETE, OPTIONS");
    EXPECT_EQ(r.header("Access-Control-Allow-Headers"), "Content-Type, Accept, X-Request-ID");
    EXPECT_EQ(r.header("Access-Control-Max-Age"), "600");
    EXPECT_EQ(r.header("Vary"), "Origin");
    EXPECT_EQ(r.body, "");
}

TEST(RequestCors, EveryResponseOfAnAllowedOriginCarriesTheHeaders) {
    Core core;
    Options o{.origin = "https://ui.example.com", .cors_enabled = true, .cors_allowed = true};
    Call ok(core, "GET", "/api/v1/config-repos/r1", o);
    ok.expect_query();
    ok.rows({config_repo_detail_row("r1", "shop")});
    Call err(core, "GET", "/api/v1/nope", o);
    Call bad(core, "PUT", "/api/v1/health", o);
    for (Call *c : {&ok, &err, &bad}) {
        Response r = c->expect_response();
        EXPECT_EQ(r.header("Access-Control-Allow-Origin"), "https://ui.example.com") << r.status;
        EXPECT_EQ(r.header("Access-Control-Expose-Headers"), "X-Total-Count, X-Request-ID");
        EXPECT_EQ(r.header("Vary"), "Origin");
        EXPECT_EQ(r.header("Access-Control-Allow-Methods"), "<absent>");
    }
}

TEST(RequestCors, OtherOriginsGetNoCorsHeaders) {
    Core core;
    Options o{.origin = "https://evil.example.com", .cors_enabled = true, .cors_allowed = false};
    Call pre(core, "OPTIONS", "/api/v1/config-repos", o);
    Response r = pre.expect_response();
    EXPECT_EQ(r.status, 204);
    EXPECT_EQ(r.header("Allow"), "GET, POST, OPTIONS");
    EXPECT_EQ(r.header("Access-Control-Allow-Origin"), "<absent>");
    EXPECT_EQ(r.header("Vary"), "<absent>");
    // cors_allowed without a configured list is ignored.
    Options odd{.origin = "https://x", .cors_enabled = false, .cors_allowed = true};
    Call c(core, "GET", "/api/v1/nope", odd);
    EXPECT_EQ(c.expect_response().header("Access-Control-Allow-Origin"), "<absent>");
}

TEST(RequestId, EchoedWhenSafeElseFresh) {
    Core core;
    Call good(core, "GET", "/api/v1/nope", Options{.request_id = "abc.DEF:1_2-3"});
    EXPECT_EQ(good.expect_response().header("X-Request-ID"), "abc.DEF:1_2-3");
    Call bad(core, "GET", "/api/v1/nope", Options{.request_id = "has space"});
    std::string id = bad.expect_response().header("X-Request-ID");
    EXPECT_TRUE(relyloop::is_uuid(id)) << id;
    Call longer(core, "GET", "/api/v1/nope", Options{.request_id = std::string(129, 'a')});
    EXPECT_TRUE(relyloop::is_uuid(longer.expect_response().header("X-Request-ID")));
}

TEST(RequestBody, ReadFailuresBecomeEnvelopes) {
    Core core;
    struct Case {
        int status;
        const char *code;
    };
    for (Case k : {Case{413, "PAYLOAD_TOO_LARGE"}, Case{408, "REQUEST_TIMEOUT"},
                   Case{400, "BAD_REQUEST"}, Case{500, "INTERNAL_ERROR"}}) {
        Call c(core, "POST", "/api/v1/config-repos");
        EXPECT_TRUE(c.wants_body());
        rl_request_set_http_error(c.req(), k.status);
        Response r = c.expect_response();
        EXPECT_EQ(r.status, k.status);
        EXPECT_EQ(r.code(), k.code);
    }
    Call big(core, "POST", "/api/v1/config-repos");
    rl_request_set_http_error(big.req(), 413);
    EXPECT_EQ(big.expect_response().message(), "Request body too large");
}

// An error_page redirect answers with the envelope of nginx's error whatever
// the path: none (a malformed request line), an unknown route, a known one.
TEST(RequestErrorPage, NginxErrorWinsOverRouting) {
    Core core;
    struct Case {
        const char *method;
        const char *path;
        int error;
        int status;
        const char *code;
        const char *message;
    };
    for (Case k :
         {Case{"", "", 400, 400, "BAD_REQUEST", "Malformed request"},
          Case{"GET", "/api/v2/nowhere", 413, 413, "PAYLOAD_TOO_LARGE", "Request body too large"},
          Case{"POST", "/api/v1/config-repos", 413, 413, "PAYLOAD_TOO_LARGE",
               "Request body too large"},
          Case{"DELETE", "/api/v1/health", 414, 414, "BAD_REQUEST", "Request URI too long"},
          Case{"OPTIONS", "/api/v1/health", 494, 400, "BAD_REQUEST", "Malformed request"}}) {
        Options o;
        o.http_error = k.error;
        o.body = std::string("{}");
        Call c(core, k.method, k.path, o);
        EXPECT_FALSE(c.wants_body()) << k.path;
        Response r = c.expect_response();
        EXPECT_EQ(r.status, k.status) << k.path;
        EXPECT_EQ(r.code(), k.code) << k.path;
        EXPECT_EQ(r.message(), k.message) << k.path;
    }
}

TEST(RequestBody, GetIgnoresBodyAndContentType) {
    Core core;
    Call c(core, "GET", "/api/v1/proposals", body("garbage"));
    EXPECT_FALSE(c.wants_body());
    EXPECT_EQ(c.expect_query().name, "rl_proposal_list");
}

// docs/api.md, "JSON in and out": only JSON bodies, refused before they are
// read; a body-less POST may omit the type.
TEST(RequestBody, NonJsonContentTypeIs415BeforeTheBody) {
    Core core;
    for (const char *type :
         {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
          "application/jsonx", "application/json; charset=latin1", "application/json; x=1",
          "text/json", "application/json, text/plain"}) {
        Options o;
        o.content_type = type;
        o.body = R"({"name":"x"})";
        Call c(core, "POST", "/api/v1/clusters", o);
        EXPECT_FALSE(c.wants_body()) << type;
        Response r = c.expect_response();
        EXPECT_EQ(r.status, 415) << type;
        EXPECT_EQ(r.code(), "UNSUPPORTED_MEDIA_TYPE") << type;
        EXPECT_FALSE(r.retryable());
    }
    // no type with a body; a non-JSON type without one (an empty form)
    Options none;
    none.content_type = "";
    none.has_body = true;
    Call c(core, "PATCH", "/api/v1/clusters/c1", none);
    EXPECT_EQ(c.expect_response().status, 415);
    Options form;
    form.content_type = "application/x-www-form-urlencoded";
    form.has_body = false;
    Call f(core, "POST", "/api/v1/proposals/p1/open_pr", form);
    EXPECT_EQ(f.expect_response().status, 415);
}

TEST(RequestBody, JsonTypesAndBodylessPostsAreAccepted) {
    Core core;
    for (const char *type :
         {"application/json", "Application/JSON", "application/json;charset=utf-8",
          "application/json; charset=\"UTF-8\"", " application/json ; charset=utf8"}) {
        Options o;
        o.content_type = type;
        o.body = "{}";
        Call c(core, "POST", "/api/v1/proposals/p1/open_pr", o);
        EXPECT_TRUE(c.wants_body()) << type;
        EXPECT_EQ(c.expect_query().name, "rl_open_pr_preflight") << type;
    }
    for (const char *path : {"/api/v1/proposals/p1/open_pr", "/api/v1/proposals/p1/reject"}) {
        Options o;
        o.content_type = "";
        o.has_body = false;
        Call c(core, "POST", path, o);
        EXPECT_TRUE(c.wants_body()) << path;
        (void)c.expect_query();
    }
    // a GET's content type is not looked at
    Options g;
    g.content_type = "text/plain";
    Call get(core, "GET", "/api/v1/proposals", g);
    EXPECT_EQ(get.expect_query().name, "rl_proposal_list");
}

TEST(RequestDatabase, ShimFailuresAre503Retryable) {
    Core core;
    for (rl_db_failure_t why : {RL_DB_UNAVAILABLE, RL_DB_OVERLOADED, RL_DB_TIMEOUT}) {
        Call c(core, "GET", "/api/v1/config-repos/r1");
        c.expect_query();
        rl_request_query_failed(c.req(), why, "connection refused");
        Response r = c.expect_response();
        EXPECT_EQ(r.status, 503);
        EXPECT_EQ(r.code(), "DATABASE_UNAVAILABLE");
        EXPECT_EQ(r.message(), "Database unavailable");
        EXPECT_TRUE(r.retryable());
        // An outage fails every request alike: WARN per request (the pool
        // logs the cause at ERR once per burst); a timeout is an ERR.
        EXPECT_TRUE(
            c.logged(why == RL_DB_TIMEOUT ? RL_LOG_ERR : RL_LOG_WARN, "connection refused"));
    }
}

TEST(RequestDatabase, FailedStatementIsAGeneric500) {
    Core core;
    Call c(core, "GET", "/api/v1/config-repos/r1");
    c.expect_query();
    rl_request_query_result(c.req(), fatal_result());
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 500);
    EXPECT_EQ(r.code(), "INTERNAL_ERROR");
    EXPECT_EQ(r.message(), "Internal server error");
    EXPECT_FALSE(r.retryable());
    EXPECT_TRUE(c.logged(RL_LOG_ERR, "database failure"));
}

TEST(RequestDatabase, AbortedPipelineAndMissingResultAre503) {
    Core core;
    Call c(core, "GET", "/api/v1/studies/s1");
    c.expect_query();
    rl_request_query_result(c.req(), PQmakeEmptyPGresult(nullptr, PGRES_PIPELINE_ABORTED));
    EXPECT_EQ(c.expect_response().code(), "DATABASE_UNAVAILABLE");
    Call d(core, "GET", "/api/v1/studies/s1");
    d.expect_query();
    rl_request_query_result(d.req(), nullptr);
    EXPECT_EQ(d.expect_response().code(), "DATABASE_UNAVAILABLE");
}

TEST(RequestDatabase, UnexpectedResultShapeIs500) {
    Core core;
    Call c(core, "GET", "/api/v1/config-repos/r1");
    c.expect_query();
    c.rows({{"only", "two"}});
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 500);
    EXPECT_TRUE(c.logged(RL_LOG_ERR, "unexpected result shape"));
}

TEST(RequestProtocol, StepWithoutAnOutcomeRepeatsTheStep) {
    Core core;
    Call c(core, "GET", "/api/v1/config-repos/r1");
    Query a = c.expect_query();
    Query b = c.expect_query();
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.params, b.params);
}

TEST(RequestProtocol, OutcomesAtTheWrongTimeAreIgnored) {
    Core core;
    Call c(core, "GET", "/api/v1/config-repos/r1");
    rl_request_worker_reply(c.req(), "{}", 2);  // nothing asked yet
    rl_request_query_failed(c.req(), RL_DB_TIMEOUT, "x");
    c.expect_query();
    rl_request_worker_failed(c.req(), "x");  // a query is pending, not the worker
    c.rows({config_repo_detail_row("r1", "shop")});
    rl_request_query_result(c.req(),
                            result({config_repo_detail_row("r1", "other")}));  // late duplicate
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 200);
    EXPECT_NE(r.body.find("\"shop\""), std::string::npos);
}

TEST(CApi, NullArgumentsAndDefaults) {
    rl_core_t *core = nullptr;
    EXPECT_EQ(rl_core_new(nullptr, nullptr), RL_ERROR);
    ASSERT_EQ(rl_core_new(&core, nullptr), RL_OK);
    rl_request_t *req = nullptr;
    EXPECT_EQ(rl_request_new(&req, core, nullptr, nullptr, nullptr), RL_ERROR);
    EXPECT_EQ(req, nullptr);
    EXPECT_EQ(rl_request_step(nullptr, nullptr), RL_ERROR);
    EXPECT_EQ(rl_request_wants_body(nullptr), 0);
    rl_request_query_result(nullptr, PQmakeEmptyPGresult(nullptr, PGRES_TUPLES_OK));
    rl_request_free(nullptr);

    // Production by default: the seed route does not exist.
    rl_http_request_t in{};
    in.method = {"POST", 4};
    in.raw_path = {"/api/v1/_test/studies/seed-completed", 36};
    ASSERT_EQ(rl_request_new(&req, core, &in, nullptr, nullptr), RL_OK);
    rl_step_t s;
    ASSERT_EQ(rl_request_step(req, &s), RL_OK);
    EXPECT_EQ(s.kind, RL_STEP_RESPOND);
    EXPECT_EQ(s.status, 404);
    rl_request_free(req);
    rl_core_free(core);
    rl_core_free(nullptr);
}

TEST(CApi, InternalErrorBody) {
    size_t len = 0;
    const char *b = rl_internal_error_body(&len);
    EXPECT_EQ(
        std::string(b, len),
        R"({"detail":{"error_code":"INTERNAL_ERROR","message":"Internal server error","retryable":false}})");
}

TEST(Seed, OutsideDevelopmentIs404BeforeTheBody) {
    Core core("production");
    Call c(core, "POST", "/api/v1/_test/studies/seed-completed", body("not json"));
    EXPECT_FALSE(c.wants_body());
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(r.code(), "RESOURCE_NOT_FOUND");
    Core staging("staging");
    Call s(staging, "POST", "/api/v1/_test/studies/seed-completed", body("{}"));
    rl_request_set_body(s.req(), "{}", 2);
    EXPECT_EQ(s.expect_response().status, 404);
}

TEST(Seed, CreatesEverythingInOneStatement) {
    Core core;
    Call c(core, "POST", "/api/v1/_test/studies/seed-completed",
           body(R"({"cluster_id":"c1","template_id":"t1"})"));
    EXPECT_TRUE(c.wants_body());
    Query q = c.expect_query();
    EXPECT_EQ(q.name, "rl_seed_completed");
    EXPECT_TRUE(q.isolated);
    ASSERT_EQ(q.params.size(), 15u);
    for (int i : {0, 1, 2, 3, 4, 9, 10}) {
        ASSERT_TRUE(q.params[i]) << i;
        EXPECT_TRUE(relyloop::is_uuid(*q.params[i])) << i;
    }
    EXPECT_EQ(q.params[5], "c1");
    EXPECT_EQ(q.params[6], "t1");
    EXPECT_EQ(q.params[7], N);
    EXPECT_EQ(q.params[8], N);
    EXPECT_EQ(q.params[11], N);  // per-query metrics of trial #0, #1
    EXPECT_EQ(q.params[12], N);
    EXPECT_EQ(q.params[13], N);  // the default follow-ups
    EXPECT_EQ(q.params[14], "[]");
    c.rows({{"t", "t", "t", "t", q.params[0], q.params[3], q.params[4], "2"}});
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 201);
    EXPECT_EQ(r.body, "{\"study_id\":\"" + *q.params[0] + "\",\"digest_id\":\"" + *q.params[3] +
                          "\",\"proposal_id\":\"" + *q.params[4] + "\"}");
}

TEST(Seed, HeadFieldsAreCheckedAndPassedOn) {
    Core core;
    Call c(
        core, "POST", "/api/v1/_test/studies/seed-completed",
        body(R"({"cluster_id":"c1","template_id":"t1","winner_per_query":{"q1":{"ndcg@10":0.5}},)"
             R"("runner_up_per_query":null,"suggested_followups":[{"kind":"text"}],)"
             R"("extra_trial_metrics":[0.3,0.45]})"));
    Query q = c.expect_query();
    ASSERT_EQ(q.params.size(), 15u);
    EXPECT_EQ(q.params[11], R"({"q1":{"ndcg@10":0.5}})");
    EXPECT_EQ(q.params[12], N);
    EXPECT_EQ(q.params[13], R"([{"kind":"text"}])");
    ASSERT_TRUE(q.params[14]);
    EXPECT_NE(q.params[14]->find(R"("i":0,"n":2,"boost":1.5,"v":0.3})"), std::string::npos);
    EXPECT_NE(q.params[14]->find(R"("i":1,"n":3,"boost":1.6,"v":0.45})"), std::string::npos);

    for (const char *bad : {R"("extra_trial_metrics":[0.487])", R"("extra_trial_metrics":[true])",
                            R"("extra_trial_metrics":3)", R"("winner_per_query":{"q":1})",
                            R"("suggested_followups":["text"])"}) {
        Call b(core, "POST", "/api/v1/_test/studies/seed-completed",
               body(std::string(R"({"cluster_id":"c1","template_id":"t1",)") + bad + "}"));
        EXPECT_EQ(b.expect_response().status, 422) << bad;
    }
}

TEST(Seed, WithoutProposalAndGivenSets) {
    Core core;
    Call c(
        core, "POST", "/api/v1/_test/studies/seed-completed",
        body(
            R"({"cluster_id":"c1","template_id":"t1","query_set_id":"qs","judgment_list_id":"jl","with_pending_proposal":false})"));
    Query q = c.expect_query();
    EXPECT_EQ(q.params[4], N);
    EXPECT_EQ(q.params[7], "qs");
    EXPECT_EQ(q.params[8], "jl");
    c.rows({{"t", "t", "t", "t", "s", "d", N, "2"}});
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 201);
    EXPECT_NE(r.body.find("\"proposal_id\":null"), std::string::npos);
}

TEST(Seed, MissingReferencesAre404InOrder) {
    Core core;
    struct Case {
        Row flags;
        const char *code;
        const char *message;
    };
    const Case cases[] = {
        {{"f", "f", "f", "f"}, "CLUSTER_NOT_FOUND", "Cluster \"c1\" not found"},
        {{"t", "f", "f", "f"}, "TEMPLATE_NOT_FOUND", "Template \"t1\" not found"},
        {{"t", "t", "f", "t"}, "RESOURCE_NOT_FOUND", "Query set \"qs\" not found"},
        {{"t", "t", "t", "f"}, "RESOURCE_NOT_FOUND", "Judgment list \"jl\" not found"},
    };
    for (const Case &k : cases) {
        Call c(
            core, "POST", "/api/v1/_test/studies/seed-completed",
            body(
                R"({"cluster_id":"c1","template_id":"t1","query_set_id":"qs","judgment_list_id":"jl"})"));
        c.expect_query();
        c.rows({concat(k.flags, {N, N, N, "0"})});
        Response r = c.expect_response();
        EXPECT_EQ(r.status, 404);
        EXPECT_EQ(r.code(), k.code);
        EXPECT_EQ(r.message(), k.message);
    }
}

TEST(Seed, BodyIsValidated) {
    Core core;
    Call c(core, "POST", "/api/v1/_test/studies/seed-completed",
           body(R"({"cluster_id":"c1","extra":1,"with_pending_proposal":"yes"})"));
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 422);
    EXPECT_EQ(r.message(),
              "Request validation failed: body.template_id: field required; "
              "body.with_pending_proposal: must be a boolean; body.extra: extra fields not "
              "permitted");
    Call empty(core, "POST", "/api/v1/_test/studies/seed-completed", body(""));
    EXPECT_EQ(empty.expect_response().message(), "Request validation failed: body: field required");
}

TEST(Health, DatabaseThenWorker) {
    Core core;
    Call c(core, "GET", "/api/v1/health");
    EXPECT_EQ(c.expect_query().name, "rl_health_ping");
    c.rows({{"1"}});
    EXPECT_EQ(c.expect_worker(), "{\"op\":\"ping\"}\n");
    c.reply(R"({"ok":true,"version":"0.1.0","queued":0,"running":1})");
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, R"({"status":"ok","database":"ok","worker":"ok"})");
}

TEST(Health, WorkerIsPingedEvenWhenTheDatabaseIsDown) {
    Core core;
    Call c(core, "GET", "/api/v1/health");
    c.expect_query();
    rl_request_query_failed(c.req(), RL_DB_UNAVAILABLE, "no connection");
    EXPECT_EQ(c.expect_worker(), "{\"op\":\"ping\"}\n");
    c.reply(R"({"ok":true,"version":"0.1.0","queued":0,"running":0})");
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(
        r.body,
        R"({"status":"degraded","database":"unavailable","worker":"ok","detail":)"
        R"({"error_code":"DATABASE_UNAVAILABLE","message":"Database unavailable","retryable":true}})");
}

TEST(Health, WorkerDownOrBoth) {
    Core core;
    Call w(core, "GET", "/api/v1/health");
    w.expect_query();
    w.rows({{"1"}});
    w.expect_worker();
    rl_request_worker_failed(w.req(), "connect refused");
    Response r = w.expect_response();
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(
        r.body,
        R"({"status":"degraded","database":"ok","worker":"unavailable","detail":)"
        R"({"error_code":"QUEUE_UNAVAILABLE","message":"Worker unavailable","retryable":true}})");
    EXPECT_TRUE(w.logged(RL_LOG_ERR, "connect refused"));

    Call both(core, "GET", "/api/v1/health");
    both.expect_query();
    rl_request_query_result(both.req(), fatal_result());
    both.expect_worker();
    both.reply(R"({"ok":false,"error":"x"})");
    Response b = both.expect_response();
    EXPECT_EQ(b.status, 503);
    Json j = b.json();
    EXPECT_EQ(str(j.get(), "database"), "unavailable");
    EXPECT_EQ(str(j.get(), "worker"), "unavailable");
    EXPECT_EQ(str(json_object_get(j.get(), "detail"), "error_code"), "DATABASE_UNAVAILABLE");
    EXPECT_EQ(str(json_object_get(j.get(), "detail"), "message"),
              "Database and worker unavailable");
}

TEST(OpenApiEndpoint, ServesTheDocument) {
    Core core;
    Call c(core, "GET", "/api/v1/openapi.json");
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 200);
    Json j = r.json();
    EXPECT_EQ(str(j.get(), "openapi"), "3.0.3");
}
