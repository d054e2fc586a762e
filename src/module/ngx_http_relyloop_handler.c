
/*
 * The content handler: reads the body with nginx's body API, then drives the
 * core's request state machine (relyloop/core.h), running the statements it
 * asks for on the PostgreSQL pool and the lines it sends on the worker link,
 * and finally sends the response it built.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_relyloop_module.h"


typedef struct {
    ngx_http_request_t             *request;
    rl_request_t                   *core;
    ngx_http_relyloop_main_conf_t  *rmcf;
    ngx_http_relyloop_pg_query_t    query;
    ngx_http_relyloop_link_t        link;
    unsigned                        link_active:1;
    unsigned                        done:1;
} ngx_http_relyloop_ctx_t;


static void ngx_http_relyloop_body_handler(ngx_http_request_t *r);
static void ngx_http_relyloop_drive(ngx_http_relyloop_ctx_t *ctx);
static void ngx_http_relyloop_query_done(ngx_http_relyloop_pg_query_t *q,
    PGresult *res, rl_db_failure_t failure);
static void ngx_http_relyloop_link_done(ngx_http_relyloop_link_t *link,
    ngx_str_t *reply, const char *error);
static ngx_int_t ngx_http_relyloop_respond(ngx_http_relyloop_ctx_t *ctx,
    rl_step_t *step);
static ngx_int_t ngx_http_relyloop_send(ngx_http_request_t *r, u_char *body,
    size_t len);
static ngx_int_t ngx_http_relyloop_internal_error(ngx_http_request_t *r);
static void ngx_http_relyloop_cleanup(void *data);
static void ngx_http_relyloop_log(rl_log_level_t level, const char *msg,
    size_t len, void *data);
static ngx_table_elt_t *ngx_http_relyloop_find_header(ngx_http_request_t *r,
    const char *lowcase_name, size_t len);
static ngx_uint_t ngx_http_relyloop_cors_allowed(
    ngx_http_relyloop_loc_conf_t *rlcf, ngx_table_elt_t *origin);


ngx_int_t
ngx_http_relyloop_handler(ngx_http_request_t *r)
{
    u_char                         *p, *last;
    ngx_int_t                       rc;
    ngx_table_elt_t                *h;
    rl_http_request_t               in;
    ngx_http_cleanup_t             *cln;
    ngx_http_relyloop_ctx_t        *ctx;
    ngx_http_relyloop_loc_conf_t   *rlcf;
    ngx_http_relyloop_main_conf_t  *rmcf;

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_relyloop_module);
    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_relyloop_module);

    /*
     * The early failures answer with the core's static envelope, never an
     * nginx error page. A worker process whose core or pool could not be
     * created has exited (init_process), so the first cannot happen.
     */

    if (rmcf->core == NULL || rmcf->pool == NULL) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "relyloop: the module is not initialised");
        return ngx_http_relyloop_internal_error(r);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_relyloop_ctx_t));
    if (ctx == NULL) {
        return ngx_http_relyloop_internal_error(r);
    }

    ctx->request = r;
    ctx->rmcf = rmcf;

    ngx_memzero(&in, sizeof(rl_http_request_t));

    in.method.data = (const char *) r->method_name.data;
    in.method.len = r->method_name.len;

    if (r->err_status && r->request_line.len) {

        /*
         * an error_page redirect to a URI has made the method GET:
         * report the one the client sent, as the request line has it
         */

        p = r->request_line.data;
        last = p + r->request_line.len;

        while (p < last && *p != ' ') {
            p++;
        }

        in.method.data = (const char *) r->request_line.data;
        in.method.len = p - r->request_line.data;
    }

    /* route on the path as sent: ids are opaque and may hold "%2F" */

    p = r->unparsed_uri.data;
    last = p + r->unparsed_uri.len;

    in.raw_path.data = (const char *) p;

    while (p < last && *p != '?' && *p != '#') {
        p++;
    }

    in.raw_path.len = p - r->unparsed_uri.data;

    in.args.data = (const char *) r->args.data;
    in.args.len = r->args.len;

    h = ngx_http_relyloop_find_header(r, "x-request-id",
                                      sizeof("x-request-id") - 1);
    if (h) {
        in.request_id.data = (const char *) h->value.data;
        in.request_id.len = h->value.len;
    }

    h = ngx_http_relyloop_find_header(r, "origin", sizeof("origin") - 1);
    if (h) {
        in.origin.data = (const char *) h->value.data;
        in.origin.len = h->value.len;
    }

    /* an error_page redirect of one of nginx's own errors */

    in.http_error = (int) r->err_status;

    in.cors_enabled = (rlcf->cors_origins != NULL);
    in.cors_allowed = ngx_http_relyloop_cors_allowed(rlcf, h);

    /* the core refuses a body that is not JSON before it is read */

    h = r->headers_in.content_type;
    if (h) {
        in.content_type.data = (const char *) h->value.data;
        in.content_type.len = h->value.len;
    }

    in.has_body = (r->headers_in.content_length_n > 0
                   || r->headers_in.chunked);

    if (rlcf->webhook == 1) {
        in.webhook = 1;

        h = ngx_http_relyloop_find_header(r, "x-github-delivery",
                                          sizeof("x-github-delivery") - 1);
        if (h) {
            in.gh_delivery.data = (const char *) h->value.data;
            in.gh_delivery.len = h->value.len;
        }

        h = ngx_http_relyloop_find_header(r, "x-github-event",
                                          sizeof("x-github-event") - 1);
        if (h) {
            in.gh_event.data = (const char *) h->value.data;
            in.gh_event.len = h->value.len;
        }

        h = ngx_http_relyloop_find_header(r, "x-hub-signature-256",
                                          sizeof("x-hub-signature-256") - 1);
        if (h) {
            in.gh_signature.data = (const char *) h->value.data;
            in.gh_signature.len = h->value.len;
        }
    }

    /* runs when the request is freed or terminated (client gone) */
    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return ngx_http_relyloop_internal_error(r);
    }

    if (rl_request_new(&ctx->core, rmcf->core, &in, ngx_http_relyloop_log,
                       r->connection->log)
        != RL_OK)
    {
        return ngx_http_relyloop_internal_error(r);
    }

    cln->handler = ngx_http_relyloop_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_relyloop_module);

    if (r->err_status) {

        /* an error_page redirect: the core answers with the envelope */

    } else if (rl_request_wants_body(ctx->core)) {

        r->request_body_in_single_buf = 1;

        rc = ngx_http_read_client_request_body(r,
                                               ngx_http_relyloop_body_handler);

        if (rc < NGX_HTTP_SPECIAL_RESPONSE) {
            return NGX_DONE;
        }

        /* the rest of the body stays unread */
        r->keepalive = 0;

        rl_request_set_http_error(ctx->core, (int) rc);

    } else {
        rc = ngx_http_discard_request_body(r);

        if (rc != NGX_OK) {

            /* a broken chunked body: the envelope, not nginx's page */

            r->keepalive = 0;

            rl_request_set_http_error(ctx->core,
                                      rc >= NGX_HTTP_SPECIAL_RESPONSE
                                      ? (int) rc
                                      : NGX_HTTP_INTERNAL_SERVER_ERROR);
        }
    }

    /* one reference for the whole exchange, released by finalize */

    r->main->count++;

    ngx_http_relyloop_drive(ctx);

    return NGX_DONE;
}


static void
ngx_http_relyloop_body_handler(ngx_http_request_t *r)
{
    size_t                    len;
    u_char                   *body;
    ngx_buf_t                *b;
    ngx_chain_t              *cl;
    ngx_http_relyloop_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_relyloop_module);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        rl_request_set_body(ctx->core, "", 0);
        ngx_http_relyloop_drive(ctx);
        return;
    }

    /*
     * An API location keeps bodies up to client_max_body_size (at most
     * relyloop_body_buffer_size) in memory; a larger one went to a
     * temporary file, and reading that back would block the event loop,
     * so it is refused.
     */

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file || r->request_body->temp_file) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "relyloop: request body larger than "
                          "relyloop_body_buffer_size");
            rl_request_set_http_error(ctx->core,
                                      NGX_HTTP_REQUEST_ENTITY_TOO_LARGE);
            ngx_http_relyloop_drive(ctx);
            return;
        }

        len += b->last - b->pos;
    }

    if (r->request_body->bufs->next == NULL || len == 0) {
        b = r->request_body->bufs->buf;
        rl_request_set_body(ctx->core, len ? (const char *) b->pos : "", len);
        ngx_http_relyloop_drive(ctx);
        return;
    }

    body = ngx_pnalloc(r->pool, len + 1);
    if (body == NULL) {
        ngx_http_finalize_request(r, ngx_http_relyloop_internal_error(r));
        return;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        /* chunked bodies end with an empty buffer whose pos is NULL */
        if (b->last == b->pos) {
            continue;
        }

        ngx_memcpy(body + len, b->pos, b->last - b->pos);
        len += b->last - b->pos;
    }

    rl_request_set_body(ctx->core, (const char *) body, len);
    ngx_http_relyloop_drive(ctx);
}


/*
 * Runs the core until it waits for PostgreSQL or the worker, or has answered.
 * Every path that ends the exchange finalizes the request exactly once.
 */

static void
ngx_http_relyloop_drive(ngx_http_relyloop_ctx_t *ctx)
{
    ngx_int_t            rc;
    ngx_str_t            line;
    rl_step_t            step;
    const char          *error;
    rl_db_failure_t      failure;
    ngx_http_request_t  *r;

    r = ctx->request;

    for ( ;; ) {
        ngx_memzero(&step, sizeof(rl_step_t));

        if (rl_request_step(ctx->core, &step) != RL_OK) {
            ctx->done = 1;
            ngx_http_finalize_request(r, ngx_http_relyloop_internal_error(r));
            return;
        }

        switch (step.kind) {

        case RL_STEP_QUERY:

            ngx_memzero(&ctx->query, sizeof(ngx_http_relyloop_pg_query_t));

            ctx->query.stmt = step.stmt;
            ctx->query.nparams = step.nparams;
            ctx->query.values = step.param_values;
            ctx->query.isolated = step.isolated ? 1 : 0;
            ctx->query.handler = ngx_http_relyloop_query_done;
            ctx->query.data = ctx;
            ctx->query.log = r->connection->log;

            if (ngx_http_relyloop_pg_submit(ctx->rmcf->pool, &ctx->query,
                                            &failure)
                == NGX_OK)
            {
                /* notice a client that leaves while we wait */
                r->read_event_handler = ngx_http_test_reading;
                return;
            }

            rl_request_query_failed(ctx->core, failure,
                                    failure == RL_DB_OVERLOADED
                                    ? "too many requests waiting for a "
                                      "database connection"
                                    : "no database connection");
            continue;

        case RL_STEP_WORKER:

            line.data = (u_char *) step.line.data;
            line.len = step.line.len;

            ngx_memzero(&ctx->link, sizeof(ngx_http_relyloop_link_t));

            ctx->link.handler = ngx_http_relyloop_link_done;
            ctx->link.data = ctx;
            ctx->link.log = r->connection->log;

            error = NULL;

            if (ngx_http_relyloop_link_start(&ctx->link, r->pool,
                                             &ctx->rmcf->worker_socket,
                                             ctx->rmcf->worker_timeout,
                                             &line, &error)
                == NGX_OK)
            {
                ctx->link_active = 1;
                r->read_event_handler = ngx_http_test_reading;
                return;
            }

            ngx_http_relyloop_metrics_count(NGX_HTTP_RELYLOOP_M_LINK_FAILURES);
            rl_request_worker_failed(ctx->core, error);
            continue;

        case RL_STEP_RESPOND:

            ctx->done = 1;
            rc = ngx_http_relyloop_respond(ctx, &step);
            ngx_http_finalize_request(r, rc);
            return;

        default:
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "relyloop: unknown step %d", (int) step.kind);
            ctx->done = 1;
            ngx_http_finalize_request(r, ngx_http_relyloop_internal_error(r));
            return;
        }
    }
}


static void
ngx_http_relyloop_query_done(ngx_http_relyloop_pg_query_t *q, PGresult *res,
    rl_db_failure_t failure)
{
    ngx_connection_t         *c;
    ngx_http_request_t       *r;
    ngx_http_relyloop_ctx_t  *ctx;

    ctx = q->data;
    r = ctx->request;
    c = r->connection;

    if (res) {
        rl_request_query_result(ctx->core, res);

    } else {
        rl_request_query_failed(ctx->core, failure,
                                failure == RL_DB_TIMEOUT
                                ? "relyloop_pg_timeout expired"
                                : "database connection lost");
    }

    ngx_http_set_log_request(c->log, r);

    ngx_http_relyloop_drive(ctx);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_relyloop_link_done(ngx_http_relyloop_link_t *link, ngx_str_t *reply,
    const char *error)
{
    ngx_connection_t         *c;
    ngx_http_request_t       *r;
    ngx_http_relyloop_ctx_t  *ctx;

    ctx = link->data;
    r = ctx->request;
    c = r->connection;

    ctx->link_active = 0;

    if (reply) {
        rl_request_worker_reply(ctx->core, (const char *) reply->data,
                                reply->len);

    } else {
        ngx_http_relyloop_metrics_count(NGX_HTTP_RELYLOOP_M_LINK_FAILURES);
        rl_request_worker_failed(ctx->core, error);
    }

    ngx_http_relyloop_link_close(link);

    ngx_http_set_log_request(c->log, r);

    ngx_http_relyloop_drive(ctx);

    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_relyloop_respond(ngx_http_relyloop_ctx_t *ctx, rl_step_t *step)
{
    size_t               i;
    ngx_table_elt_t     *h;
    const rl_header_t   *hdr;
    ngx_http_request_t  *r;

    r = ctx->request;

    r->headers_out.status = step->status;
    r->headers_out.content_length_n = step->body.len;

    for (i = 0; i < step->nheaders; i++) {
        hdr = &step->headers[i];

        if (hdr->name.len == sizeof("Content-Type") - 1
            && ngx_strncasecmp((u_char *) hdr->name.data,
                               (u_char *) "Content-Type", hdr->name.len)
               == 0)
        {
            r->headers_out.content_type.data = (u_char *) hdr->value.data;
            r->headers_out.content_type.len = hdr->value.len;
            r->headers_out.content_type_len = hdr->value.len;
            r->headers_out.content_type_lowcase = NULL;
            continue;
        }

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        /* the core's strings live until the request's pool is freed */

        h->hash = 1;
        h->key.data = (u_char *) hdr->name.data;
        h->key.len = hdr->name.len;
        h->value.data = (u_char *) hdr->value.data;
        h->value.len = hdr->value.len;
    }

    if (step->body.len == 0) {
        r->header_only = 1;
    }

    return ngx_http_relyloop_send(r, (u_char *) step->body.data,
                                  step->body.len);
}


/* the header, then the body (memory that outlives the request's output) */

static ngx_int_t
ngx_http_relyloop_send(ngx_http_request_t *r, u_char *body, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    /* X-Content-Type-Options is the header filter's (module.c) */

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body;
    b->last = body + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* when the core itself cannot answer: its static 500 envelope */

static ngx_int_t
ngx_http_relyloop_internal_error(ngx_http_request_t *r)
{
    size_t        len;
    const char   *body;

    body = rl_internal_error_body(&len);

    r->headers_out.status = NGX_HTTP_INTERNAL_SERVER_ERROR;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    return ngx_http_relyloop_send(r, (u_char *) body, len);
}


/* the request's pool goes away: nothing may call back into it */

static void
ngx_http_relyloop_cleanup(void *data)
{
    ngx_http_relyloop_ctx_t  *ctx = data;

    if (ctx->query.handler) {
        ngx_http_relyloop_pg_abandon(&ctx->query);
    }

    if (ctx->link_active) {
        ngx_http_relyloop_link_close(&ctx->link);
        ctx->link_active = 0;
    }

    if (ctx->core) {
        rl_request_free(ctx->core);
        ctx->core = NULL;
    }
}


static void
ngx_http_relyloop_log(rl_log_level_t level, const char *msg, size_t len,
    void *data)
{
    ngx_log_t   *log = data;
    ngx_uint_t   nlevel;

    switch (level) {
    case RL_LOG_ERR:
        nlevel = NGX_LOG_ERR;
        break;
    case RL_LOG_WARN:
        nlevel = NGX_LOG_WARN;
        break;
    case RL_LOG_INFO:
        nlevel = NGX_LOG_INFO;
        break;
    default:
        nlevel = NGX_LOG_DEBUG;
        break;
    }

    if (log->log_level < nlevel) {
        return;
    }

    ngx_log_error(nlevel, log, 0, "relyloop: %*s", len, msg);
}


static ngx_table_elt_t *
ngx_http_relyloop_find_header(ngx_http_request_t *r, const char *lowcase_name,
    size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) lowcase_name, len)
               == 0)
        {
            return &h[i];
        }
    }
}


static ngx_uint_t
ngx_http_relyloop_cors_allowed(ngx_http_relyloop_loc_conf_t *rlcf,
    ngx_table_elt_t *origin)
{
    ngx_str_t   *allowed;
    ngx_uint_t   i;

    if (rlcf->cors_origins == NULL || origin == NULL) {
        return 0;
    }

    allowed = rlcf->cors_origins->elts;

    for (i = 0; i < rlcf->cors_origins->nelts; i++) {
        /* scheme and host are case-insensitive in an origin */
        if (allowed[i].len == origin->value.len
            && ngx_strncasecmp(allowed[i].data, origin->value.data,
                               origin->value.len)
               == 0)
        {
            return 1;
        }
    }

    return 0;
}
