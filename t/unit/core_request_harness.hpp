#pragma once

// Drives requests through the C API of relyloop/core.h the way the shim
// does, with fabricated PGresults and scripted worker replies. Included by
// exactly one test file per executable.

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/raii.hpp"
#include "relyloop/core.h"

namespace rltest {

using Cell = std::optional<std::string>;
using Row = std::vector<Cell>;
inline const Cell N = std::nullopt;  // SQL NULL

// A PGRES_TUPLES_OK result with text columns.
inline PGresult *result(const std::vector<Row> &rows, int ncols = -1) {
    if (ncols < 0) {
        ncols = rows.empty() ? 0 : static_cast<int>(rows[0].size());
    }
    PGresult *r = PQmakeEmptyPGresult(nullptr, PGRES_TUPLES_OK);
    std::vector<std::string> names;
    for (int i = 0; i < ncols; i++) {
        names.push_back("c" + std::to_string(i));
    }
    std::vector<PGresAttDesc> attrs(static_cast<size_t>(ncols));
    for (int i = 0; i < ncols; i++) {
        attrs[i].name = names[i].data();
        attrs[i].typid = 25;
        attrs[i].typlen = -1;
        attrs[i].atttypmod = -1;
    }
    if (ncols > 0) {
        EXPECT_TRUE(PQsetResultAttrs(r, ncols, attrs.data()));
    }
    for (size_t i = 0; i < rows.size(); i++) {
        EXPECT_EQ(static_cast<int>(rows[i].size()), ncols);
        for (int j = 0; j < ncols && j < static_cast<int>(rows[i].size()); j++) {
            const Cell &c = rows[i][j];
            char empty = '\0';
            EXPECT_TRUE(PQsetvalue(r, static_cast<int>(i), j,
                                   c ? const_cast<char *>(c->c_str()) : &empty,
                                   c ? static_cast<int>(c->size()) : -1));
        }
    }
    return r;
}

inline PGresult *fatal_result() { return PQmakeEmptyPGresult(nullptr, PGRES_FATAL_ERROR); }

// A row of `n` cells after a prefix.
inline Row concat(Row a, const Row &b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

struct Logged {
    rl_log_level_t level;
    std::string msg;
};

// A temporary secrets directory: "gh-main" holds a token, "empty" nothing.
class SecretsDir {
  public:
    SecretsDir() {
        char tmpl[] = "/tmp/rl-core-test-XXXXXX";
        char *d = mkdtemp(tmpl);
        EXPECT_NE(d, nullptr);
        path_ = d != nullptr ? d : "/nonexistent";
        write("gh-main", "ghp_" + std::string(36, 'A') + "\n");
        write("empty", "  \n");
    }
    ~SecretsDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    void write(const std::string &name, const std::string &content) const {
        FILE *f = std::fopen((path_ + "/" + name).c_str(), "w");
        ASSERT_NE(f, nullptr);
        std::fputs(content.c_str(), f);
        std::fclose(f);
    }
    [[nodiscard]] const std::string &path() const { return path_; }

  private:
    std::string path_;
};

class Core {
  public:
    explicit Core(const char *environment = "development", const std::string &secrets = "",
                  const char *web_url = "https://github.com") {
        secrets_path_ = secrets.empty() ? secrets_.path() : secrets;
        conf_ = {environment, secrets_path_.c_str(), web_url};
        EXPECT_EQ(rl_core_new(&core_, &conf_), RL_OK);
    }
    ~Core() { rl_core_free(core_); }
    Core(const Core &) = delete;
    Core &operator=(const Core &) = delete;

    [[nodiscard]] rl_core_t *get() const { return core_; }
    [[nodiscard]] const SecretsDir &secrets() const { return secrets_; }

  private:
    SecretsDir secrets_;
    std::string secrets_path_;
    rl_core_conf_t conf_{};
    rl_core_t *core_ = nullptr;
};

struct Response {
    int status = 0;
    std::map<std::string, std::string> headers;
    std::vector<std::string> header_order;
    std::string body;

    [[nodiscard]] std::string header(const std::string &name) const {
        auto it = headers.find(name);
        return it == headers.end() ? "<absent>" : it->second;
    }
    [[nodiscard]] relyloop::Json json() const {
        json_error_t err;
        relyloop::Json j(json_loadb(body.data(), body.size(), JSON_REJECT_DUPLICATES, &err));
        EXPECT_TRUE(j) << "not JSON: " << body;
        return j;
    }
    [[nodiscard]] std::string code() const {
        relyloop::Json j = json();
        const json_t *c = json_object_get(json_object_get(j.get(), "detail"), "error_code");
        return json_is_string(c) ? json_string_value(c) : "<none>";
    }
    [[nodiscard]] std::string message() const {
        relyloop::Json j = json();
        const json_t *c = json_object_get(json_object_get(j.get(), "detail"), "message");
        return json_is_string(c) ? json_string_value(c) : "<none>";
    }
    [[nodiscard]] bool retryable() const {
        relyloop::Json j = json();
        return json_is_true(json_object_get(json_object_get(j.get(), "detail"), "retryable"));
    }
};

struct Query {
    std::string name;
    std::vector<Cell> params;
    bool isolated = false;
};

struct Options {
    std::string args;
    std::optional<std::string> body;  // set only when the request wants one
    std::string request_id;
    std::string origin;
    bool cors_enabled = false;
    bool cors_allowed = false;
    int http_error = 0;  // reached through error_page
    // Content-Type; unset: application/json when there is a body
    std::optional<std::string> content_type;
    std::optional<bool> has_body;  // unset: a non-empty body
};

// One request in flight.
class Call {
  public:
    Call(const Core &core, std::string method, std::string path, Options o = {})
        : method_(std::move(method)), path_(std::move(path)), opts_(std::move(o)) {
        rl_http_request_t in{};
        in.method = {method_.data(), method_.size()};
        in.raw_path = {path_.data(), path_.size()};
        in.args = {opts_.args.data(), opts_.args.size()};
        in.request_id = {opts_.request_id.data(), opts_.request_id.size()};
        in.origin = {opts_.origin.data(), opts_.origin.size()};
        in.cors_enabled = opts_.cors_enabled ? 1 : 0;
        in.cors_allowed = opts_.cors_allowed ? 1 : 0;
        in.http_error = opts_.http_error;
        if (!opts_.content_type && opts_.body) {
            opts_.content_type = "application/json";
        }
        if (opts_.content_type) {
            in.content_type = {opts_.content_type->data(), opts_.content_type->size()};
        }
        in.has_body = opts_.has_body.value_or(opts_.body && !opts_.body->empty()) ? 1 : 0;
        EXPECT_EQ(rl_request_new(&req_, core.get(), &in, &Call::log_cb, this), RL_OK);
        wants_body_ = rl_request_wants_body(req_) != 0;
        if (wants_body_ && opts_.body) {
            rl_request_set_body(req_, opts_.body->data(), opts_.body->size());
        }
    }
    ~Call() { rl_request_free(req_); }
    Call(const Call &) = delete;
    Call &operator=(const Call &) = delete;

    [[nodiscard]] rl_request_t *req() const { return req_; }
    [[nodiscard]] bool wants_body() const { return wants_body_; }
    [[nodiscard]] const std::vector<Logged> &logs() const { return logs_; }

    [[nodiscard]] bool logged(rl_log_level_t level, const std::string &part) const {
        for (const Logged &l : logs_) {
            if (l.level == level && l.msg.find(part) != std::string::npos) {
                return true;
            }
        }
        return false;
    }

    rl_step_t step() {
        rl_step_t s;
        std::memset(&s, 0xab, sizeof s);
        EXPECT_EQ(rl_request_step(req_, &s), RL_OK);
        return s;
    }

    // The next step must be a query; returns it.
    Query expect_query() {
        rl_step_t s = step();
        Query q;
        EXPECT_EQ(s.kind, RL_STEP_QUERY);
        if (s.kind != RL_STEP_QUERY) {
            return q;
        }
        const rl_statement_t *table = nullptr;
        size_t n = rl_core_statements(&table);
        EXPECT_GE(s.stmt, 0);
        EXPECT_LT(static_cast<size_t>(s.stmt), n);
        q.name = table[s.stmt].name;
        EXPECT_EQ(s.nparams, table[s.stmt].nparams) << q.name;
        for (int i = 0; i < s.nparams; i++) {
            q.params.push_back(s.param_values[i] != nullptr ? Cell(s.param_values[i]) : N);
        }
        q.isolated = s.isolated != 0;
        return q;
    }

    // The next step must be a worker line; returns it.
    std::string expect_worker() {
        rl_step_t s = step();
        EXPECT_EQ(s.kind, RL_STEP_WORKER);
        if (s.kind != RL_STEP_WORKER) {
            return "";
        }
        return std::string(s.line.data, s.line.len);
    }

    // The next step must be the response.
    Response expect_response() {
        rl_step_t s = step();
        Response r;
        EXPECT_EQ(s.kind, RL_STEP_RESPOND);
        if (s.kind != RL_STEP_RESPOND) {
            return r;
        }
        r.status = s.status;
        for (size_t i = 0; i < s.nheaders; i++) {
            std::string name(s.headers[i].name.data, s.headers[i].name.len);
            std::string value(s.headers[i].value.data, s.headers[i].value.len);
            EXPECT_EQ(r.headers.count(name), 0u) << "duplicate header " << name;
            r.headers[name] = value;
            r.header_order.push_back(name);
        }
        r.body.assign(s.body.data != nullptr ? s.body.data : "", s.body.len);
        if (!r.body.empty()) {
            EXPECT_EQ(r.header("Content-Type"), "application/json");
        }
        EXPECT_NE(r.header("X-Request-ID"), "<absent>");
        return r;
    }

    void rows(const std::vector<Row> &rows, int ncols = -1) {
        rl_request_query_result(req_, result(rows, ncols));
    }
    void reply(const std::string &line) { rl_request_worker_reply(req_, line.data(), line.size()); }

  private:
    static void log_cb(rl_log_level_t level, const char *msg, size_t len, void *data) {
        static_cast<Call *>(data)->logs_.push_back({level, std::string(msg, len)});
    }

    std::string method_;
    std::string path_;
    Options opts_;
    rl_request_t *req_ = nullptr;
    bool wants_body_ = false;
    std::vector<Logged> logs_;
};

inline Options body(std::string b) {
    Options o;
    o.body = std::move(b);
    return o;
}

inline Options args(std::string a) {
    Options o;
    o.args = std::move(a);
    return o;
}

// Keys of a JSON object, in order.
inline std::vector<std::string> keys(const json_t *obj) {
    std::vector<std::string> k;
    const char *key;
    json_t *v;
    json_object_foreach(const_cast<json_t *>(obj), key, v) { k.emplace_back(key); }
    return k;
}

inline std::string str(const json_t *obj, const char *key) {
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : (v == nullptr ? "<absent>" : "<not string>");
}

// Fabricated layouts of db/statements.cpp.
inline Row config_repo_row(const std::string &id, const std::string &name,
                           const std::string &created = "2026-05-11 20:13:43.123456+00") {
    return {id, name, "github", "https://github.com/acme/" + name, "main", "main", "gh-main",
            N,  N,    created};
}

// GET /config-repos/{id}: the ConfigRepo, then the last merged proposal's
// summary (NULLs: none).
inline Row config_repo_detail_row(const std::string &id, const std::string &name) {
    return concat(config_repo_row(id, name), Row(16, N));
}

inline Row cluster_row(const std::string &id, const std::string &name, const Cell &repo = N,
                       const std::string &created = "2026-05-11 20:13:43+00") {
    return {id,
            name,
            "elasticsearch",
            "prod",
            "https://es:9200",
            "es_apikey",
            "es-prod",
            repo,
            repo ? Cell("search/params") : N,
            Cell(R"({"shards": 2})"),
            N,
            created,
            N};
}

inline Row template_row(const std::string &id, const std::string &name,
                        const std::string &created = "2026-05-11 20:13:43+00") {
    return {id,  name, "opensearch", "{\"q\": 1}", Cell(R"({"title.boost": "float"})"),
            "1", N,    created};
}

inline Row study_row(const std::string &id, const std::string &status = "completed",
                     const std::string &created = "2026-05-11 20:13:43+00") {
    return {id, "study-1", "c1", "products", "t1", "qs1", "jl1", "{}", R"({"metric": "ndcg@10"})",
            "{}", status, N, "opt-" + id, N, "0.412", "0.487", "tr1", created, N, N, N, "3", "2",
            "1", "0", "0.487", "maximize",
            // analytics inputs (common/analytics.hpp): no winner, no series
            status, R"({"metric": "ndcg@10"})", "0.487", "f", N, N, N, "f", N, "f", N, "[]", "{}"};
}

inline Row trial_row(const std::string &id, const Cell &metric, const std::string &number = "1") {
    return {id,
            "s1",
            number,
            R"({"title.boost": 2.5})",
            metric,
            R"({"ndcg@10": 0.487})",
            "1840",
            "complete",
            N,
            "2026-05-11 20:13:43+00",
            "2026-05-11 20:14:43+00",
            "f"};
}

inline Row digest_row(const std::string &id, const std::string &study) {
    return {id,
            study,
            "narrative",
            R"({"title.boost": 1.0})",
            R"({"title.boost": 2.5})",
            R"(["a", "b"])",
            "local:e2e_seed",
            "2026-05-11 20:13:43+00"};
}

inline Row proposal_summary_row(const std::string &id, const Cell &study = Cell("s1"),
                                const std::string &status = "pending",
                                const std::string &created = "2026-05-11 20:13:43+00") {
    return {id,
            study,
            "c1",
            "prod-es",
            "elasticsearch",
            "prod",
            "t1",
            "products",
            "2",
            "elasticsearch",
            status,
            N,
            N,
            Cell(R"({"ndcg@10": {"achieved": 0.487}})"),
            created,
            "f"};
}

// Detail: summary + study_summary (11) + 5 + digest + pr_job (all NULL when empty).
inline Row proposal_detail_row(const std::string &id, bool with_study, bool with_job) {
    Row r = proposal_summary_row(id, with_study ? Cell("s1") : N);
    if (with_study) {
        r = concat(r, {"s1", "study-1", "completed", "0.487", "tr1", "qs1", "qs-1", "12", "jl1",
                       "jl-1", "complete"});
    } else {
        r = concat(r, Row(11, N));
    }
    r = concat(
        r, {with_study ? Cell("tr1") : N, R"({"title.boost": {"to": 2.5, "from": 1.0}})", N, N, N});
    r = concat(r, with_study ? digest_row("d1", "s1") : Row(8, N));
    if (with_job) {
        r = concat(r, {"running", "1", "claimed", N, "2026-05-11 20:13:43+00",
                       "2026-05-11 20:13:44+00", N});
    } else {
        r = concat(r, Row(7, N));
    }
    return r;
}

}  // namespace rltest
