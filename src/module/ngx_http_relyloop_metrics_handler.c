
/*
 * Prometheus metrics (docs/metrics.md), the serving half: a
 * `relyloop_metrics` location answers, in the text exposition format 0.0.4,
 * what every nginx worker process counted in the shared memory zone
 * (ngx_http_relyloop_metrics.c), followed by the worker's own metrics, asked
 * for over its socket with the same non-blocking link as the API's requests.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_relyloop_module.h"
#include "ngx_http_relyloop_metrics.h"


typedef struct {
    ngx_http_request_t         *request;
    ngx_http_relyloop_link_t    link;
    ngx_chain_t                *out;
    unsigned                    link_active:1;
} ngx_http_relyloop_m_ctx_t;


static void ngx_http_relyloop_metrics_link_done(ngx_http_relyloop_link_t *link,
    ngx_str_t *reply, const char *error);
static void ngx_http_relyloop_metrics_cleanup(void *data);
static ngx_chain_t *ngx_http_relyloop_metrics_text(ngx_http_request_t *r);
static void ngx_http_relyloop_metrics_send(ngx_http_relyloop_m_ctx_t *ctx,
    ngx_str_t *worker_text);


static const char  *ngx_http_relyloop_m_methods[NGX_HTTP_RELYLOOP_M_METHODS] = {
    "GET", "HEAD", "POST", "PATCH", "OPTIONS", "other"
};


ngx_int_t
ngx_http_relyloop_metrics_handler(ngx_http_request_t *r)
{
    rl_str_t                        request;
    ngx_int_t                       rc;
    ngx_str_t                       line;
    const char                     *error;
    ngx_http_cleanup_t             *cln;
    ngx_http_relyloop_m_ctx_t      *ctx;
    ngx_http_relyloop_main_conf_t  *rmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_relyloop_m_shm == NULL) {
        /* this process has no zone (a reload under way): try again */
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_relyloop_m_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;

    /* the module's own numbers now, the worker's appended when they come */

    ngx_http_relyloop_metrics_publish();

    ctx->out = ngx_http_relyloop_metrics_text(r);
    if (ctx->out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_relyloop_module);

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_relyloop_metrics_cleanup;
    cln->data = ctx;

    request = rl_worker_metrics_request();
    line.data = (u_char *) request.data;
    line.len = request.len;

    ctx->link.handler = ngx_http_relyloop_metrics_link_done;
    ctx->link.data = ctx;
    ctx->link.log = r->connection->log;

    r->main->count++;

    if (ngx_http_relyloop_link_start(&ctx->link, r->pool, &rmcf->worker_socket,
                                     rmcf->worker_timeout, &line, &error)
        == NGX_OK)
    {
        ctx->link_active = 1;
        return NGX_DONE;
    }

    ngx_http_relyloop_metrics_count(NGX_HTTP_RELYLOOP_M_LINK_FAILURES);
    ngx_http_relyloop_metrics_send(ctx, NULL);

    return NGX_DONE;
}


static void
ngx_http_relyloop_metrics_link_done(ngx_http_relyloop_link_t *link,
    ngx_str_t *reply, const char *error)
{
    size_t                      len;
    u_char                     *text;
    ngx_str_t                   worker;
    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_http_relyloop_m_ctx_t  *ctx;

    ctx = link->data;
    r = ctx->request;
    c = r->connection;

    ctx->link_active = 0;

    worker.len = 0;
    worker.data = NULL;

    if (reply) {
        text = ngx_pnalloc(r->pool, reply->len + 1);

        if (text
            && rl_worker_metrics_reply((const char *) reply->data, reply->len,
                                       (char *) text, &len)
               == RL_OK)
        {
            worker.data = text;
            worker.len = len;

        } else {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "relyloop: the worker's metrics reply is invalid");
        }

    } else {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "relyloop: no metrics from the worker: %s", error);
        ngx_http_relyloop_metrics_count(NGX_HTTP_RELYLOOP_M_LINK_FAILURES);
    }

    ngx_http_relyloop_link_close(link);

    ngx_http_set_log_request(c->log, r);

    ngx_http_relyloop_metrics_send(ctx, worker.data ? &worker : NULL);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_relyloop_metrics_cleanup(void *data)
{
    ngx_http_relyloop_m_ctx_t  *ctx = data;

    if (ctx->link_active) {
        ctx->link_active = 0;
        ngx_http_relyloop_link_close(&ctx->link);
    }
}


/* sends ctx->out, the worker's text (copied) and relyloop_worker_up */

static void
ngx_http_relyloop_metrics_send(ngx_http_relyloop_m_ctx_t *ctx,
    ngx_str_t *worker_text)
{
    off_t                len;
    u_char              *p;
    ngx_int_t            rc;
    ngx_buf_t           *b;
    ngx_chain_t         *cl, **ll;
    ngx_http_request_t  *r;

    r = ctx->request;

    b = ngx_create_temp_buf(r->pool, (worker_text ? worker_text->len : 0)
                                     + 256);
    if (b == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    p = b->last;

    p = ngx_cpymem(p, "# HELP relyloop_worker_up 1 when this scrape got the "
                   "worker's metrics over its socket\n"
                   "# TYPE relyloop_worker_up gauge\n",
                   sizeof("# HELP relyloop_worker_up 1 when this scrape got "
                          "the worker's metrics over its socket\n"
                          "# TYPE relyloop_worker_up gauge\n") - 1);
    p = ngx_sprintf(p, "relyloop_worker_up %d\n", worker_text ? 1 : 0);

    if (worker_text) {
        p = ngx_cpymem(p, worker_text->data, worker_text->len);

        if (worker_text->len && worker_text->data[worker_text->len - 1] != '\n')
        {
            *p++ = '\n';
        }
    }

    b->last = p;

    len = 0;

    for (ll = &ctx->out; *ll; ll = &(*ll)->next) {
        len += ngx_buf_size((*ll)->buf);
    }

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    cl->buf = b;
    cl->next = NULL;
    *ll = cl;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;
    len += b->last - b->pos;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = sizeof("text/plain") - 1;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    ngx_http_finalize_request(r, ngx_http_output_filter(r, ctx->out));
}


#define ngx_http_relyloop_m_head(p, name, type, help)                        \
    p = ngx_cpymem(p, "# HELP " name " " help "\n# TYPE " name " " type "\n", \
                   sizeof("# HELP " name " " help "\n# TYPE " name " " type   \
                          "\n") - 1)


static ngx_chain_t *
ngx_http_relyloop_metrics_text(ngx_http_request_t *r)
{
    u_char                      *p;
    size_t                       size;
    ngx_uint_t                   i, route, method, class, bucket, nroutes;
    ngx_uint_t                   up, in_use, waiting, procs;
    ngx_atomic_uint_t            v, cum, pid;
    ngx_buf_t                   *b;
    ngx_chain_t                 *cl;
    const char                  *path;
    ngx_http_relyloop_m_shm_t   *shm;
    ngx_http_relyloop_m_slot_t  *slot;

    shm = ngx_http_relyloop_m_shm;
    nroutes = rl_route_count() + 1;

    /* at most this many lines, of at most 160 bytes each */
    size = (nroutes * NGX_HTTP_RELYLOOP_M_METHODS * NGX_HTTP_RELYLOOP_M_CLASSES
            + nroutes * (NGX_HTTP_RELYLOOP_M_BUCKETS + 3) + 64) * 160;

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NULL;
    }

    p = b->last;

    ngx_http_relyloop_m_head(p, "relyloop_http_requests_total", "counter",
        "API requests answered, by route, method and status class");

    for (route = 0; route < nroutes; route++) {
        path = route ? rl_route_path(route - 1) : "other";

        for (method = 0; method < NGX_HTTP_RELYLOOP_M_METHODS; method++) {
            for (class = 0; class < NGX_HTTP_RELYLOOP_M_CLASSES; class++) {
                v = shm->requests[route][method][class];

                if (v == 0) {
                    continue;
                }

                p = ngx_sprintf(p, "relyloop_http_requests_total{route=\"%s\","
                                "method=\"%s\",code=\"%uixx\"} %uA\n",
                                path, ngx_http_relyloop_m_methods[method],
                                class + 1, v);
            }
        }
    }

    ngx_http_relyloop_m_head(p, "relyloop_http_request_duration_seconds",
        "histogram",
        "Time from the request's first byte to its response, by route "
        "(nginx's millisecond clock)");

    for (route = 0; route < nroutes; route++) {
        path = route ? rl_route_path(route - 1) : "other";
        cum = 0;

        for (bucket = 0; bucket <= NGX_HTTP_RELYLOOP_M_BUCKETS; bucket++) {
            cum += shm->latency[route][bucket];
        }

        if (cum == 0) {
            continue;
        }

        cum = 0;

        for (bucket = 0; bucket < NGX_HTTP_RELYLOOP_M_BUCKETS; bucket++) {
            cum += shm->latency[route][bucket];
            v = ngx_http_relyloop_m_bounds[bucket];
            p = ngx_sprintf(p, "relyloop_http_request_duration_seconds_bucket"
                            "{route=\"%s\",le=\"%uA.%03uA\"} %uA\n",
                            path, v / 1000, v % 1000, cum);
        }

        cum += shm->latency[route][NGX_HTTP_RELYLOOP_M_BUCKETS];
        v = shm->latency_ms[route];

        p = ngx_sprintf(p, "relyloop_http_request_duration_seconds_bucket"
                        "{route=\"%s\",le=\"+Inf\"} %uA\n"
                        "relyloop_http_request_duration_seconds_sum"
                        "{route=\"%s\"} %uA.%03uA\n"
                        "relyloop_http_request_duration_seconds_count"
                        "{route=\"%s\"} %uA\n",
                        path, cum, path, v / 1000, v % 1000, path, cum);
    }

    up = 0;
    in_use = 0;
    waiting = 0;
    procs = 0;

    for (i = 0; i < NGX_HTTP_RELYLOOP_M_SLOTS; i++) {
        slot = &shm->slots[i];
        pid = slot->pid;

        if (pid == 0
            || (kill((ngx_pid_t) pid, 0) == -1 && errno == ESRCH))
        {
            continue;
        }

        procs++;
        up += slot->up;
        in_use += slot->in_use;
        waiting += slot->waiting;
    }

    ngx_http_relyloop_m_head(p, "relyloop_nginx_processes", "gauge",
        "nginx worker processes reporting (old ones included during a "
        "reload)");
    p = ngx_sprintf(p, "relyloop_nginx_processes %ui\n", procs);

    ngx_http_relyloop_m_head(p, "relyloop_pg_connections_up", "gauge",
        "PostgreSQL connections ready, all nginx worker processes");
    p = ngx_sprintf(p, "relyloop_pg_connections_up %ui\n", up);

    ngx_http_relyloop_m_head(p, "relyloop_pg_connections_in_use", "gauge",
        "PostgreSQL connections with queries in flight");
    p = ngx_sprintf(p, "relyloop_pg_connections_in_use %ui\n", in_use);

    ngx_http_relyloop_m_head(p, "relyloop_pg_queries_waiting", "gauge",
        "Queries waiting for a PostgreSQL connection");
    p = ngx_sprintf(p, "relyloop_pg_queries_waiting %ui\n", waiting);

    ngx_http_relyloop_m_head(p, "relyloop_pg_reconnects_total", "counter",
        "PostgreSQL connections lost, refused or recycled, each followed "
        "by a reconnect");
    p = ngx_sprintf(p, "relyloop_pg_reconnects_total %uA\n",
                    shm->counters[NGX_HTTP_RELYLOOP_M_PG_RECONNECTS]);

    ngx_http_relyloop_m_head(p, "relyloop_pg_resubmits_total", "counter",
        "Queries sent again after another query aborted their pipeline");
    p = ngx_sprintf(p, "relyloop_pg_resubmits_total %uA\n",
                    shm->counters[NGX_HTTP_RELYLOOP_M_PG_RESUBMITS]);

    ngx_http_relyloop_m_head(p, "relyloop_pg_timeouts_total", "counter",
        "Queries that ran out of relyloop_pg_timeout");
    p = ngx_sprintf(p, "relyloop_pg_timeouts_total %uA\n",
                    shm->counters[NGX_HTTP_RELYLOOP_M_PG_TIMEOUTS]);

    ngx_http_relyloop_m_head(p, "relyloop_worker_link_failures_total",
        "counter",
        "Exchanges with the worker's socket that failed (not running, "
        "timeout, closed)");
    p = ngx_sprintf(p, "relyloop_worker_link_failures_total %uA\n",
                    shm->counters[NGX_HTTP_RELYLOOP_M_LINK_FAILURES]);

    b->last = p;

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NULL;
    }

    cl->buf = b;
    cl->next = NULL;

    return cl;
}
