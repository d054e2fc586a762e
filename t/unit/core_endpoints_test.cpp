// Config repos, clusters, templates and studies through the C API with
// fabricated results: statements and parameters asked for, JSON shapes, error
// mapping. Proposals and open_pr: core_proposals_test.

#include "api/handler.hpp"
#include "api/pagination.hpp"
#include "common/uuid.hpp"
#include "core_request_harness.hpp"

using namespace rltest;
using relyloop::Json;

namespace {

const char *kRepoBody =
    R"({"name":"shop-search","repo_url":"https://github.com/acme/shop-search.git","auth_ref":"gh-main"})";

// Drives a handler directly (the seam for statement failures that a
// fabricated PGresult cannot carry: it has no SQLSTATE).
relyloop::core::Action db_failure_of(const Core &core, relyloop::core::Endpoint e,
                                     const std::string &body_text, const char *sqlstate,
                                     const char *constraint, const std::string &id = "") {
    using namespace relyloop::core;
    static CoreConf conf;
    conf = {"development", core.secrets().path(), "https://github.com"};
    Context ctx(conf, "rid", id, "", nullptr, nullptr);
    ctx.set_body(body_text);
    auto h = make_handler(e);
    Action first = h->start(ctx);
    EXPECT_EQ(first.kind, Action::Kind::kQuery);
    DbFailure f;
    f.kind = DbFailure::Kind::kStatement;
    f.sqlstate = sqlstate;
    f.constraint = constraint;
    f.detail = "duplicate key value violates unique constraint";
    return h->on_db_error(ctx, f);
}

std::string message_of(const relyloop::core::Action &a) {
    json_error_t err;
    Json j(json_loadb(a.response.body.data(), a.response.body.size(), 0, &err));
    return str(json_object_get(j.get(), "detail"), "message");
}

}  // namespace

// ---- config repos -----------------------------------------------------------

TEST(ConfigRepoCreate, InsertsWithDefaults) {
    Core core;
    Call c(core, "POST", "/api/v1/config-repos", body(kRepoBody));
    EXPECT_TRUE(c.wants_body());
    Query q = c.expect_query();
    EXPECT_EQ(q.name, "rl_config_repo_insert");
    EXPECT_TRUE(q.isolated);
    ASSERT_EQ(q.params.size(), 8u);
    EXPECT_TRUE(relyloop::is_uuid(*q.params[0]));
    EXPECT_TRUE(relyloop::is_uuid(*q.params[7]));  // the webhook job's id
    EXPECT_NE(*q.params[7], *q.params[0]);
    EXPECT_EQ(q.params[1], "shop-search");
    EXPECT_EQ(q.params[2], "https://github.com/acme/shop-search.git");
    EXPECT_EQ(q.params[3], "main");
    EXPECT_EQ(q.params[4], "main");
    EXPECT_EQ(q.params[5], "gh-main");
    EXPECT_EQ(q.params[6], N);
    c.rows({config_repo_row(*q.params[0], "shop-search")});
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 201);
    Json j = r.json();
    EXPECT_EQ(keys(j.get()),
              (std::vector<std::string>{"id", "name", "provider", "repo_url", "default_branch",
                                        "pr_base_branch", "auth_ref", "webhook_secret_ref",
                                        "webhook_registration_error", "last_merged_proposal",
                                        "created_at"}));
}

TEST(ConfigRepoCreate, OptionalFields) {
    Core core;
    Call c(
        core, "POST", "/api/v1/config-repos",
        body(
            R"({"name":"r","repo_url":"https://github.com/a/b","auth_ref":"gh-main",)"
            R"("default_branch":"develop","pr_base_branch":"release/2026.05","webhook_secret_ref":"hook_1"})"));
    Query q = c.expect_query();
    EXPECT_EQ(q.params[3], "develop");
    EXPECT_EQ(q.params[4], "release/2026.05");
    EXPECT_EQ(q.params[6], "hook_1");
}

TEST(ConfigRepoCreate, BodyValidationComesFirst) {
    Core core;
    Call c(core, "POST", "/api/v1/config-repos",
           body(R"({"name":"Shop","repo_url":"https://gitlab.com/a/b","auth_ref":"no/pe",)"
                R"("default_branch":"-x","pr_base_branch":"a..b","provider":"github"})"));
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 422);
    EXPECT_EQ(r.message(),
              "Request validation failed: body.name: must match ^[a-z0-9][a-z0-9-]*$; "
              "body.default_branch: must be a valid git branch name matching "
              "^[A-Za-z0-9][A-Za-z0-9._/-]*$; body.pr_base_branch: must be a valid git branch "
              "name matching ^[A-Za-z0-9][A-Za-z0-9._/-]*$; body.auth_ref: must match "
              "^[A-Za-z0-9_-]+$; body.provider: extra fields not permitted");
    Call empty(core, "POST", "/api/v1/config-repos", body(""));
    EXPECT_EQ(empty.expect_response().message(), "Request validation failed: body: field required");
    Call bad(core, "POST", "/api/v1/config-repos", body("{\"name\":"));
    Response b = bad.expect_response();
    EXPECT_EQ(b.status, 422);
    EXPECT_TRUE(b.message().starts_with("Request validation failed: body: invalid JSON: "));
}

TEST(ConfigRepoCreate, OnlyGithubUrlsThenTheAuthRefFile) {
    Core core;
    Call gitlab(
        core, "POST", "/api/v1/config-repos",
        body(R"({"name":"r","repo_url":"https://gitlab.com/acme/shop","auth_ref":"missing"})"));
    Response r = gitlab.expect_response();
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.code(), "UNSUPPORTED_PROVIDER");
    EXPECT_FALSE(r.retryable());
    EXPECT_NE(r.message().find("GitLab"), std::string::npos);
    EXPECT_NE(r.message().find("Bitbucket"), std::string::npos);
    EXPECT_NE(r.message().find("https://github.com"), std::string::npos);

    Call missing(
        core, "POST", "/api/v1/config-repos",
        body(R"({"name":"r","repo_url":"https://github.com/acme/shop","auth_ref":"missing"})"));
    Response m = missing.expect_response();
    EXPECT_EQ(m.status, 400);
    EXPECT_EQ(m.code(), "AUTH_REF_NOT_FOUND");
    EXPECT_TRUE(m.retryable());
    EXPECT_NE(m.message().find("\"missing\""), std::string::npos);

    // An empty PAT file is still a file: the create goes on.
    Call empty(
        core, "POST", "/api/v1/config-repos",
        body(R"({"name":"r","repo_url":"https://github.com/acme/shop","auth_ref":"empty"})"));
    EXPECT_EQ(empty.expect_query().name, "rl_config_repo_insert");
}

TEST(ConfigRepoCreate, GithubEnterpriseWebUrl) {
    Core core("development", "", "https://ghe.example.com/");
    Call dotcom(core, "POST", "/api/v1/config-repos", body(kRepoBody));
    EXPECT_EQ(dotcom.expect_response().code(), "UNSUPPORTED_PROVIDER");
    Call ghe(
        core, "POST", "/api/v1/config-repos",
        body(
            R"({"name":"r","repo_url":"https://ghe.example.com/acme/shop","auth_ref":"gh-main"})"));
    EXPECT_EQ(ghe.expect_query().name, "rl_config_repo_insert");
}

TEST(ConfigRepoCreate, NameTakenIs409) {
    Core core;
    auto a = db_failure_of(core, relyloop::core::Endpoint::kConfigRepoCreate, kRepoBody, "23505",
                           "config_repos_name_key");
    EXPECT_EQ(a.response.status, 409);
    EXPECT_EQ(a.response.error_code, "CONFIG_REPO_NAME_TAKEN");
    EXPECT_EQ(message_of(a), "Config repo name \"shop-search\" is already taken");
    auto d =
        db_failure_of(core, relyloop::core::Endpoint::kConfigRepoCreate, kRepoBody, "08006", "");
    EXPECT_EQ(d.response.status, 503);
    EXPECT_EQ(message_of(d), "Database unavailable");
}

TEST(ConfigRepoList, PageOfLimitPlusOneRows) {
    Core core;
    Call c(core, "GET", "/api/v1/config-repos", args("limit=2"));
    Query q = c.expect_query();
    EXPECT_EQ(q.name, "rl_config_repo_list");
    EXPECT_EQ(q.params, (std::vector<Cell>{"3", N, N, N}));
    c.rows({concat({"7"}, config_repo_row("r3", "c", "2026-05-11 20:13:45+00")),
            concat({"7"}, config_repo_row("r2", "b", "2026-05-11 20:13:44.5+00")),
            concat({"7"}, config_repo_row("r1", "a", "2026-05-11 20:13:43+00"))});
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("X-Total-Count"), "7");
    Json j = r.json();
    EXPECT_EQ(keys(j.get()), (std::vector<std::string>{"data", "next_cursor", "has_more"}));
    EXPECT_EQ(json_array_size(json_object_get(j.get(), "data")), 2u);
    EXPECT_TRUE(json_is_true(json_object_get(j.get(), "has_more")));
    std::string cursor = str(j.get(), "next_cursor");
    auto decoded = relyloop::core::decode_list_cursor(cursor);
    ASSERT_TRUE(decoded);
    EXPECT_EQ(decoded->created_at, "2026-05-11T20:13:44.500000+00:00");
    EXPECT_EQ(decoded->id, "r2");

    // The cursor goes back as the keyset parameters.
    Call next(core, "GET", "/api/v1/config-repos",
              args("limit=2&cursor=" + cursor + "&since=2026-01-01T00:00:00Z"));
    Query q2 = next.expect_query();
    EXPECT_EQ(q2.params, (std::vector<Cell>{"3", "2026-05-11T20:13:44.500000+00:00", "r2",
                                            "2026-01-01T00:00:00+00:00"}));
    next.rows({concat({"7"}, config_repo_row("r1", "a"))});
    Json last = next.expect_response().json();
    EXPECT_FALSE(json_is_true(json_object_get(last.get(), "has_more")));
    EXPECT_TRUE(json_is_null(json_object_get(last.get(), "next_cursor")));
}

TEST(ConfigRepoList, EmptyPageStillCarriesTheCount) {
    Core core;
    Call c(core, "GET", "/api/v1/config-repos");
    EXPECT_EQ(c.expect_query().params[0], "51");
    c.rows({concat({"0"}, Row(10, N))});
    Response r = c.expect_response();
    EXPECT_EQ(r.body, R"({"data":[],"next_cursor":null,"has_more":false})");
    EXPECT_EQ(r.header("X-Total-Count"), "0");
}

TEST(ConfigRepoList, ExactlyLimitRowsHasNoMore) {
    Core core;
    Call c(core, "GET", "/api/v1/config-repos", args("limit=200"));
    EXPECT_EQ(c.expect_query().params[0], "201");
    std::vector<Row> rows;
    for (int i = 0; i < 200; i++) {
        rows.push_back(concat({"200"}, config_repo_row("r" + std::to_string(i), "n")));
    }
    c.rows(rows);
    Json j = c.expect_response().json();
    EXPECT_EQ(json_array_size(json_object_get(j.get(), "data")), 200u);
    EXPECT_FALSE(json_is_true(json_object_get(j.get(), "has_more")));
}

TEST(ConfigRepoList, BadQueryIs422WithoutAQuery) {
    Core core;
    Call c(core, "GET", "/api/v1/config-repos", args("limit=1e3&cursor=abc&since=x&unknown=1"));
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 422);
    EXPECT_EQ(r.message(),
              "Request validation failed: query.unknown: unknown parameter; query.limit: must be "
              "an integer; query.since: must be an RFC 3339 timestamp; query.cursor: invalid "
              "cursor");
    Call neg(core, "GET", "/api/v1/config-repos", args("limit=-1"));
    EXPECT_EQ(neg.expect_response().message(),
              "Request validation failed: query.limit: must be between 1 and 200");
}

// ---- clusters -----------------------------------------------------------------

TEST(ClusterCreate, InsertsAndRendersHealthCheck) {
    Core core;
    Call c(
        core, "POST", "/api/v1/clusters",
        body(
            R"({"name":"prod-es","engine_type":"elasticsearch","environment":"prod",)"
            R"("base_url":"https://es:9200","auth_kind":"es_apikey","credentials_ref":"es-prod",)"
            R"("config_repo_id":"r1","config_path":"search/params","engine_config":{"shards": 2, "x": [0.3]},"notes":"n"})"));
    Query q = c.expect_query();
    EXPECT_EQ(q.name, "rl_cluster_insert");
    EXPECT_TRUE(q.isolated);
    EXPECT_EQ(std::vector<Cell>(q.params.begin() + 1, q.params.end()),
              (std::vector<Cell>{"prod-es", "elasticsearch", "prod", "https://es:9200", "es_apikey",
                                 "es-prod", "r1", "search/params", R"({"shards":2,"x":[0.3]})", "n",
                                 N, "t", "t"}));
    c.rows({concat({"t"}, cluster_row(*q.params[0], "prod-es", Cell("r1")))});
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 201);
    Json j = r.json();
    EXPECT_EQ(keys(j.get()),
              (std::vector<std::string>{"id", "name", "engine_type", "environment", "base_url",
                                        "auth_kind", "credentials_ref", "config_repo_id",
                                        "config_path", "engine_config", "notes", "target_filter",
                                        "created_at", "health_check"}));
    EXPECT_NE(
        r.body.find(
            R"("health_check":{"status":"unknown","checked_at":null,"version":null,"error":null})"),
        std::string::npos);
    EXPECT_NE(r.body.find(R"("engine_config":{"shards":2})"), std::string::npos);
    EXPECT_EQ(r.body.find("deleted_at"), std::string::npos);
}

TEST(ClusterCreate, MinimalBodyAndMissingRepo) {
    Core core;
    const char *b =
        R"({"name":"c","engine_type":"opensearch","environment":"dev",)"
        R"("base_url":"http://os:9200","auth_kind":"opensearch_basic","credentials_ref":"x","config_repo_id":"gone"})";
    Call c(core, "POST", "/api/v1/clusters", body(b));
    Query q = c.expect_query();
    EXPECT_EQ(q.params[8], N);     // config_path
    EXPECT_EQ(q.params[9], N);     // engine_config
    EXPECT_EQ(q.params[10], N);    // notes
    EXPECT_EQ(q.params[11], N);    // target_filter
    EXPECT_EQ(q.params[12], "t");  // config_repo_id given
    EXPECT_EQ(q.params[13], "f");  // config_path given
    c.rows({concat({"f"}, Row(13, N))});
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(r.code(), "CONFIG_REPO_NOT_FOUND");
    EXPECT_EQ(r.message(), "Config repo \"gone\" not found");
}

TEST(ClusterCreate, Validation) {
    Core core;
    Call c(core, "POST", "/api/v1/clusters",
           body(R"({"name":"","engine_type":"solr","environment":"qa","base_url":"es:9200",)"
                R"("auth_kind":"basic","config_path":"../etc","engine_config":[1],"notes":""})"));
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 422);
    EXPECT_EQ(r.message(),
              "Request validation failed: body.name: must not be empty; body.environment: must "
              "be one of: prod, staging, dev; body.base_url: must use http or https scheme; "
              "body.credentials_ref: field required; body.engine_config: must be an object; "
              "body.config_path: must be a relative path of [A-Za-z0-9_./-] characters without "
              "'..' segments; body.notes: must not be empty");
}

TEST(ClusterCreate, NameTakenAndRepoRace) {
    Core core;
    const char *b =
        R"({"name":"prod","engine_type":"opensearch","environment":"dev",)"
        R"("base_url":"http://os","auth_kind":"opensearch_basic","credentials_ref":"x"})";
    auto taken = db_failure_of(core, relyloop::core::Endpoint::kClusterCreate, b, "23505",
                               "clusters_name_key");
    EXPECT_EQ(taken.response.error_code, "CLUSTER_NAME_TAKEN");
    EXPECT_EQ(message_of(taken), "name prod is already registered");
    auto race = db_failure_of(core, relyloop::core::Endpoint::kClusterCreate, b, "23503",
                              "clusters_config_repo_id_fkey");
    EXPECT_EQ(race.response.status, 404);
    EXPECT_EQ(race.response.error_code, "CONFIG_REPO_NOT_FOUND");
}

TEST(ClusterCreate, KindsAre400sInOrderAfterThe422s) {
    Core core;
    auto post = [&](const std::string &engine, const std::string &auth) {
        Call c(core, "POST", "/api/v1/clusters",
               body(R"({"name":"c","engine_type":")" + engine +
                    R"(","environment":"dev","base_url":"http://h","auth_kind":")" + auth +
                    R"(","credentials_ref":"x","config_repo_id":"gone"})"));
        return c.expect_response();
    };
    Response r = post("vespa", "nope");
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.code(), "ENGINE_NOT_SUPPORTED");
    EXPECT_EQ(r.message(),
              "engine_type must be one of: ['elasticsearch', 'opensearch', 'solr'] (got: 'vespa')");
    r = post("opensearch", "opensearch_sigv4");
    EXPECT_EQ(r.code(), "AUTH_KIND_NOT_SUPPORTED");
    EXPECT_EQ(r.message(), "'opensearch_sigv4' is reserved but not implemented in MVP1");
    r = post("solr", "es_basic");
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.message(),
              "auth_kind='es_basic' is not valid for engine_type='solr'; allowed for "
              "'solr': ['solr_basic', 'solr_apikey']");
    // A name held by an active cluster: the statement writes no row.
    Call c(core, "POST", "/api/v1/clusters",
           body(R"({"name":"c","engine_type":"solr","environment":"dev","base_url":"http://h",)"
                R"("auth_kind":"solr_apikey","credentials_ref":"x","target_filter":" a* "})"));
    Query q = c.expect_query();
    EXPECT_EQ(q.params[11], "a*");
    c.rows({concat({"t"}, Row(13, N))});
    r = c.expect_response();
    EXPECT_EQ(r.status, 409);
    EXPECT_EQ(r.code(), "CLUSTER_NAME_TAKEN");
}

TEST(ClusterDeleteAndProbe, DeleteIs204AndProbeIs501) {
    Core core;
    Call d(core, "DELETE", "/api/v1/clusters/c1");
    Query q = d.expect_query();
    EXPECT_EQ(q.name, "rl_cluster_delete");
    EXPECT_TRUE(q.isolated);
    d.rows({{"c1"}});
    Response r = d.expect_response();
    EXPECT_EQ(r.status, 204);
    EXPECT_TRUE(r.body.empty());
    Call gone(core, "DELETE", "/api/v1/clusters/c2");
    gone.expect_query();
    gone.rows({}, 1);
    r = gone.expect_response();
    EXPECT_EQ(r.code(), "CLUSTER_NOT_FOUND");
    EXPECT_EQ(r.message(), "cluster c2 not found");
    Call p(core, "POST", "/api/v1/clusters/test-connection",
           body(R"({"engine_type":"elasticsearch","base_url":"http://h","auth_kind":"es_basic",)"
                R"("credentials_ref":"x","engine_config":null})"));
    r = p.expect_response();
    EXPECT_EQ(r.status, 501);
    EXPECT_EQ(r.code(), "CLUSTER_PROBE_UNSUPPORTED");
}

TEST(ClusterGetAndList, SoftDeletedIsNotFoundAndListWorks) {
    Core core;
    Call g(core, "GET", "/api/v1/clusters/c1");
    EXPECT_EQ(g.expect_query().name, "rl_cluster_get");
    g.rows({}, 13);
    EXPECT_EQ(g.expect_response().code(), "CLUSTER_NOT_FOUND");
    Call l(core, "GET", "/api/v1/clusters", args("since=2026-05-01T00:00:00.5Z"));
    Query q = l.expect_query();
    EXPECT_EQ(q.name, "rl_cluster_list");
    EXPECT_EQ(q.params[3], "2026-05-01T00:00:00.5+00:00");
    l.rows({concat({"1"}, cluster_row("c1", "a"))});
    Json j = l.expect_response().json();
    EXPECT_EQ(json_array_size(json_object_get(j.get(), "data")), 1u);
}

TEST(ClusterPatch, SetsAndClears) {
    Core core;
    Call c(core, "PATCH", "/api/v1/clusters/c1",
           body(R"({"config_repo_id":"r1","config_path":null})"));
    EXPECT_TRUE(c.wants_body());
    Query q = c.expect_query();
    EXPECT_EQ(q.name, "rl_cluster_patch");
    EXPECT_TRUE(q.isolated);
    EXPECT_EQ(q.params, (std::vector<Cell>{"c1", "t", "r1", "t", N, "f", N}));
    c.rows({concat({"t", "t"}, cluster_row("c1", "a", Cell("r1")))});
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(str(r.json().get(), "config_repo_id"), "r1");
}

TEST(ClusterPatch, EmptyPatchReadsTheCluster) {
    Core core;
    for (const char *b : {"{}", ""}) {
        Call c(core, "PATCH", "/api/v1/clusters/c1", body(b));
        Query q = c.expect_query();
        EXPECT_EQ(q.name, "rl_cluster_get");
        EXPECT_FALSE(q.isolated);
        c.rows({cluster_row("c1", "a")});
        EXPECT_EQ(c.expect_response().status, 200);
    }
    Call gone(core, "PATCH", "/api/v1/clusters/c1", body("{}"));
    gone.expect_query();
    gone.rows({}, 13);
    EXPECT_EQ(gone.expect_response().code(), "CLUSTER_NOT_FOUND");
}

TEST(ClusterPatch, MissingClusterOrRepo) {
    Core core;
    struct Case {
        Row flags;
        const char *code;
    };
    for (const Case &k :
         {Case{{"f", "f"}, "CLUSTER_NOT_FOUND"}, Case{{"t", "f"}, "CONFIG_REPO_NOT_FOUND"},
          Case{{"t", "t"}, "CLUSTER_NOT_FOUND"}}) {
        Call c(core, "PATCH", "/api/v1/clusters/c1", body(R"({"config_repo_id":"r9"})"));
        c.expect_query();
        c.rows({concat(k.flags, Row(13, N))});
        Response r = c.expect_response();
        EXPECT_EQ(r.status, 404);
        EXPECT_EQ(r.code(), k.code);
    }
}

TEST(ClusterPatch, Validation) {
    Core core;
    Call c(core, "PATCH", "/api/v1/clusters/c1",
           body(R"({"config_repo_id":"","config_path":"/abs","notes":5,"name":"x"})"));
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 422);
    EXPECT_EQ(r.message(),
              "Request validation failed: body.config_repo_id: must not be empty; "
              "body.config_path: must be a relative path of [A-Za-z0-9_./-] characters without "
              "'..' segments; body.notes: must be a string; body.name: extra fields not permitted");
}

// ---- templates ------------------------------------------------------------------

TEST(TemplateCreate, InsertsWithVersionOne) {
    Core core;
    Call c(
        core, "POST", "/api/v1/query-templates",
        body(
            R"({"name":"products.match_v2","engine_type":"opensearch","body":"{\"q\":1}",)"
            R"("declared_params":{"title.boost":{"type":"float","min":0.1,"max":10},"op":"categorical"}})"));
    Query q = c.expect_query();
    EXPECT_EQ(q.name, "rl_template_insert");
    EXPECT_EQ(
        std::vector<Cell>(q.params.begin() + 1, q.params.end()),
        (std::vector<Cell>{
            "products.match_v2", "opensearch", "{\"q\":1}",
            R"({"title.boost":{"type":"float","min":0.1,"max":10},"op":"categorical"})", "1", N}));
    c.rows({concat({"t"}, template_row(*q.params[0], "products.match_v2"))});
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 201);
    EXPECT_EQ(keys(r.json().get()),
              (std::vector<std::string>{"id", "name", "engine_type", "body", "declared_params",
                                        "version", "parent_id", "created_at"}));
    EXPECT_NE(r.body.find("\"version\":1"), std::string::npos);
}

TEST(TemplateCreate, ParentMustExist) {
    Core core;
    Call c(
        core, "POST", "/api/v1/query-templates",
        body(
            R"({"name":"t","engine_type":"opensearch","body":"b","declared_params":{},"version":3,"parent_id":"p0"})"));
    Query q = c.expect_query();
    EXPECT_EQ(q.params[5], "3");
    EXPECT_EQ(q.params[6], "p0");
    c.rows({concat({"f"}, Row(8, N))});
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(r.code(), "TEMPLATE_NOT_FOUND");
    EXPECT_EQ(r.message(), "Parent template \"p0\" not found");
}

TEST(TemplateCreate, ValidationAndConflict) {
    Core core;
    Call c(
        core, "POST", "/api/v1/query-templates",
        body(
            R"({"name":"../x","engine_type":"opensearch","body":"","declared_params":{"a":{"type":"categorical","values":[]}}})"));
    Response r = c.expect_response();
    EXPECT_EQ(r.message(),
              "Request validation failed: body.name: must match ^[A-Za-z0-9][A-Za-z0-9 ._-]*$; "
              "body.body: must not be empty; body.declared_params.a.values: must not be empty");
    Call m(core, "POST", "/api/v1/query-templates", body("{}"));
    EXPECT_EQ(m.expect_response().message(),
              "Request validation failed: body.name: field required; body.engine_type: field "
              "required; body.body: field required; body.declared_params: field required");
    auto a = db_failure_of(
        core, relyloop::core::Endpoint::kTemplateCreate,
        R"({"name":"t","engine_type":"opensearch","body":"b","declared_params":{},"version":2})",
        "23505", "query_templates_name_version_key");
    EXPECT_EQ(a.response.error_code, "TEMPLATE_NAME_TAKEN");
    EXPECT_EQ(message_of(a), "Template \"t\" version 2 already exists");
}

TEST(TemplateList, EngineTypeFilter) {
    Core core;
    Call c(core, "GET", "/api/v1/query-templates", args("engine_type=opensearch"));
    Query q = c.expect_query();
    EXPECT_EQ(q.name, "rl_template_list");
    EXPECT_EQ(q.params, (std::vector<Cell>{"51", N, N, N, "opensearch"}));
    Call solr(core, "GET", "/api/v1/query-templates", args("engine_type=solr"));
    EXPECT_EQ(solr.expect_query().params, (std::vector<Cell>{"51", N, N, N, "solr"}));
    Call bad(core, "GET", "/api/v1/query-templates", args("engine_type=vespa"));
    EXPECT_EQ(bad.expect_response().message(),
              "Request validation failed: query.engine_type: must be one of: elasticsearch, "
              "opensearch, solr");
    Call sorted(core, "GET", "/api/v1/query-templates", args("sort=version:asc&q=products"));
    Query sq = sorted.expect_query();
    EXPECT_EQ(sq.name, "rl_template_list_sorted");
    EXPECT_EQ(sq.params, (std::vector<Cell>{"51", N, N, N, "version", "asc", N, N, "products", N}));
    Call ranked(core, "GET", "/api/v1/query-templates", args("q=products&limit=1"));
    Query rq = ranked.expect_query();
    EXPECT_EQ(rq.params, (std::vector<Cell>{"2", N, N, N, "rank", "desc", N, N, "products", N}));
    // total, keys (timestamp, text, number), Template
    ranked.rows({concat({"5", N, N, "1500"}, template_row("t1", "a")),
                 concat({"5", N, N, "900"}, template_row("t2", "b"))});
    Json j = ranked.expect_response().json();
    std::string cursor = str(j.get(), "next_cursor");
    EXPECT_EQ(*relyloop::core::base64url_decode(cursor), R"(["1500","t1","rank:desc"])");
    Call next(core, "GET", "/api/v1/query-templates", args("q=products&cursor=" + cursor));
    EXPECT_EQ(next.expect_query().params,
              (std::vector<Cell>{"51", N, "t1", N, "rank", "desc", N, "1500", "products", N}));
    Call other(core, "GET", "/api/v1/query-templates",
               args("q=products&sort=name:asc&cursor=" + cursor));
    EXPECT_EQ(other.expect_response().message(),
              "Request validation failed: query.cursor: invalid cursor: issued for sort rank:desc");
    Call short_q(core, "GET", "/api/v1/query-templates", args("q=x"));
    EXPECT_EQ(short_q.expect_response().message(),
              "Request validation failed: query.q: must be between 2 and 200 characters");
    Call get(core, "GET", "/api/v1/query-templates/t1");
    EXPECT_EQ(get.expect_query().name, "rl_template_get");
    get.rows({}, 8);
    EXPECT_EQ(get.expect_response().code(), "TEMPLATE_NOT_FOUND");
}

// ---- studies --------------------------------------------------------------------

TEST(StudyGet, ShapeWithTrialsSummary) {
    Core core;
    Call c(core, "GET", "/api/v1/studies/s1");
    EXPECT_EQ(c.expect_query().name, "rl_study_get");
    c.rows({study_row("s1")});
    Response r = c.expect_response();
    Json j = r.json();
    EXPECT_EQ(keys(j.get()), (std::vector<std::string>{"id",
                                                       "name",
                                                       "cluster_id",
                                                       "target",
                                                       "template_id",
                                                       "query_set_id",
                                                       "judgment_list_id",
                                                       "search_space",
                                                       "objective",
                                                       "config",
                                                       "status",
                                                       "failed_reason",
                                                       "optuna_study_name",
                                                       "parent_study_id",
                                                       "baseline_metric",
                                                       "baseline_trial_id",
                                                       "best_metric",
                                                       "best_trial_id",
                                                       "created_at",
                                                       "started_at",
                                                       "completed_at",
                                                       "trials_summary",
                                                       "confidence",
                                                       "convergence"}));
    EXPECT_NE(
        r.body.find(R"("baseline_metric":0.412,"baseline_trial_id":null,"best_metric":0.487)"),
        std::string::npos);
    EXPECT_NE(r.body.find(R"("trials_summary":{"total":3,"complete":2,"failed":1,"pruned":0,)"
                          R"("best_primary_metric":0.487},"confidence":null,"convergence":null})"),
              std::string::npos);
    EXPECT_NE(r.body.find(R"("objective":{"metric":"ndcg@10"})"), std::string::npos);
}

TEST(StudyList, Filters) {
    Core core;
    Call c(core, "GET", "/api/v1/studies", args("status=running&cluster_id=c%201&since="));
    Query q = c.expect_query();
    EXPECT_EQ(q.name, "rl_study_list");
    EXPECT_EQ(q.params, (std::vector<Cell>{"51", N, N, N, "running", "c 1", N}));
    Call t(core, "GET", "/api/v1/studies", args("target=products&sort=best_metric:desc"));
    Query tq = t.expect_query();
    EXPECT_EQ(tq.name, "rl_study_list_sorted");
    EXPECT_EQ(tq.params,
              (std::vector<Cell>{"51", N, N, N, "best_metric", "desc", N, N, N, N, N, "products"}));
    Call bad(core, "GET", "/api/v1/studies", args("status=done"));
    EXPECT_EQ(bad.expect_response().message(),
              "Request validation failed: query.status: must be one of: queued, running, "
              "completed, cancelled, failed");
}

TEST(TrialList, DefaultSortAndCursor) {
    Core core;
    Call c(core, "GET", "/api/v1/studies/s1/trials", args("limit=2"));
    Query q = c.expect_query();
    EXPECT_EQ(q.name, "rl_trial_list_metric_desc");
    EXPECT_EQ(q.params, (std::vector<Cell>{"s1", "3", N, N, N}));
    c.rows({concat({"t", "9"}, trial_row("a", Cell("0.5"))),
            concat({"t", "9"}, trial_row("b", Cell("NaN"))),
            concat({"t", "9"}, trial_row("c", N))});
    Response r = c.expect_response();
    EXPECT_EQ(r.header("X-Total-Count"), "9");
    Json j = r.json();
    const json_t *data = json_object_get(j.get(), "data");
    ASSERT_EQ(json_array_size(data), 2u);
    EXPECT_EQ(keys(json_array_get(data, 0)),
              (std::vector<std::string>{"id", "study_id", "optuna_trial_number", "params",
                                        "primary_metric", "metrics", "duration_ms", "status",
                                        "error", "started_at", "ended_at", "is_baseline"}));
    EXPECT_TRUE(json_is_null(json_object_get(json_array_get(data, 1), "primary_metric")));
    std::string cursor = str(j.get(), "next_cursor");
    // The cursor keeps PostgreSQL's text of the key, NaN included.
    EXPECT_EQ(*relyloop::core::base64url_decode(cursor), R"(["primary_metric_desc","NaN","b"])");

    Call next(core, "GET", "/api/v1/studies/s1/trials", args("limit=2&cursor=" + cursor));
    EXPECT_EQ(next.expect_query().params, (std::vector<Cell>{"s1", "3", "NaN", "b", N}));

    Call other(core, "GET", "/api/v1/studies/s1/trials",
               args("sort=primary_metric_asc&cursor=" + cursor));
    Response o = other.expect_response();
    EXPECT_EQ(o.status, 422);
    EXPECT_EQ(o.message(), "Request validation failed: query.cursor: invalid cursor");
}

TEST(TrialList, OtherSortsAndNullKeys) {
    Core core;
    Call asc(core, "GET", "/api/v1/studies/s1/trials", args("sort=primary_metric_asc&limit=1"));
    EXPECT_EQ(asc.expect_query().name, "rl_trial_list_metric_asc");
    asc.rows({concat({"t", "2"}, trial_row("a", N)), concat({"t", "2"}, trial_row("b", N))});
    Json j = asc.expect_response().json();
    EXPECT_EQ(*relyloop::core::base64url_decode(str(j.get(), "next_cursor")),
              R"(["primary_metric_asc",null,"a"])");

    Call num(core, "GET", "/api/v1/studies/s1/trials",
             args("sort=optuna_trial_number_asc&limit=1"));
    EXPECT_EQ(num.expect_query().name, "rl_trial_list_number_asc");
    num.rows({concat({"t", "2"}, trial_row("a", Cell("0.1"), "4")),
              concat({"t", "2"}, trial_row("b", Cell("0.2"), "5"))});
    Json n = num.expect_response().json();
    std::string cursor = str(n.get(), "next_cursor");
    EXPECT_EQ(*relyloop::core::base64url_decode(cursor), R"(["optuna_trial_number_asc",4,"a"])");
    Call again(core, "GET", "/api/v1/studies/s1/trials",
               args("sort=optuna_trial_number_asc&cursor=" + cursor));
    EXPECT_EQ(again.expect_query().params, (std::vector<Cell>{"s1", "51", "4", "a", N}));

    Call ended(core, "GET", "/api/v1/studies/s1/trials",
               args("sort=ended_at_desc&limit=1&since=2026-01-01T00:00:00Z"));
    Query eq = ended.expect_query();
    EXPECT_EQ(eq.name, "rl_trial_list_ended_desc");
    EXPECT_EQ(eq.params[4], "2026-01-01T00:00:00+00:00");
    ended.rows({concat({"t", "2"}, trial_row("a", N)), concat({"t", "2"}, trial_row("b", N))});
    Json e = ended.expect_response().json();
    std::string ec = str(e.get(), "next_cursor");
    Call eagain(core, "GET", "/api/v1/studies/s1/trials", args("sort=ended_at_desc&cursor=" + ec));
    EXPECT_EQ(eagain.expect_query().name, "rl_trial_list_ended_desc");
    Call eother(core, "GET", "/api/v1/studies/s1/trials", args("sort=ended_at_asc&cursor=" + ec));
    EXPECT_EQ(eother.expect_response().status, 422);
    Call unknown(core, "GET", "/api/v1/studies/s1/trials", args("status=complete"));
    EXPECT_EQ(unknown.expect_response().message(),
              "Request validation failed: query.status: unknown parameter");
}

TEST(TrialList, UnknownStudyAndBadSort) {
    Core core;
    Call c(core, "GET", "/api/v1/studies/s9/trials");
    c.expect_query();
    c.rows({concat({"f", "0"}, Row(12, N))});
    Response r = c.expect_response();
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(r.code(), "STUDY_NOT_FOUND");
    Call bad(core, "GET", "/api/v1/studies/s1/trials", args("sort=id&cursor=zzz"));
    EXPECT_EQ(bad.expect_response().message(),
              "Request validation failed: query.sort: must be one of: primary_metric_desc, "
              "primary_metric_asc, optuna_trial_number_asc, ended_at_desc, ended_at_asc");
}

TEST(StudyCancel, Transitions) {
    Core core;
    Call missing(core, "POST", "/api/v1/studies/s1/cancel");
    Query q = missing.expect_query();
    EXPECT_EQ(q.name, "rl_study_cancel");
    EXPECT_TRUE(q.isolated);
    missing.rows({concat({N}, Row(40, N))});
    EXPECT_EQ(missing.expect_response().code(), "STUDY_NOT_FOUND");

    Call done(core, "POST", "/api/v1/studies/s1/cancel", body("{}"));
    done.expect_query();
    done.rows({concat({"completed"}, Row(40, N))});
    Response r = done.expect_response();
    EXPECT_EQ(r.status, 409);
    EXPECT_EQ(r.code(), "INVALID_STATE_TRANSITION");
    EXPECT_EQ(r.message(),
              "Study \"s1\" is completed; only queued or running studies can be cancelled");

    Call ok(core, "POST", "/api/v1/studies/s1/cancel");
    ok.expect_query();
    ok.rows({concat({"running"}, study_row("s1", "cancelled"))});
    Response o = ok.expect_response();
    EXPECT_EQ(o.status, 200);
    EXPECT_EQ(str(o.json().get(), "status"), "cancelled");

    Call bad(core, "POST", "/api/v1/studies/s1/cancel", body("[]"));
    EXPECT_EQ(bad.expect_response().status, 422);

    Call raced(core, "POST", "/api/v1/studies/s1/cancel");
    raced.expect_query();
    raced.rows({concat({"running"}, Row(40, N))});
    EXPECT_EQ(raced.expect_response().message(),
              "Study \"s1\" is no longer queued or running; only queued or running studies can "
              "be cancelled");
}

TEST(Digest, NotFoundNotReadyAndShape) {
    Core core;
    Call s(core, "GET", "/api/v1/studies/s1/digest");
    EXPECT_EQ(s.expect_query().name, "rl_digest_get");
    s.rows({concat({"f", N}, Row(8, N))});
    EXPECT_EQ(s.expect_response().code(), "STUDY_NOT_FOUND");

    Call n(core, "GET", "/api/v1/studies/s1/digest");
    n.expect_query();
    n.rows({concat({"t", "completed"}, Row(8, N))});
    Response r = n.expect_response();
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(r.code(), "DIGEST_NOT_READY");
    EXPECT_EQ(r.message(), "digest for study s1 has not been written yet");
    EXPECT_TRUE(r.retryable());

    Call run(core, "GET", "/api/v1/studies/s1/digest");
    run.expect_query();
    run.rows({concat({"t", "running"}, digest_row("d1", "s1"))});
    Response rr = run.expect_response();
    EXPECT_EQ(rr.code(), "DIGEST_NOT_READY");
    EXPECT_EQ(rr.message(),
              "study is in status 'running'; digest is only available on completed studies");

    Call d(core, "GET", "/api/v1/studies/s1/digest");
    d.expect_query();
    d.rows({concat({"t", "completed"}, digest_row("d1", "s1"))});
    Response ok = d.expect_response();
    EXPECT_EQ(
        ok.body,
        R"({"id":"d1","study_id":"s1","narrative":"narrative","parameter_importance":{"title.boost":1.0},)"
        R"("recommended_config":{"title.boost":2.5},"suggested_followups":)"
        R"([{"kind":"text","rationale":"a","search_space":null},)"
        R"({"kind":"text","rationale":"b","search_space":null}],)"
        R"("generated_by":"local:e2e_seed","generated_at":"2026-05-11T20:13:43.000000+00:00"})");
}
