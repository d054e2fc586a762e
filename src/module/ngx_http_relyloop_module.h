
/*
 * ngx_http_relyloop_module: the RelyLoop apply-path API inside nginx.
 *
 * ngx_http_relyloop_module.c   the module, main configuration, process hooks
 * ngx_http_relyloop_conf.c     directive handlers and checks, location conf
 * ngx_http_relyloop_handler.c  the content handler driving the C++ core
 * ngx_http_relyloop_pg_*.c     per-process pool of pipelined libpq connections
 *                              (ngx_http_relyloop_pg.h: conninfo, conn,
 *                              pipeline, pool)
 * ngx_http_relyloop_worker_link.c  non-blocking Unix-socket client (worker)
 * ngx_http_relyloop_metrics.c  metrics: the shared memory zone, counting
 * ngx_http_relyloop_metrics_handler.c  metrics: the page, the worker's part
 */

#ifndef _NGX_HTTP_RELYLOOP_MODULE_H_INCLUDED_
#define _NGX_HTTP_RELYLOOP_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <libpq-fe.h>

#include <relyloop/core.h>


typedef struct ngx_http_relyloop_pg_pool_s  ngx_http_relyloop_pg_pool_t;
typedef struct ngx_http_relyloop_pg_conn_s  ngx_http_relyloop_pg_conn_t;
typedef struct ngx_http_relyloop_pg_query_s  ngx_http_relyloop_pg_query_t;
typedef struct ngx_http_relyloop_link_s  ngx_http_relyloop_link_t;


typedef struct {
    ngx_str_t                      pg_conninfo;
    /* PQconnectStartParams arrays, NULL-terminated, built at -t time */
    const char                   **pg_keywords;
    const char                   **pg_values;

    ngx_uint_t                     pg_pool_size;
    ngx_uint_t                     pg_max_waiting;
    ngx_uint_t                     pg_pipeline_depth;
    ngx_msec_t                     pg_timeout;

    ngx_str_t                      worker_socket;
    ngx_msec_t                     worker_timeout;

    ngx_str_t                      secrets_dir;
    ngx_str_t                      environment;
    ngx_str_t                      github_web_url;
    time_t                         webhook_replay_window;

    ngx_flag_t                     used;

    ngx_shm_zone_t                *metrics_zone;    /* relyloop_metrics */

    /* per worker process, from init_process to exit_process */
    rl_core_t                     *core;
    ngx_http_relyloop_pg_pool_t   *pool;
} ngx_http_relyloop_main_conf_t;


typedef struct {
    ngx_flag_t                     api;
    ngx_array_t                   *cors_origins;    /* of ngx_str_t */
    size_t                         body_buffer_size;
    ngx_flag_t                     webhook;         /* relyloop_webhook */
    size_t                         webhook_max_body;
} ngx_http_relyloop_loc_conf_t;


/* pg: one query of one request */

typedef void (*ngx_http_relyloop_pg_handler_pt)(
    ngx_http_relyloop_pg_query_t *q, PGresult *res, rl_db_failure_t failure);

struct ngx_http_relyloop_pg_query_s {
    ngx_queue_t                      queue;     /* the pool's wait queue */
    int                              stmt;
    int                              nparams;
    const char *const               *values;
    unsigned                         isolated:1;
    unsigned                         alone:1;   /* aborted by a neighbour */
    unsigned                         waiting:1;
    unsigned                         inflight:1;
    ngx_uint_t                       resubmits;

    ngx_http_relyloop_pg_handler_pt  handler;
    void                            *data;
    ngx_log_t                       *log;

    ngx_event_t                      timer;
    ngx_http_relyloop_pg_pool_t     *pool;
    ngx_http_relyloop_pg_conn_t     *conn;
    ngx_uint_t                       slot;
};


/* relyloop_pg_conninfo into rmcf->pg_keywords and pg_values, at -t time */
ngx_int_t ngx_http_relyloop_build_conninfo(ngx_conf_t *cf,
    ngx_http_relyloop_main_conf_t *rmcf);
ngx_http_relyloop_pg_pool_t *ngx_http_relyloop_pg_pool_create(
    ngx_cycle_t *cycle, ngx_http_relyloop_main_conf_t *rmcf);
void ngx_http_relyloop_pg_pool_destroy(ngx_http_relyloop_pg_pool_t *pool);
/*
 * Sends or queues q. Returns NGX_OK when the handler will be called later,
 * or NGX_DECLINED with *failure set when q failed at once (no connection up,
 * wait queue full); the handler is not called then.
 */
ngx_int_t ngx_http_relyloop_pg_submit(ngx_http_relyloop_pg_pool_t *pool,
    ngx_http_relyloop_pg_query_t *q, rl_db_failure_t *failure);
/* The request leaves: its handler will never be called. Idempotent. */
void ngx_http_relyloop_pg_abandon(ngx_http_relyloop_pg_query_t *q);


/* worker link: one request/reply line exchange over the Unix socket */

typedef void (*ngx_http_relyloop_link_handler_pt)(
    ngx_http_relyloop_link_t *link, ngx_str_t *reply, const char *error);

struct ngx_http_relyloop_link_s {
    ngx_connection_t                  *connection;
    ngx_buf_t                         *out;
    ngx_buf_t                         *in;
    ngx_pool_t                        *pool;
    ngx_http_relyloop_link_handler_pt  handler;
    void                              *data;
    ngx_log_t                         *log;
    unsigned                           done:1;
};

/*
 * Connects to the worker socket, sends line, and calls handler with the
 * reply line or an error, within timeout. Returns NGX_OK when the handler
 * will be called later, NGX_ERROR (with *error set) when it failed at once.
 */
ngx_int_t ngx_http_relyloop_link_start(ngx_http_relyloop_link_t *link,
    ngx_pool_t *pool, ngx_str_t *socket_path, ngx_msec_t timeout,
    ngx_str_t *line, const char **error);
void ngx_http_relyloop_link_close(ngx_http_relyloop_link_t *link);


ngx_int_t ngx_http_relyloop_handler(ngx_http_request_t *r);


/* metrics (ngx_http_relyloop_metrics*.c, docs/metrics.md) */

#define NGX_HTTP_RELYLOOP_M_PG_RECONNECTS   0
#define NGX_HTTP_RELYLOOP_M_PG_RESUBMITS    1
#define NGX_HTTP_RELYLOOP_M_PG_TIMEOUTS     2
#define NGX_HTTP_RELYLOOP_M_LINK_FAILURES   3
#define NGX_HTTP_RELYLOOP_M_NCOUNTERS       4

char *ngx_http_relyloop_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_relyloop_metrics_postconfiguration(ngx_conf_t *cf);
void ngx_http_relyloop_metrics_init_process(ngx_cycle_t *cycle,
    ngx_http_relyloop_main_conf_t *rmcf);
void ngx_http_relyloop_metrics_exit_process(void);
/* one event for a counter above; a no-op without relyloop_metrics */
void ngx_http_relyloop_metrics_count(ngx_uint_t counter);
/* this process's pool: connections ready, with queries in flight, and the
 * queries waiting for one */
void ngx_http_relyloop_pg_stats(ngx_http_relyloop_pg_pool_t *pool,
    ngx_uint_t *up, ngx_uint_t *in_use, ngx_uint_t *waiting);


extern ngx_module_t  ngx_http_relyloop_module;


#endif /* _NGX_HTTP_RELYLOOP_MODULE_H_INCLUDED_ */
