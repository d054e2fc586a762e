/*
 * The C API between the nginx shim (src/module) and the C++ core (src/core).
 *
 * The core is a pure state machine: it never does I/O of its own except a
 * stat of a PAT file (docs/security.md: never an open) and the small read of
 * a webhook secret file (docs/webhooks.md). Everything that waits —
 * PostgreSQL, the worker socket — is done by the shim on nginx's event loop.
 * A request is driven like this:
 *
 *     rl_request_new(&req, core, &in, log, log_data);
 *     if (rl_request_wants_body(req)) { read it; rl_request_set_body(...) }
 *     for (;;) {
 *         rl_request_step(req, &step);
 *         switch (step.kind) {
 *         case RL_STEP_QUERY:   run it; rl_request_query_result() or
 *                               rl_request_query_failed(); continue
 *         case RL_STEP_WORKER:  send the line; rl_request_worker_reply() or
 *                               rl_request_worker_failed(); continue
 *         case RL_STEP_RESPOND: send the response; rl_request_free(req); done
 *         }
 *     }
 *
 * No C++ type and no exception crosses this boundary. Pointers in a step stay
 * valid until the next call on the same request. Requests are independent;
 * one core is shared by all requests of an nginx worker process (single
 * threaded).
 */

#ifndef RELYLOOP_CORE_H
#define RELYLOOP_CORE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RL_API __attribute__((visibility("default")))

/* No exception leaves an entry point (docs/decisions.md): noexcept for C++,
 * nothing for C. */
#ifdef __cplusplus
#define RL_NOEXCEPT noexcept
#else
#define RL_NOEXCEPT
#endif

struct pg_result; /* libpq's PGresult */

typedef enum {
    RL_OK = 0,
    RL_ERROR = -1
} rl_status_t;

typedef enum {
    RL_LOG_ERR = 0,
    RL_LOG_WARN,
    RL_LOG_INFO,
    RL_LOG_DEBUG
} rl_log_level_t;

/* msg is not NUL-terminated; the shim prefixes "relyloop: ". */
typedef void (*rl_log_cb)(rl_log_level_t level, const char *msg, size_t len,
    void *data);

typedef struct {
    const char *data;
    size_t len;
} rl_str_t;

/* ---- the core: one per nginx worker process ---------------------------- */

typedef struct rl_core_s rl_core_t;

/* What the shim applies when a directive is absent (docs/directives.md); the
 * worker's flags share the first three. Owned by src/common/defaults.hpp,
 * which core.cpp checks these against. */
#define RL_DEFAULT_WORKER_SOCKET "/run/relyloop/worker.sock"
#define RL_DEFAULT_SECRETS_DIR "/etc/relyloop/secrets"
#define RL_DEFAULT_GITHUB_WEB_URL "https://github.com"
#define RL_DEFAULT_ENVIRONMENT "production"
#define RL_DEFAULT_WEBHOOK_REPLAY_WINDOW_S (7 * 86400)

typedef struct {
    const char *environment;    /* "development" | "staging" | "production" */
    const char *secrets_dir;    /* relyloop_secrets_dir */
    const char *github_web_url; /* relyloop_github_web_url, no trailing '/' */
    long long webhook_replay_window_s; /* relyloop_webhook_replay_window; 0 = 7d */
} rl_core_conf_t;

RL_API rl_status_t rl_core_new(rl_core_t **out, const rl_core_conf_t *conf) RL_NOEXCEPT;
RL_API void rl_core_free(rl_core_t *core) RL_NOEXCEPT;

/*
 * The rule of a GitHub web URL, the one the worker applies to its
 * --github-web-url (docs/directives.md, relyloop_github_web_url):
 * "http[s]://host[:port][/path]". RL_OK with *base_len the length of url
 * without its trailing '/'s, or RL_ERROR when url breaks the rule.
 */
RL_API rl_status_t rl_web_url_check(size_t *base_len, rl_str_t url) RL_NOEXCEPT;

/*
 * The fixed statements the core may ask for. The shim prepares each one
 * lazily, once per PostgreSQL connection, as "name" with "sql" and nparams
 * untyped parameters (the SQL casts them). Each is one self-contained
 * statement that depends on no session state, so statements of different
 * requests may share a connection and a pipeline.
 */
typedef struct {
    const char *name;
    const char *sql;
    int nparams;
} rl_statement_t;

RL_API size_t rl_core_statements(const rl_statement_t **out) RL_NOEXCEPT;

/* ---- requests ----------------------------------------------------------- */

typedef struct rl_request_s rl_request_t;

typedef struct {
    rl_str_t method;        /* "GET", "POST", ... */
    rl_str_t raw_path;      /* the path as sent (not decoded), no query */
    rl_str_t args;          /* raw query string without '?', may be empty */
    rl_str_t request_id;    /* X-Request-ID header, may be empty */
    rl_str_t origin;        /* Origin header, may be empty */
    int cors_enabled;       /* the location has relyloop_cors_origins */
    int cors_allowed;       /* ... and origin is one of them */
    int http_error;         /* nginx's own error status when an error_page
                               redirect brought the request here, else 0:
                               answered with its envelope, before routing */
    rl_str_t content_type;  /* Content-Type header, may be empty */
    int has_body;           /* a Content-Length above 0, or chunked */
    int webhook;            /* a relyloop_webhook location: POST /webhooks/github */
    rl_str_t gh_delivery;   /* X-GitHub-Delivery, may be empty */
    rl_str_t gh_event;      /* X-GitHub-Event, may be empty */
    rl_str_t gh_signature;  /* X-Hub-Signature-256, may be empty */
} rl_http_request_t;

RL_API rl_status_t rl_request_new(rl_request_t **out, rl_core_t *core,
    const rl_http_request_t *in, rl_log_cb log, void *log_data) RL_NOEXCEPT;
RL_API void rl_request_free(rl_request_t *req) RL_NOEXCEPT;

/* Non-zero when the route takes a body (POST/PATCH); the shim then reads
 * it with nginx's body API and hands it over before the first step. */
RL_API int rl_request_wants_body(const rl_request_t *req) RL_NOEXCEPT;
RL_API void rl_request_set_body(rl_request_t *req, const char *data,
    size_t len) RL_NOEXCEPT;
/* Reading the body failed with an HTTP status (413, 400, 408, ...): the next
 * step answers it with the error envelope. */
RL_API void rl_request_set_http_error(rl_request_t *req, int status) RL_NOEXCEPT;

typedef enum {
    RL_STEP_QUERY = 1,
    RL_STEP_WORKER,
    RL_STEP_RESPOND
} rl_step_kind_t;

typedef struct {
    rl_str_t name;
    rl_str_t value;
} rl_header_t;

typedef struct {
    rl_step_kind_t kind;

    /* RL_STEP_QUERY: statement index into rl_core_statements() */
    int stmt;
    int nparams;
    const char *const *param_values;  /* NUL-terminated text; NULL = SQL NULL */
    /* a write: run it in a pipeline sync segment of its own, so that its
     * failure cannot abort another request's statement */
    int isolated;

    /* RL_STEP_WORKER: one request line for the worker socket, ending '\n' */
    rl_str_t line;

    /* RL_STEP_RESPOND */
    int status;
    const rl_header_t *headers;  /* includes Content-Type when there is a body */
    size_t nheaders;
    rl_str_t body;
} rl_step_t;

RL_API rl_status_t rl_request_step(rl_request_t *req, rl_step_t *out) RL_NOEXCEPT;

/* Outcome of an RL_STEP_QUERY. The core takes ownership of res (PQclear). */
RL_API void rl_request_query_result(rl_request_t *req, struct pg_result *res) RL_NOEXCEPT;

typedef enum {
    RL_DB_UNAVAILABLE = 1,  /* no connection, connection lost */
    RL_DB_OVERLOADED,       /* relyloop_pg_max_waiting exceeded */
    RL_DB_TIMEOUT           /* relyloop_pg_timeout expired */
} rl_db_failure_t;

RL_API void rl_request_query_failed(rl_request_t *req, rl_db_failure_t why,
    const char *detail) RL_NOEXCEPT;

/* Outcome of an RL_STEP_WORKER: the reply line (without '\n'), or a failure
 * (connect refused, timeout, closed without a reply). */
RL_API void rl_request_worker_reply(rl_request_t *req, const char *line,
    size_t len) RL_NOEXCEPT;
RL_API void rl_request_worker_failed(rl_request_t *req, const char *detail) RL_NOEXCEPT;

/* A complete response for failures the shim meets before or outside the
 * core (allocation failure, rl_request_step returning RL_ERROR): a static
 * 500 INTERNAL_ERROR envelope. */
RL_API const char *rl_internal_error_body(size_t *len) RL_NOEXCEPT;

/* The longest worker socket line, either direction, without its newline
 * (docs/worker.md, "The socket protocol"). */
RL_API size_t rl_worker_line_max(void) RL_NOEXCEPT;

/* The metrics exchange of relyloop_metrics, also through the core: the
 * request line (ending '\n'), and the reply line (without '\n') read back.
 * The reply's Prometheus text is written to out, which must have room for
 * len bytes (the text is never longer than its line), and its length to
 * *out_len; RL_ERROR when the line is no metrics reply. */
RL_API rl_str_t rl_worker_metrics_request(void) RL_NOEXCEPT;
RL_API rl_status_t rl_worker_metrics_reply(const char *line, size_t len,
    char *out, size_t *out_len) RL_NOEXCEPT;

/* ---- routes, for metrics labels ----------------------------------------- */

/* The API's routes as OpenAPI path templates ("/api/v1/clusters/{id}"), in a
 * fixed order: rl_route_path(i) for i < rl_route_count(). */
RL_API size_t rl_route_count(void) RL_NOEXCEPT;
RL_API const char *rl_route_path(size_t i) RL_NOEXCEPT;
/* The route a request path falls under (whatever its method or id), or -1
 * when it matches none. Never fails otherwise. */
RL_API int rl_route_index(const rl_core_t *core, rl_str_t method,
    rl_str_t raw_path) RL_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* RELYLOOP_CORE_H */
