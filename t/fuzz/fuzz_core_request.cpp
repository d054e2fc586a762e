// libFuzzer target: the core's C API (src/core/include/relyloop/core.h),
// driven the way the nginx shim drives it, with the database and the worker
// answered from the input.
//
// Input (seeds are readable text):
//   "<METHOD> <path>[?<args>]\n<body>[\0<answers>]"
// <answers> is a byte program consumed by each RL_STEP_QUERY / RL_STEP_WORKER
// (docs/testing.md): for a query, b % 4 = 0 no rows, 1 one row whose 40
// cells each take a byte (an index into a table of typical values, or NULL),
// 2 a failed statement, 3 the connection failing; for the worker, b % 3 = 0 a
// well-formed enqueue reply, 1 a failure, 2 a line made of the next bytes.
// When the program runs out: no rows / a well-formed reply.
//
// Properties: every request ends in one response within 256 steps; the
// status is 200..599; a body is JSON unless a fabricated row fed it (the core
// copies jsonb columns through as PostgreSQL printed them, and a fabricated
// cell need not be of its column's type); a request answered without any
// database or worker step (client input alone) is never a 5xx.
#include <jansson.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "relyloop/core.h"

namespace {

rl_core_t *g_core = nullptr;

void no_log(rl_log_level_t, const char *, size_t, void *) {}

struct Reader {
    const uint8_t *p;
    size_t n;
    bool more() const { return n > 0; }
    uint8_t byte() {
        if (n == 0) return 0;
        n--;
        return *p++;
    }
    std::string bytes(size_t len) {
        len = std::min(len, n);
        std::string s(reinterpret_cast<const char *>(p), len);
        p += len;
        n -= len;
        return s;
    }
};

const char *const kCells[] = {
    "01a24988-b089-786a-a3e3-21f78d4aed85",
    "2026-05-11 20:13:43.123456+00",
    "0",
    "1",
    "-1",
    "0.487",
    "NaN",
    "t",
    "f",
    "{}",
    "[]",
    R"({"title.boost": 2.5})",
    R"({"ndcg@10": {"baseline": 0.4, "achieved": 0.5, "delta_pct": 25}})",
    R"({"metric": "ndcg@10", "direction": "maximize"})",
    "pending",
    "completed",
    "github",
    "https://github.com/acme/search-config",
    "main",
    "gh-main",
    "elasticsearch",
    "",
    "\xff\xfe not utf-8",
    "99999999999999999999",
    "1e308",
};
constexpr size_t kNCells = sizeof kCells / sizeof kCells[0];

PGresult *rows_result(Reader &r, int nrows) {
    constexpr int kCols = 40;
    PGresult *res = PQmakeEmptyPGresult(nullptr, PGRES_TUPLES_OK);
    if (res == nullptr) return nullptr;
    std::vector<std::string> names;
    std::vector<PGresAttDesc> attrs(kCols);
    for (int i = 0; i < kCols; i++) names.push_back("c" + std::to_string(i));
    for (int i = 0; i < kCols; i++) {
        std::memset(&attrs[i], 0, sizeof attrs[i]);
        attrs[i].name = names[i].data();
        attrs[i].typid = 25;
        attrs[i].typlen = -1;
        attrs[i].atttypmod = -1;
    }
    PQsetResultAttrs(res, kCols, attrs.data());
    for (int row = 0; row < nrows; row++) {
        for (int c = 0; c < kCols; c++) {
            uint8_t b = r.byte();
            if (b == 255) {
                char empty = '\0';
                PQsetvalue(res, row, c, &empty, -1);  // NULL
            } else if (b >= 200) {
                std::string s = r.bytes(b - 199);
                PQsetvalue(res, row, c, s.data(), static_cast<int>(s.size()));
            } else {
                const char *v = kCells[(b + c) % kNCells];
                PQsetvalue(res, row, c, const_cast<char *>(v), static_cast<int>(std::strlen(v)));
            }
        }
    }
    return res;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    static char dir[] = "/tmp/rl-fuzz-secrets-XXXXXX";
    if (mkdtemp(dir) == nullptr) std::abort();
    std::string f = std::string(dir) + "/gh-main";
    FILE *fp = std::fopen(f.c_str(), "w");
    if (fp == nullptr) std::abort();
    std::fputs("ghp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", fp);
    std::fclose(fp);
    static rl_core_conf_t conf = {"development", dir, "https://github.com"};
    if (rl_core_new(&g_core, &conf) != RL_OK) std::abort();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string in(reinterpret_cast<const char *>(data), size);
    size_t nul = in.find('\0');
    std::string answers = nul == std::string::npos ? "" : in.substr(nul + 1);
    if (nul != std::string::npos) in.resize(nul);
    size_t nl = in.find('\n');
    std::string first = in.substr(0, nl);
    std::string body = nl == std::string::npos ? "" : in.substr(nl + 1);
    size_t sp = first.find(' ');
    std::string method = first.substr(0, sp);
    std::string target = sp == std::string::npos ? "" : first.substr(sp + 1);
    size_t q = target.find('?');
    std::string path = target.substr(0, q);
    std::string args = q == std::string::npos ? "" : target.substr(q + 1);

    rl_http_request_t hr{};
    hr.method = {method.data(), method.size()};
    hr.raw_path = {path.data(), path.size()};
    hr.args = {args.data(), args.size()};
    hr.request_id = {"fuzz", 4};
    hr.origin = {"", 0};
    rl_request_t *req = nullptr;
    if (rl_request_new(&req, g_core, &hr, no_log, nullptr) != RL_OK) return 0;
    if (rl_request_wants_body(req)) rl_request_set_body(req, body.data(), body.size());

    Reader r{reinterpret_cast<const uint8_t *>(answers.data()), answers.size()};
    bool touched_outside = false;
    bool fabricated_rows = false;
    for (int steps = 0;; steps++) {
        if (steps > 256) {
            std::fprintf(stderr, "no response after 256 steps\n");
            std::abort();
        }
        rl_step_t s;
        std::memset(&s, 0, sizeof s);
        if (rl_request_step(req, &s) != RL_OK) break;  // the shim answers its static 500
        if (s.kind == RL_STEP_QUERY) {
            touched_outside = true;
            const rl_statement_t *table = nullptr;
            size_t n = rl_core_statements(&table);
            if (s.stmt < 0 || static_cast<size_t>(s.stmt) >= n ||
                s.nparams != table[s.stmt].nparams) {
                std::fprintf(stderr, "bad statement step\n");
                std::abort();
            }
            for (int i = 0; i < s.nparams; i++) {
                // every parameter is readable NUL-terminated text (ASan checks)
                if (s.param_values[i] != nullptr) (void)std::strlen(s.param_values[i]);
            }
            uint8_t b = r.byte();
            switch (b % 4) {
                case 0:
                    rl_request_query_result(req, rows_result(r, 0));
                    break;
                case 1:
                    fabricated_rows = true;
                    rl_request_query_result(req, rows_result(r, 1));
                    break;
                case 2:
                    rl_request_query_result(req, PQmakeEmptyPGresult(nullptr, PGRES_FATAL_ERROR));
                    break;
                default:
                    rl_request_query_failed(req, static_cast<rl_db_failure_t>(1 + r.byte() % 3),
                                            "fuzz");
            }
        } else if (s.kind == RL_STEP_WORKER) {
            touched_outside = true;
            if (s.line.len == 0 || s.line.data[s.line.len - 1] != '\n') {
                std::fprintf(stderr, "worker line without newline\n");
                std::abort();
            }
            uint8_t b = r.byte();
            switch (b % 3) {
                case 0: {
                    std::string ok =
                        R"({"ok":true,"job_id":"01a24988-b089-786a-a3e3-21f78d4aed85","deduplicated":false,"version":"0.1.0","queued":0,"running":0})";
                    rl_request_worker_reply(req, ok.data(), ok.size());
                    break;
                }
                case 1:
                    rl_request_worker_failed(req, "fuzz");
                    break;
                default: {
                    std::string line = r.bytes(r.byte());
                    rl_request_worker_reply(req, line.data(), line.size());
                }
            }
        } else if (s.kind == RL_STEP_RESPOND) {
            if (s.status < 200 || s.status > 599) {
                std::fprintf(stderr, "status %d\n", s.status);
                std::abort();
            }
            if (s.body.len > 0 && !fabricated_rows) {
                json_error_t err;
                json_t *j = json_loadb(s.body.data, s.body.len, 0, &err);
                if (j == nullptr) {
                    std::fprintf(stderr, "body is not JSON: %.*s\n", static_cast<int>(s.body.len),
                                 s.body.data);
                    std::abort();
                }
                json_decref(j);
            }
            if (!touched_outside && s.status >= 500) {
                std::fprintf(stderr, "client input alone gave %d: %.*s\n", s.status,
                             static_cast<int>(s.body.len), s.body.data);
                std::abort();
            }
            break;
        } else {
            std::fprintf(stderr, "unknown step kind %d\n", static_cast<int>(s.kind));
            std::abort();
        }
    }
    rl_request_free(req);
    return 0;
}
