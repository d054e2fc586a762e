
/*
 * One connection of the PostgreSQL pool: its life from PQconnectStartParams
 * to PQfinish (docs/architecture.md, "The PostgreSQL pool").
 *
 * DISCONNECTED -> CONNECTING (PQconnectPoll driven by socket events, under
 * relyloop_pg_timeout) -> READY (nonblocking, in pipeline mode); any failure
 * closes the connection, fails what it carried, and reconnects after a
 * backoff. A connection nobody waits on any more is recycled: closed and
 * reopened at once.
 *
 * The libpq socket is registered level-triggered: libpq's connect state
 * machine asks for a writable socket twice in a row and PQconsumeInput reads
 * at most its buffer's free space, so edge-triggered events would hang both.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_relyloop_pg.h"


static ngx_int_t ngx_http_relyloop_pg_attach(
    ngx_http_relyloop_pg_conn_t *conn);
static void ngx_http_relyloop_pg_detach(ngx_http_relyloop_pg_conn_t *conn);
static void ngx_http_relyloop_pg_ready(ngx_http_relyloop_pg_conn_t *conn);
static void ngx_http_relyloop_pg_notice(void *arg, const char *message);


void
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

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "relyloop pg #%ui: connecting, socket %d",
                   conn->index, conn->connection->fd);

    /* libpq's connect_timeout is not applied by PQconnectPoll */
    ngx_add_timer(&conn->retry_event, rmcf->pg_timeout);

    /* as if PQconnectPoll had returned PGRES_POLLING_WRITING */
    if (ngx_http_relyloop_pg_want(conn, 0, 1) != NGX_OK) {
        ngx_http_relyloop_pg_broken(conn, "cannot register the socket");
    }

    return;

retry:

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "relyloop pg #%ui: connect failed, retry in %M ms",
                   conn->index, conn->backoff);

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

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                   "relyloop pg #%ui: detaching socket %d",
                   conn->index, c->fd);

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


ngx_int_t
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


void
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

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                       "relyloop pg #%ui: connect moved to socket %d",
                       conn->index, fd);
    }

    switch (status) {

    case PGRES_POLLING_READING:
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                       "relyloop pg #%ui: connect polling, reading",
                       conn->index);
        rc = ngx_http_relyloop_pg_want(conn, 1, 0);
        break;

    case PGRES_POLLING_WRITING:
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                       "relyloop pg #%ui: connect polling, writing",
                       conn->index);
        rc = ngx_http_relyloop_pg_want(conn, 0, 1);
        break;

    case PGRES_POLLING_OK:
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                       "relyloop pg #%ui: connected", conn->index);
        ngx_http_relyloop_pg_ready(conn);
        return;

    default: /* PGRES_POLLING_FAILED */
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                       "relyloop pg #%ui: connect polling failed",
                       conn->index);
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

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "relyloop pg #%ui: ready, in pipeline mode", conn->index);

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


void
ngx_http_relyloop_pg_retry_handler(ngx_event_t *ev)
{
    ngx_http_relyloop_pg_conn_t  *conn = ev->data;

    if (conn->state == NGX_HTTP_RELYLOOP_PG_CONNECTING) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                       "relyloop pg #%ui: connect timed out", conn->index);
        ngx_http_relyloop_pg_log_failure(conn->pool, "connect timed out",
                                         NULL);
        ngx_http_relyloop_pg_broken(conn, NULL);
        return;
    }

    if (conn->state == NGX_HTTP_RELYLOOP_PG_DISCONNECTED) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                       "relyloop pg #%ui: reconnecting", conn->index);
        ngx_http_relyloop_pg_connect(conn);
    }
}


void
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

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                   "relyloop pg #%ui: recycling, %ui abandoned queries",
                   conn->index, conn->queries);

    ngx_http_relyloop_pg_broken(conn, NULL);

    /* not a failure: reconnect now, without the backoff */

    if (conn->retry_event.timer_set) {
        ngx_del_timer(&conn->retry_event);
    }

    conn->backoff = NGX_HTTP_RELYLOOP_PG_BACKOFF_MIN;

    ngx_http_relyloop_pg_connect(conn);
}


/* The connection's own timer and posted events, withdrawn. */

void
ngx_http_relyloop_pg_cancel_events(ngx_http_relyloop_pg_conn_t *conn)
{
    if (conn->retry_event.timer_set) {
        ngx_del_timer(&conn->retry_event);
    }

    if (conn->sync_event.posted) {
        ngx_delete_posted_event(&conn->sync_event);
    }

    if (conn->recycle_event.posted) {
        ngx_delete_posted_event(&conn->recycle_event);
    }
}


/*
 * The connection is gone or unusable: fail what it carried, close it and
 * reconnect later. what == NULL: the caller has logged already.
 */

void
ngx_http_relyloop_pg_broken(ngx_http_relyloop_pg_conn_t *conn,
    const char *what)
{
    ngx_uint_t                     i, n;
    ngx_http_relyloop_pg_pool_t   *pool;
    ngx_http_relyloop_pg_query_t  *q;

    pool = conn->pool;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "relyloop pg #%ui: closing in state %ui, %ui slots in "
                   "the ring", conn->index, conn->state, conn->count);

    if (what && !pool->destroying) {
        ngx_http_relyloop_pg_log_failure(pool, what,
                                         conn->pgconn
                                         ? PQerrorMessage(conn->pgconn) : NULL);
    }

    if (!pool->destroying) {
        ngx_http_relyloop_metrics_count(NGX_HTTP_RELYLOOP_M_PG_RECONNECTS);
    }

    ngx_http_relyloop_pg_cancel_events(conn);

    conn->recycle = 0;

    ngx_http_relyloop_pg_detach(conn);

    if (conn->pgconn) {
        PQfinish(conn->pgconn);
        conn->pgconn = NULL;
    }

    /* collect the requests first: their handlers may submit again */

    n = ngx_http_relyloop_pg_drain(conn);

    conn->state = NGX_HTTP_RELYLOOP_PG_DISCONNECTED;

    if (!pool->destroying && !ngx_exiting && !ngx_quit && !ngx_terminate) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                       "relyloop pg #%ui: closed, reconnect in %M ms",
                       conn->index, conn->backoff);
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
