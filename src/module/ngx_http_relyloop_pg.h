
/*
 * The per-worker-process PostgreSQL pool: what its files share
 * (docs/architecture.md, "The PostgreSQL pool").
 *
 * ngx_http_relyloop_pg_conninfo.c  relyloop_pg_conninfo, at configuration
 *                                  time, into PQconnectStartParams arrays
 * ngx_http_relyloop_pg_conn.c      one connection's life: connect and its
 *                                  poll states, close, reconnect, recycle
 * ngx_http_relyloop_pg_pipeline.c  the slot ring of a connection in pipeline
 *                                  mode: send, prepare, push, sync, results,
 *                                  pop, resubmit
 * ngx_http_relyloop_pg_pool.c      the pool, its wait queue, dispatch and
 *                                  the submit API of ngx_http_relyloop_module.h
 *
 * Debug lines (NGX_LOG_DEBUG_HTTP, "relyloop pg #N: ...") trace every state
 * change of a connection and of its ring.
 */

#ifndef _NGX_HTTP_RELYLOOP_PG_H_INCLUDED_
#define _NGX_HTTP_RELYLOOP_PG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_relyloop_module.h"


#define NGX_HTTP_RELYLOOP_PG_DISCONNECTED  0
#define NGX_HTTP_RELYLOOP_PG_CONNECTING    1
#define NGX_HTTP_RELYLOOP_PG_READY         2

#define NGX_HTTP_RELYLOOP_SLOT_PREPARE     1
#define NGX_HTTP_RELYLOOP_SLOT_QUERY       2
#define NGX_HTTP_RELYLOOP_SLOT_SYNC        3

/* a connection whose oldest query is older than this gets no new work */
#define NGX_HTTP_RELYLOOP_PG_STALL_MSEC    50
#define NGX_HTTP_RELYLOOP_PG_MAX_RESUBMITS 3
#define NGX_HTTP_RELYLOOP_PG_BACKOFF_MIN   250
#define NGX_HTTP_RELYLOOP_PG_BACKOFF_MAX   2000
#define NGX_HTTP_RELYLOOP_PG_LOG_INTERVAL  10000

/* a slot kind's name, for debug lines */
#define ngx_http_relyloop_pg_slot_name(kind)                                 \
    ((kind) == NGX_HTTP_RELYLOOP_SLOT_QUERY ? "query"                        \
     : (kind) == NGX_HTTP_RELYLOOP_SLOT_PREPARE ? "prepare" : "sync")


typedef struct {
    ngx_uint_t                      kind;
    ngx_http_relyloop_pg_query_t   *query;    /* NULL once abandoned */
    PGresult                       *result;
    int                             stmt;
    ngx_msec_t                      sent;
} ngx_http_relyloop_pg_slot_t;


struct ngx_http_relyloop_pg_conn_s {
    ngx_http_relyloop_pg_pool_t    *pool;
    ngx_uint_t                      index;
    PGconn                         *pgconn;
    ngx_connection_t               *connection;
    ngx_uint_t                      state;
    ino_t                           sock_ino;

    ngx_http_relyloop_pg_slot_t    *slots;
    ngx_uint_t                      nslots;
    ngx_uint_t                      head;
    ngx_uint_t                      count;
    ngx_uint_t                      queries;
    ngx_http_relyloop_pg_query_t  **scratch;

    u_char                         *prepared;

    unsigned                        unsynced:1;
    unsigned                        recycle:1;

    ngx_event_t                     sync_event;
    ngx_event_t                     recycle_event;
    ngx_event_t                     retry_event;
    ngx_msec_t                      backoff;
};


struct ngx_http_relyloop_pg_pool_s {
    ngx_http_relyloop_main_conf_t  *rmcf;
    ngx_log_t                      *log;

    ngx_http_relyloop_pg_conn_t    *conns;
    ngx_uint_t                      nconns;
    ngx_uint_t                      depth;

    const rl_statement_t           *stmts;
    ngx_uint_t                      nstmts;

    ngx_queue_t                     waiting;
    ngx_uint_t                      nwaiting;

    ngx_msec_t                      last_log;
    ngx_uint_t                      suppressed;
    unsigned                        failing:1;
    unsigned                        destroying:1;
};


/* ngx_http_relyloop_pg_conn.c */

void ngx_http_relyloop_pg_connect(ngx_http_relyloop_pg_conn_t *conn);
ngx_int_t ngx_http_relyloop_pg_want(ngx_http_relyloop_pg_conn_t *conn,
    ngx_uint_t read, ngx_uint_t write);
void ngx_http_relyloop_pg_connect_poll(ngx_http_relyloop_pg_conn_t *conn);
void ngx_http_relyloop_pg_retry_handler(ngx_event_t *ev);
void ngx_http_relyloop_pg_recycle_handler(ngx_event_t *ev);
void ngx_http_relyloop_pg_cancel_events(ngx_http_relyloop_pg_conn_t *conn);
/* what == NULL: the caller has logged already */
void ngx_http_relyloop_pg_broken(ngx_http_relyloop_pg_conn_t *conn,
    const char *what);

/* ngx_http_relyloop_pg_pipeline.c */

void ngx_http_relyloop_pg_event_handler(ngx_event_t *ev);
void ngx_http_relyloop_pg_sync_handler(ngx_event_t *ev);
ngx_int_t ngx_http_relyloop_pg_flush(ngx_http_relyloop_pg_conn_t *conn);
/* on failure q is in no ring and the connection must be given up */
ngx_int_t ngx_http_relyloop_pg_send(ngx_http_relyloop_pg_conn_t *conn,
    ngx_http_relyloop_pg_query_t *q);
/* empties the ring into conn->scratch: returns how many requests wait */
ngx_uint_t ngx_http_relyloop_pg_drain(ngx_http_relyloop_pg_conn_t *conn);
ngx_uint_t ngx_http_relyloop_pg_has_waiters(
    ngx_http_relyloop_pg_conn_t *conn);

/* ngx_http_relyloop_pg_pool.c */

void ngx_http_relyloop_pg_dispatch(ngx_http_relyloop_pg_pool_t *pool);
void ngx_http_relyloop_pg_fail_waiting(ngx_http_relyloop_pg_pool_t *pool);
void ngx_http_relyloop_pg_complete(ngx_http_relyloop_pg_query_t *q,
    PGresult *res, rl_db_failure_t failure);
ngx_uint_t ngx_http_relyloop_pg_live(ngx_http_relyloop_pg_pool_t *pool);
void ngx_http_relyloop_pg_log_failure(ngx_http_relyloop_pg_pool_t *pool,
    const char *what, const char *detail);


#endif /* _NGX_HTTP_RELYLOOP_PG_H_INCLUDED_ */
