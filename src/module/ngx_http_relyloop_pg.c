
/*
 * A per-worker-process pool of pipelined libpq connections on nginx's event
 * loop (docs/architecture.md, "The PostgreSQL pool").
 *
 * Every connection runs in libpq pipeline mode. A query is sent at once
 * (PQsendQueryPrepared, preceded by PQsendPrepare the first time a statement
 * is used on the connection); one posted event per connection then ends the
 * batch with a single PQpipelineSync per event-loop iteration, so the server
 * wakes up and flushes once per batch. A write ("isolated") gets a sync
 * segment of its own, so its failure cannot abort another request's query.
 * A query aborted by someone else's failure in its segment
 * (PGRES_PIPELINE_ABORTED) is sent again in a segment of its own, where
 * only its own failure can touch it; that resend does not count toward its
 * resubmit limit. A statement's PREPARE also gets a segment of its own: a
 * neighbour's failure cannot abort it, so later queries of that statement,
 * sent before its result came back, never meet an unprepared name.
 *
 * Each connection keeps a ring of what it has sent (prepare, query, sync) in
 * order, which is how results are matched: PQgetResult returns one NULL after
 * each query's results but none after a sync. The ring, not the request, owns
 * an in-flight slot: a request that leaves only clears its pointer there.
 *
 * The libpq socket is registered level-triggered: libpq's connect state
 * machine asks for a writable socket twice in a row and PQconsumeInput reads
 * at most its buffer's free space, so edge-triggered events would hang both.
 */


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


static void ngx_http_relyloop_pg_connect(ngx_http_relyloop_pg_conn_t *conn);
static ngx_int_t ngx_http_relyloop_pg_attach(
    ngx_http_relyloop_pg_conn_t *conn);
static void ngx_http_relyloop_pg_detach(ngx_http_relyloop_pg_conn_t *conn);
static ngx_int_t ngx_http_relyloop_pg_want(ngx_http_relyloop_pg_conn_t *conn,
    ngx_uint_t read, ngx_uint_t write);
static void ngx_http_relyloop_pg_connect_poll(
    ngx_http_relyloop_pg_conn_t *conn);
static void ngx_http_relyloop_pg_ready(ngx_http_relyloop_pg_conn_t *conn);
static void ngx_http_relyloop_pg_event_handler(ngx_event_t *ev);
static void ngx_http_relyloop_pg_sync_handler(ngx_event_t *ev);
static void ngx_http_relyloop_pg_retry_handler(ngx_event_t *ev);
static void ngx_http_relyloop_pg_recycle_handler(ngx_event_t *ev);
static ngx_uint_t ngx_http_relyloop_pg_has_waiters(
    ngx_http_relyloop_pg_conn_t *conn);
static void ngx_http_relyloop_pg_timeout_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_relyloop_pg_flush(ngx_http_relyloop_pg_conn_t *conn);
static void ngx_http_relyloop_pg_results(ngx_http_relyloop_pg_conn_t *conn);
static void ngx_http_relyloop_pg_broken(ngx_http_relyloop_pg_conn_t *conn,
    const char *what);
static ngx_http_relyloop_pg_conn_t *ngx_http_relyloop_pg_pick(
    ngx_http_relyloop_pg_pool_t *pool);
static ngx_int_t ngx_http_relyloop_pg_send(ngx_http_relyloop_pg_conn_t *conn,
    ngx_http_relyloop_pg_query_t *q);
static ngx_int_t ngx_http_relyloop_pg_send_query(
    ngx_http_relyloop_pg_conn_t *conn, ngx_http_relyloop_pg_query_t *q);
static ngx_int_t ngx_http_relyloop_pg_push(ngx_http_relyloop_pg_conn_t *conn,
    ngx_uint_t kind, ngx_http_relyloop_pg_query_t *q, int stmt);
static ngx_int_t ngx_http_relyloop_pg_sync(ngx_http_relyloop_pg_conn_t *conn);
static void ngx_http_relyloop_pg_dispatch(ngx_http_relyloop_pg_pool_t *pool);
static void ngx_http_relyloop_pg_fail_waiting(
    ngx_http_relyloop_pg_pool_t *pool);
static void ngx_http_relyloop_pg_complete(ngx_http_relyloop_pg_query_t *q,
    PGresult *res, rl_db_failure_t failure);
static ngx_uint_t ngx_http_relyloop_pg_live(ngx_http_relyloop_pg_pool_t *pool);
static void ngx_http_relyloop_pg_notice(void *arg, const char *message);
static void ngx_http_relyloop_pg_log_failure(ngx_http_relyloop_pg_pool_t *pool,
    const char *what, const char *detail);


ngx_http_relyloop_pg_pool_t *
ngx_http_relyloop_pg_pool_create(ngx_cycle_t *cycle,
    ngx_http_relyloop_main_conf_t *rmcf)
{
    ngx_uint_t                    i;
    ngx_http_relyloop_pg_conn_t  *conn;
    ngx_http_relyloop_pg_pool_t  *pool;

    pool = ngx_pcalloc(cycle->pool, sizeof(ngx_http_relyloop_pg_pool_t));
    if (pool == NULL) {
        return NULL;
    }

    pool->rmcf = rmcf;
    pool->log = cycle->log;
    pool->nconns = rmcf->pg_pool_size;
    pool->depth = rmcf->pg_pipeline_depth;
    pool->nstmts = rl_core_statements(&pool->stmts);

    ngx_queue_init(&pool->waiting);

    pool->conns = ngx_pcalloc(cycle->pool,
                              pool->nconns * sizeof(ngx_http_relyloop_pg_conn_t));
    if (pool->conns == NULL) {
        return NULL;
    }

    for (i = 0; i < pool->nconns; i++) {
        conn = &pool->conns[i];

        conn->pool = pool;
        conn->index = i;
        conn->state = NGX_HTTP_RELYLOOP_PG_DISCONNECTED;

        /* per query at most: sync, prepare, sync, query, sync */
        conn->nslots = pool->depth * 5 + 5;
        conn->slots = ngx_pcalloc(cycle->pool,
                             conn->nslots * sizeof(ngx_http_relyloop_pg_slot_t));
        conn->scratch = ngx_pcalloc(cycle->pool,
                             conn->nslots * sizeof(ngx_http_relyloop_pg_query_t *));
        conn->prepared = ngx_pcalloc(cycle->pool, pool->nstmts + 1);

        if (conn->slots == NULL || conn->scratch == NULL
            || conn->prepared == NULL)
        {
            return NULL;
        }

        conn->sync_event.handler = ngx_http_relyloop_pg_sync_handler;
        conn->sync_event.data = conn;
        conn->sync_event.log = pool->log;
        conn->sync_event.cancelable = 1;

        conn->recycle_event.handler = ngx_http_relyloop_pg_recycle_handler;
        conn->recycle_event.data = conn;
        conn->recycle_event.log = pool->log;
        conn->recycle_event.cancelable = 1;

        conn->retry_event.handler = ngx_http_relyloop_pg_retry_handler;
        conn->retry_event.data = conn;
        conn->retry_event.log = pool->log;
        conn->retry_event.cancelable = 1;

        conn->backoff = NGX_HTTP_RELYLOOP_PG_BACKOFF_MIN;

        ngx_http_relyloop_pg_connect(conn);
    }

    return pool;
}


void
ngx_http_relyloop_pg_pool_destroy(ngx_http_relyloop_pg_pool_t *pool)
{
    ngx_uint_t                    i;
    ngx_http_relyloop_pg_conn_t  *conn;

    pool->destroying = 1;

    for (i = 0; i < pool->nconns; i++) {
        conn = &pool->conns[i];

        if (conn->retry_event.timer_set) {
            ngx_del_timer(&conn->retry_event);
        }

        if (conn->sync_event.posted) {
            ngx_delete_posted_event(&conn->sync_event);
        }

        if (conn->recycle_event.posted) {
            ngx_delete_posted_event(&conn->recycle_event);
        }

        if (conn->pgconn) {
            ngx_http_relyloop_pg_broken(conn, NULL);
        }
    }
}


ngx_int_t
ngx_http_relyloop_pg_submit(ngx_http_relyloop_pg_pool_t *pool,
    ngx_http_relyloop_pg_query_t *q, rl_db_failure_t *failure)
{
    ngx_http_relyloop_pg_conn_t  *conn;

    q->pool = pool;
    q->conn = NULL;
    q->waiting = 0;
    q->inflight = 0;
    q->alone = 0;
    q->resubmits = 0;

    if (q->stmt < 0 || (ngx_uint_t) q->stmt >= pool->nstmts) {
        ngx_log_error(NGX_LOG_ALERT, q->log, 0,
                      "relyloop: unknown statement %d", q->stmt);
        *failure = RL_DB_UNAVAILABLE;
        return NGX_DECLINED;
    }

    if (!ngx_http_relyloop_pg_live(pool)) {
        *failure = RL_DB_UNAVAILABLE;
        return NGX_DECLINED;
    }

    for ( ;; ) {
        conn = ngx_http_relyloop_pg_pick(pool);

        if (conn == NULL) {
            break;
        }

        if (ngx_http_relyloop_pg_send(conn, q) == NGX_OK) {
            goto started;
        }

        ngx_http_relyloop_pg_broken(conn, "send failed");

        if (!ngx_http_relyloop_pg_live(pool)) {
            *failure = RL_DB_UNAVAILABLE;
            return NGX_DECLINED;
        }
    }

    if (pool->nwaiting >= pool->rmcf->pg_max_waiting) {
        *failure = RL_DB_OVERLOADED;
        return NGX_DECLINED;
    }

    ngx_queue_insert_tail(&pool->waiting, &q->queue);
    pool->nwaiting++;
    q->waiting = 1;

started:

    q->timer.handler = ngx_http_relyloop_pg_timeout_handler;
    q->timer.data = q;
    q->timer.log = q->log;

    ngx_add_timer(&q->timer, pool->rmcf->pg_timeout);

    return NGX_OK;
}


void
ngx_http_relyloop_pg_abandon(ngx_http_relyloop_pg_query_t *q)
{
    ngx_http_relyloop_pg_conn_t  *conn;

    if (q->timer.timer_set) {
        ngx_del_timer(&q->timer);
    }

    if (q->waiting) {
        ngx_queue_remove(&q->queue);
        q->pool->nwaiting--;
        q->waiting = 0;
    }

    if (q->inflight) {
        /* the slot stays; its result is read and dropped when it comes */
        conn = q->conn;
        conn->slots[q->slot].query = NULL;
        q->inflight = 0;
        q->conn = NULL;

        /*
         * Queries cannot be withdrawn from a pipeline, and PQcancel blocks.
         * When nobody waits for anything on this connection any more, a
         * fresh connection is cheaper than sitting out what is queued
         * there: the old backend stops at its next write.
         */

        if (!ngx_http_relyloop_pg_has_waiters(conn)) {
            conn->recycle = 1;

            if (!conn->recycle_event.posted) {
                ngx_post_event(&conn->recycle_event, &ngx_posted_events);
            }
        }
    }
}


static ngx_uint_t
ngx_http_relyloop_pg_has_waiters(ngx_http_relyloop_pg_conn_t *conn)
{
    ngx_uint_t                    i, n;
    ngx_http_relyloop_pg_slot_t  *slot;

    for (n = 0; n < conn->count; n++) {
        i = (conn->head + n) % conn->nslots;
        slot = &conn->slots[i];

        if (slot->kind == NGX_HTTP_RELYLOOP_SLOT_QUERY && slot->query) {
            return 1;
        }
    }

    return 0;
}


static void
ngx_http_relyloop_pg_recycle_handler(ngx_event_t *ev)
{
    ngx_http_relyloop_pg_conn_t  *conn = ev->data;

    conn->recycle = 0;

    if (conn->state != NGX_HTTP_RELYLOOP_PG_READY
        || ngx_http_relyloop_pg_has_waiters(conn))
    {
        return;
    }

    if (conn->queries == 0) {
        /* everything came back meanwhile: the connection is idle */
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                   "relyloop: recycling a postgresql connection");

    ngx_http_relyloop_pg_broken(conn, NULL);

    /* not a failure: reconnect now, without the backoff */

    if (conn->retry_event.timer_set) {
        ngx_del_timer(&conn->retry_event);
    }

    conn->backoff = NGX_HTTP_RELYLOOP_PG_BACKOFF_MIN;

    ngx_http_relyloop_pg_connect(conn);
}


static void
ngx_http_relyloop_pg_connect(ngx_http_relyloop_pg_conn_t *conn)
{
    PGconn                         *pg;
    ngx_http_relyloop_pg_pool_t    *pool;
    ngx_http_relyloop_main_conf_t  *rmcf;

    pool = conn->pool;
    rmcf = pool->rmcf;

    if (ngx_exiting || ngx_quit || ngx_terminate || pool->destroying) {
        return;
    }

    pg = PQconnectStartParams(rmcf->pg_keywords, rmcf->pg_values, 0);

    if (pg == NULL) {
        ngx_http_relyloop_pg_log_failure(pool, "cannot allocate a connection",
                                         NULL);
        goto retry;
    }

    conn->pgconn = pg;

    if (PQstatus(pg) == CONNECTION_BAD) {
        ngx_http_relyloop_pg_log_failure(pool, "connect failed",
                                         PQerrorMessage(pg));
        PQfinish(pg);
        conn->pgconn = NULL;
        goto retry;
    }

    PQsetNoticeProcessor(pg, ngx_http_relyloop_pg_notice, conn);

    if (ngx_http_relyloop_pg_attach(conn) != NGX_OK) {
        PQfinish(pg);
        conn->pgconn = NULL;
        goto retry;
    }

    conn->state = NGX_HTTP_RELYLOOP_PG_CONNECTING;

    /* libpq's connect_timeout is not applied by PQconnectPoll */
    ngx_add_timer(&conn->retry_event, rmcf->pg_timeout);

    /* as if PQconnectPoll had returned PGRES_POLLING_WRITING */
    if (ngx_http_relyloop_pg_want(conn, 0, 1) != NGX_OK) {
        ngx_http_relyloop_pg_broken(conn, "cannot register the socket");
    }

    return;

retry:

    conn->state = NGX_HTTP_RELYLOOP_PG_DISCONNECTED;
    ngx_add_timer(&conn->retry_event, conn->backoff);
    conn->backoff = ngx_min(conn->backoff * 2, NGX_HTTP_RELYLOOP_PG_BACKOFF_MAX);

    if (!ngx_http_relyloop_pg_live(pool)) {
        ngx_http_relyloop_pg_fail_waiting(pool);
    }
}


static ngx_int_t
ngx_http_relyloop_pg_attach(ngx_http_relyloop_pg_conn_t *conn)
{
    int                fd;
    struct stat        st;
    ngx_connection_t  *c;

    fd = PQsocket(conn->pgconn);

    if (fd == -1) {
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, conn->pool->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = conn;
    c->log = conn->pool->log;
    c->read->log = c->log;
    c->write->log = c->log;
    c->read->handler = ngx_http_relyloop_pg_event_handler;
    c->write->handler = ngx_http_relyloop_pg_event_handler;

    conn->connection = c;
    conn->sock_ino = (fstat(fd, &st) == 0) ? st.st_ino : 0;

    return NGX_OK;
}


/* PQfinish owns the socket: detach from nginx without closing it */

static void
ngx_http_relyloop_pg_detach(ngx_http_relyloop_pg_conn_t *conn)
{
    ngx_connection_t  *c;

    c = conn->connection;

    if (c == NULL) {
        return;
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    /* the socket is closed by libpq right after (or already was) */

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_free_connection(c);

    /* events of this fd still in the current epoll batch become stale */
    c->fd = (ngx_socket_t) -1;

    conn->connection = NULL;
}


static ngx_int_t
ngx_http_relyloop_pg_want(ngx_http_relyloop_pg_conn_t *conn, ngx_uint_t read,
    ngx_uint_t write)
{
    ngx_connection_t  *c;

    c = conn->connection;

    if (read && !c->read->active) {
        if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else if (!read && c->read->active) {
        if (ngx_del_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (write && !c->write->active) {
        if (ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else if (!write && c->write->active) {
        if (ngx_del_event(c->write, NGX_WRITE_EVENT, 0) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_relyloop_pg_connect_poll(ngx_http_relyloop_pg_conn_t *conn)
{
    int                    fd;
    struct stat            st;
    ngx_int_t              rc;
    PostgresPollingStatusType  status;

    status = PQconnectPoll(conn->pgconn);

    /*
     * Host lists and SSL/GSS fallbacks make libpq open a new socket, which
     * may even reuse the old number: re-register when it changed.
     */

    fd = PQsocket(conn->pgconn);

    if (status != PGRES_POLLING_FAILED
        && (fd != conn->connection->fd
            || fstat(fd, &st) != 0 || st.st_ino != conn->sock_ino))
    {
        ngx_http_relyloop_pg_detach(conn);

        if (ngx_http_relyloop_pg_attach(conn) != NGX_OK) {
            ngx_http_relyloop_pg_broken(conn, "cannot attach the new socket");
            return;
        }
    }

    switch (status) {

    case PGRES_POLLING_READING:
        rc = ngx_http_relyloop_pg_want(conn, 1, 0);
        break;

    case PGRES_POLLING_WRITING:
        rc = ngx_http_relyloop_pg_want(conn, 0, 1);
        break;

    case PGRES_POLLING_OK:
        ngx_http_relyloop_pg_ready(conn);
        return;

    default: /* PGRES_POLLING_FAILED */
        ngx_http_relyloop_pg_log_failure(conn->pool, "connect failed",
                                         PQerrorMessage(conn->pgconn));
        ngx_http_relyloop_pg_broken(conn, NULL);
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_relyloop_pg_broken(conn, "cannot register the socket");
    }
}


static void
ngx_http_relyloop_pg_ready(ngx_http_relyloop_pg_conn_t *conn)
{
    ngx_http_relyloop_pg_pool_t  *pool;

    pool = conn->pool;

    if (conn->retry_event.timer_set) {
        ngx_del_timer(&conn->retry_event);
    }

    if (PQsetnonblocking(conn->pgconn, 1) != 0
        || PQenterPipelineMode(conn->pgconn) != 1)
    {
        ngx_http_relyloop_pg_broken(conn, "cannot enter pipeline mode");
        return;
    }

    ngx_memzero(conn->prepared, pool->nstmts);

    conn->state = NGX_HTTP_RELYLOOP_PG_READY;
    conn->backoff = NGX_HTTP_RELYLOOP_PG_BACKOFF_MIN;
    conn->head = 0;
    conn->count = 0;
    conn->queries = 0;
    conn->unsynced = 0;

    if (pool->failing) {
        ngx_log_error(NGX_LOG_NOTICE, pool->log, 0,
                      "relyloop: postgresql connection restored");
        pool->failing = 0;
        pool->suppressed = 0;
    }

    if (ngx_http_relyloop_pg_want(conn, 1, 0) != NGX_OK) {
        ngx_http_relyloop_pg_broken(conn, "cannot register the socket");
        return;
    }

    ngx_http_relyloop_pg_dispatch(pool);
}


static void
ngx_http_relyloop_pg_event_handler(ngx_event_t *ev)
{
    ngx_connection_t             *c;
    ngx_http_relyloop_pg_conn_t  *conn;

    c = ev->data;
    conn = c->data;

    if (conn->state == NGX_HTTP_RELYLOOP_PG_CONNECTING) {
        ngx_http_relyloop_pg_connect_poll(conn);
        return;
    }

    if (conn->state != NGX_HTTP_RELYLOOP_PG_READY) {
        return;
    }

    if (ev->write) {
        if (ngx_http_relyloop_pg_flush(conn) != NGX_OK) {
            ngx_http_relyloop_pg_broken(conn, "send failed");
            return;
        }

    } else if (PQconsumeInput(conn->pgconn) == 0) {
        ngx_http_relyloop_pg_broken(conn, "connection lost");
        return;
    }

    /* a flush may have absorbed input as well: always look for results */
    ngx_http_relyloop_pg_results(conn);
}


static void
ngx_http_relyloop_pg_sync_handler(ngx_event_t *ev)
{
    ngx_http_relyloop_pg_conn_t  *conn = ev->data;

    if (conn->state != NGX_HTTP_RELYLOOP_PG_READY || !conn->unsynced) {
        return;
    }

    if (ngx_http_relyloop_pg_sync(conn) != NGX_OK) {
        ngx_http_relyloop_pg_broken(conn, "sync failed");
        return;
    }

    if (ngx_http_relyloop_pg_flush(conn) != NGX_OK) {
        ngx_http_relyloop_pg_broken(conn, "send failed");
        return;
    }

    ngx_http_relyloop_pg_results(conn);
}


static void
ngx_http_relyloop_pg_retry_handler(ngx_event_t *ev)
{
    ngx_http_relyloop_pg_conn_t  *conn = ev->data;

    if (conn->state == NGX_HTTP_RELYLOOP_PG_CONNECTING) {
        ngx_http_relyloop_pg_log_failure(conn->pool, "connect timed out",
                                         NULL);
        ngx_http_relyloop_pg_broken(conn, NULL);
        return;
    }

    if (conn->state == NGX_HTTP_RELYLOOP_PG_DISCONNECTED) {
        ngx_http_relyloop_pg_connect(conn);
    }
}


static void
ngx_http_relyloop_pg_timeout_handler(ngx_event_t *ev)
{
    ngx_http_relyloop_pg_query_t  *q = ev->data;

    ngx_http_relyloop_metrics_count(NGX_HTTP_RELYLOOP_M_PG_TIMEOUTS);

    /* the server's statement_timeout cancels a query still running */

    ngx_http_relyloop_pg_abandon(q);
    q->handler(q, NULL, RL_DB_TIMEOUT);
}


static ngx_int_t
ngx_http_relyloop_pg_flush(ngx_http_relyloop_pg_conn_t *conn)
{
    int  rc;

    rc = PQflush(conn->pgconn);

    if (rc < 0) {
        return NGX_ERROR;
    }

    /* while output is pending, keep reading too: libpq may need to */

    return ngx_http_relyloop_pg_want(conn, 1, rc == 1);
}


static void
ngx_http_relyloop_pg_pop(ngx_http_relyloop_pg_conn_t *conn)
{
    ngx_http_relyloop_pg_slot_t  *slot;

    slot = &conn->slots[conn->head];

    if (slot->kind == NGX_HTTP_RELYLOOP_SLOT_QUERY) {
        conn->queries--;
    }

    ngx_memzero(slot, sizeof(ngx_http_relyloop_pg_slot_t));

    conn->head = (conn->head + 1) % conn->nslots;
    conn->count--;
}


static void
ngx_http_relyloop_pg_results(ngx_http_relyloop_pg_conn_t *conn)
{
    PGresult                      *res;
    ExecStatusType                 status;
    ngx_http_relyloop_pg_slot_t   *slot;
    ngx_http_relyloop_pg_query_t  *q;

    while (conn->state == NGX_HTTP_RELYLOOP_PG_READY && conn->count > 0) {

        /* PQgetResult would block in poll() while busy */
        if (PQisBusy(conn->pgconn)) {
            break;
        }

        res = PQgetResult(conn->pgconn);
        slot = &conn->slots[conn->head];

        switch (slot->kind) {

        case NGX_HTTP_RELYLOOP_SLOT_SYNC:

            if (res == NULL || PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
                if (res) {
                    PQclear(res);
                }

                ngx_http_relyloop_pg_broken(conn, "pipeline out of step");
                return;
            }

            PQclear(res);
            ngx_http_relyloop_pg_pop(conn);
            break;

        case NGX_HTTP_RELYLOOP_SLOT_PREPARE:

            if (res == NULL) {
                ngx_http_relyloop_pg_pop(conn);
                break;
            }

            status = PQresultStatus(res);

            if (status != PGRES_COMMAND_OK) {
                conn->prepared[slot->stmt] = 0;

                if (status != PGRES_PIPELINE_ABORTED) {
                    ngx_log_error(NGX_LOG_ERR, conn->pool->log, 0,
                                  "relyloop: preparing \"%s\" failed: %s",
                                  conn->pool->stmts[slot->stmt].name,
                                  PQresultErrorMessage(res));
                }
            }

            PQclear(res);
            break;

        default: /* NGX_HTTP_RELYLOOP_SLOT_QUERY */

            if (res != NULL) {
                if (slot->result) {
                    PQclear(slot->result);
                }

                slot->result = res;
                break;
            }

            q = slot->query;
            res = slot->result;
            slot->result = NULL;

            ngx_http_relyloop_pg_pop(conn);

            if (q == NULL) {
                /* its request left: drop the result */
                if (res) {
                    PQclear(res);
                }
                break;
            }

            q->inflight = 0;
            q->conn = NULL;

            if (res && PQresultStatus(res) == PGRES_PIPELINE_ABORTED) {

                /*
                 * Not executed: another query of its sync segment failed.
                 * It goes again in a segment of its own, which no
                 * neighbour can abort; only an abort there (which should
                 * not happen) counts toward the limit.
                 */

                PQclear(res);

                if (q->alone || q->isolated) {
                    if (++q->resubmits > NGX_HTTP_RELYLOOP_PG_MAX_RESUBMITS) {
                        ngx_http_relyloop_pg_complete(q, NULL,
                                                      RL_DB_UNAVAILABLE);
                        break;
                    }
                }

                q->alone = 1;
                ngx_http_relyloop_metrics_count(
                    NGX_HTTP_RELYLOOP_M_PG_RESUBMITS);

                ngx_queue_insert_head(&conn->pool->waiting, &q->queue);
                conn->pool->nwaiting++;
                q->waiting = 1;
                break;
            }

            ngx_http_relyloop_pg_complete(q, res, 0);
            break;
        }
    }

    ngx_http_relyloop_pg_dispatch(conn->pool);
}


/*
 * The connection is gone or unusable: fail what it carried, close it and
 * reconnect later. what == NULL: the caller has logged already.
 */

static void
ngx_http_relyloop_pg_broken(ngx_http_relyloop_pg_conn_t *conn,
    const char *what)
{
    ngx_uint_t                     i, n;
    ngx_http_relyloop_pg_slot_t   *slot;
    ngx_http_relyloop_pg_pool_t   *pool;
    ngx_http_relyloop_pg_query_t  *q;

    pool = conn->pool;

    if (what && !pool->destroying) {
        ngx_http_relyloop_pg_log_failure(pool, what,
                                         conn->pgconn
                                         ? PQerrorMessage(conn->pgconn) : NULL);
    }

    if (!pool->destroying) {
        ngx_http_relyloop_metrics_count(NGX_HTTP_RELYLOOP_M_PG_RECONNECTS);
    }

    if (conn->retry_event.timer_set) {
        ngx_del_timer(&conn->retry_event);
    }

    if (conn->sync_event.posted) {
        ngx_delete_posted_event(&conn->sync_event);
    }

    if (conn->recycle_event.posted) {
        ngx_delete_posted_event(&conn->recycle_event);
    }

    conn->recycle = 0;

    ngx_http_relyloop_pg_detach(conn);

    if (conn->pgconn) {
        PQfinish(conn->pgconn);
        conn->pgconn = NULL;
    }

    /* collect the requests first: their handlers may submit again */

    n = 0;

    while (conn->count > 0) {
        slot = &conn->slots[conn->head];

        if (slot->result) {
            PQclear(slot->result);
            slot->result = NULL;
        }

        if (slot->kind == NGX_HTTP_RELYLOOP_SLOT_QUERY && slot->query) {
            slot->query->inflight = 0;
            slot->query->conn = NULL;
            conn->scratch[n++] = slot->query;
        }

        ngx_http_relyloop_pg_pop(conn);
    }

    conn->head = 0;
    conn->queries = 0;
    conn->unsynced = 0;
    conn->state = NGX_HTTP_RELYLOOP_PG_DISCONNECTED;

    if (!pool->destroying && !ngx_exiting && !ngx_quit && !ngx_terminate) {
        ngx_add_timer(&conn->retry_event, conn->backoff);
        conn->backoff = ngx_min(conn->backoff * 2,
                                NGX_HTTP_RELYLOOP_PG_BACKOFF_MAX);
    }

    for (i = 0; i < n; i++) {
        q = conn->scratch[i];
        ngx_http_relyloop_pg_complete(q, NULL, RL_DB_UNAVAILABLE);
    }

    if (!ngx_http_relyloop_pg_live(pool)) {
        ngx_http_relyloop_pg_fail_waiting(pool);

    } else {
        ngx_http_relyloop_pg_dispatch(pool);
    }
}


/*
 * A ready connection with room, avoiding one whose oldest query has been
 * waiting long: everything behind a stalled backend waits with it.
 */

static ngx_http_relyloop_pg_conn_t *
ngx_http_relyloop_pg_pick(ngx_http_relyloop_pg_pool_t *pool)
{
    ngx_uint_t                    i, stalled, best_stalled;
    ngx_http_relyloop_pg_conn_t  *conn, *best;

    best = NULL;
    best_stalled = 1;

    for (i = 0; i < pool->nconns; i++) {
        conn = &pool->conns[i];

        if (conn->state != NGX_HTTP_RELYLOOP_PG_READY
            || conn->recycle
            || conn->queries >= pool->depth
            || conn->count + 5 > conn->nslots)
        {
            continue;
        }

        stalled = conn->count > 0
                  && ngx_current_msec - conn->slots[conn->head].sent
                     > NGX_HTTP_RELYLOOP_PG_STALL_MSEC;

        /*
         * Join the batch a connection is collecting in this event-loop
         * iteration: one sync for many queries is what saves the server's
         * wakeups. Otherwise, the connection with the fewest in flight.
         */

        if (best == NULL
            || (best_stalled && !stalled)
            || (best_stalled == stalled
                && (conn->unsynced > best->unsynced
                    || (conn->unsynced == best->unsynced
                        && conn->queries < best->queries))))
        {
            best = conn;
            best_stalled = stalled;
        }
    }

    return best;
}


static ngx_int_t
ngx_http_relyloop_pg_push(ngx_http_relyloop_pg_conn_t *conn, ngx_uint_t kind,
    ngx_http_relyloop_pg_query_t *q, int stmt)
{
    ngx_uint_t                    i;
    ngx_http_relyloop_pg_slot_t  *slot;

    if (conn->count == conn->nslots) {
        return NGX_ERROR;
    }

    i = (conn->head + conn->count) % conn->nslots;
    slot = &conn->slots[i];

    slot->kind = kind;
    slot->query = q;
    slot->result = NULL;
    slot->stmt = stmt;
    slot->sent = ngx_current_msec;

    conn->count++;

    if (kind == NGX_HTTP_RELYLOOP_SLOT_QUERY) {
        conn->queries++;
        q->slot = i;
    }

    return NGX_OK;
}


/* ends the batch: the server runs what came since the last sync */

static ngx_int_t
ngx_http_relyloop_pg_sync(ngx_http_relyloop_pg_conn_t *conn)
{
    if (PQpipelineSync(conn->pgconn) != 1
        || ngx_http_relyloop_pg_push(conn, NGX_HTTP_RELYLOOP_SLOT_SYNC, NULL,
                                     -1)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    conn->unsynced = 0;

    return NGX_OK;
}


/*
 * Sends q on conn. On failure q is in no ring (the caller still owns it) and
 * the connection must be given up.
 */

static ngx_int_t
ngx_http_relyloop_pg_send(ngx_http_relyloop_pg_conn_t *conn,
    ngx_http_relyloop_pg_query_t *q)
{
    if (ngx_http_relyloop_pg_send_query(conn, q) == NGX_OK) {
        return NGX_OK;
    }

    if (q->inflight) {
        conn->slots[q->slot].query = NULL;
        q->inflight = 0;
        q->conn = NULL;
    }

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_relyloop_pg_send_query(ngx_http_relyloop_pg_conn_t *conn,
    ngx_http_relyloop_pg_query_t *q)
{
    PGconn                *pg;
    ngx_uint_t             solo;
    const rl_statement_t  *st;

    pg = conn->pgconn;
    st = &conn->pool->stmts[q->stmt];
    solo = q->isolated || q->alone;

    if (!conn->prepared[q->stmt]) {

        /* in a segment of its own: no neighbour's failure can abort it */

        if ((conn->unsynced && ngx_http_relyloop_pg_sync(conn) != NGX_OK)
            || PQsendPrepare(pg, st->name, st->sql, st->nparams, NULL) != 1
            || ngx_http_relyloop_pg_push(conn, NGX_HTTP_RELYLOOP_SLOT_PREPARE,
                                         NULL, q->stmt)
               != NGX_OK
            || ngx_http_relyloop_pg_sync(conn) != NGX_OK)
        {
            return NGX_ERROR;
        }

        conn->prepared[q->stmt] = 1;

    } else if (solo && conn->unsynced
               && ngx_http_relyloop_pg_sync(conn) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (PQsendQueryPrepared(pg, st->name, q->nparams,
                            (const char *const *) q->values, NULL, NULL, 0)
        != 1
        || ngx_http_relyloop_pg_push(conn, NGX_HTTP_RELYLOOP_SLOT_QUERY, q, -1)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    q->inflight = 1;
    q->conn = conn;

    if (solo) {
        if (ngx_http_relyloop_pg_sync(conn) != NGX_OK) {
            return NGX_ERROR;
        }

        return ngx_http_relyloop_pg_flush(conn);
    }

    conn->unsynced = 1;

    if (!conn->sync_event.posted) {
        ngx_post_event(&conn->sync_event, &ngx_posted_events);
    }

    return NGX_OK;
}


static void
ngx_http_relyloop_pg_dispatch(ngx_http_relyloop_pg_pool_t *pool)
{
    ngx_queue_t                   *head;
    ngx_http_relyloop_pg_conn_t   *conn;
    ngx_http_relyloop_pg_query_t  *q;

    while (!ngx_queue_empty(&pool->waiting)) {

        conn = ngx_http_relyloop_pg_pick(pool);
        if (conn == NULL) {
            return;
        }

        head = ngx_queue_head(&pool->waiting);
        q = ngx_queue_data(head, ngx_http_relyloop_pg_query_t, queue);

        ngx_queue_remove(head);
        pool->nwaiting--;
        q->waiting = 0;

        if (ngx_http_relyloop_pg_send(conn, q) != NGX_OK) {
            ngx_queue_insert_head(&pool->waiting, &q->queue);
            pool->nwaiting++;
            q->waiting = 1;

            ngx_http_relyloop_pg_broken(conn, "send failed");
        }
    }
}


static void
ngx_http_relyloop_pg_fail_waiting(ngx_http_relyloop_pg_pool_t *pool)
{
    ngx_queue_t                   *head;
    ngx_http_relyloop_pg_query_t  *q;

    while (!ngx_queue_empty(&pool->waiting)) {
        head = ngx_queue_head(&pool->waiting);
        q = ngx_queue_data(head, ngx_http_relyloop_pg_query_t, queue);

        ngx_queue_remove(head);
        pool->nwaiting--;
        q->waiting = 0;

        ngx_http_relyloop_pg_complete(q, NULL, RL_DB_UNAVAILABLE);
    }
}


static void
ngx_http_relyloop_pg_complete(ngx_http_relyloop_pg_query_t *q, PGresult *res,
    rl_db_failure_t failure)
{
    if (q->timer.timer_set) {
        ngx_del_timer(&q->timer);
    }

    q->handler(q, res, failure);
}


/* a connection is up or on its way up: requests may wait for it */

static ngx_uint_t
ngx_http_relyloop_pg_live(ngx_http_relyloop_pg_pool_t *pool)
{
    ngx_uint_t  i;

    for (i = 0; i < pool->nconns; i++) {
        if (pool->conns[i].state != NGX_HTTP_RELYLOOP_PG_DISCONNECTED) {
            return 1;
        }
    }

    return 0;
}


/* e.g. "FATAL: terminating connection due to administrator command" */

static void
ngx_http_relyloop_pg_notice(void *arg, const char *message)
{
    size_t                        len;
    ngx_http_relyloop_pg_conn_t  *conn = arg;

    len = ngx_strlen(message);

    while (len && (message[len - 1] == '\n' || message[len - 1] == '\r')) {
        len--;
    }

    ngx_log_error(NGX_LOG_WARN, conn->pool->log, 0,
                  "relyloop: postgresql: %*s", len, message);
}


/* one line per failure burst, then a count every few seconds */

static void
ngx_http_relyloop_pg_log_failure(ngx_http_relyloop_pg_pool_t *pool,
    const char *what, const char *detail)
{
    u_char   *p, *last, buf[512];
    size_t    len;

    if (pool->failing
        && ngx_current_msec - pool->last_log < NGX_HTTP_RELYLOOP_PG_LOG_INTERVAL)
    {
        pool->suppressed++;
        return;
    }

    /* libpq's messages span lines: keep the log entry on one */

    p = buf;
    last = buf + sizeof(buf);

    for ( /* void */ ; detail && *detail && p < last; detail++) {
        if (*detail == '\n' || *detail == '\r' || *detail == '\t') {
            if (p > buf && p[-1] != ' ') {
                *p++ = ' ';
            }
            continue;
        }

        *p++ = *detail;
    }

    while (p > buf && p[-1] == ' ') {
        p--;
    }

    len = p - buf;

    ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                  "relyloop: postgresql %s%s%*s (%ui similar messages "
                  "suppressed)", what, len ? ": " : "", len, buf,
                  pool->suppressed);

    pool->failing = 1;
    pool->last_log = ngx_current_msec;
    pool->suppressed = 0;
}


void
ngx_http_relyloop_pg_stats(ngx_http_relyloop_pg_pool_t *pool, ngx_uint_t *up,
    ngx_uint_t *in_use, ngx_uint_t *waiting)
{
    ngx_uint_t                    i;
    ngx_http_relyloop_pg_conn_t  *conn;

    *up = 0;
    *in_use = 0;
    *waiting = pool->nwaiting;

    for (i = 0; i < pool->nconns; i++) {
        conn = &pool->conns[i];

        if (conn->state != NGX_HTTP_RELYLOOP_PG_READY) {
            continue;
        }

        (*up)++;

        if (conn->queries) {
            (*in_use)++;
        }
    }
}
