
/*
 * The per-worker-process pool of pipelined PostgreSQL connections on nginx's
 * event loop (docs/architecture.md, "The PostgreSQL pool"): the submit API
 * of ngx_http_relyloop_module.h, the wait queue bounded by
 * relyloop_pg_max_waiting, and dispatch onto the connection with room.
 * ngx_http_relyloop_pg_conn.c runs each connection's life,
 * ngx_http_relyloop_pg_pipeline.c its pipeline.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_relyloop_pg.h"


static void ngx_http_relyloop_pg_timeout_handler(ngx_event_t *ev);
static ngx_http_relyloop_pg_conn_t *ngx_http_relyloop_pg_pick(
    ngx_http_relyloop_pg_pool_t *pool);


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

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "relyloop pg: pool of %ui connections, pipeline depth %ui",
                   pool->nconns, pool->depth);

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

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "relyloop pg: closing the pool, %ui waiting",
                   pool->nwaiting);

    for (i = 0; i < pool->nconns; i++) {
        conn = &pool->conns[i];

        ngx_http_relyloop_pg_cancel_events(conn);

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

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, q->log, 0,
                   "relyloop pg: \"%s\" waits for a connection, %ui waiting",
                   pool->stmts[q->stmt].name, pool->nwaiting);

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
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, q->log, 0,
                       "relyloop pg: abandoning a waiting query");

        ngx_queue_remove(&q->queue);
        q->pool->nwaiting--;
        q->waiting = 0;
    }

    if (q->inflight) {
        /* the slot stays; its result is read and dropped when it comes */
        conn = q->conn;

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, q->log, 0,
                       "relyloop pg #%ui: abandoning the query at slot %ui",
                       conn->index, q->slot);

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
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, q->log, 0,
                           "relyloop pg #%ui: nobody waits, to be recycled",
                           conn->index);

            conn->recycle = 1;

            if (!conn->recycle_event.posted) {
                ngx_post_event(&conn->recycle_event, &ngx_posted_events);
            }
        }
    }
}


static void
ngx_http_relyloop_pg_timeout_handler(ngx_event_t *ev)
{
    ngx_http_relyloop_pg_query_t  *q = ev->data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, q->log, 0,
                   "relyloop pg: \"%s\" timed out",
                   q->pool->stmts[q->stmt].name);

    ngx_http_relyloop_metrics_count(NGX_HTTP_RELYLOOP_M_PG_TIMEOUTS);

    /* the server's statement_timeout cancels a query still running */

    ngx_http_relyloop_pg_abandon(q);
    q->handler(q, NULL, RL_DB_TIMEOUT);
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


void
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

        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, q->log, 0,
                       "relyloop pg #%ui: \"%s\" dispatched, %ui waiting",
                       conn->index, pool->stmts[q->stmt].name, pool->nwaiting);

        if (ngx_http_relyloop_pg_send(conn, q) != NGX_OK) {
            ngx_queue_insert_head(&pool->waiting, &q->queue);
            pool->nwaiting++;
            q->waiting = 1;

            ngx_http_relyloop_pg_broken(conn, "send failed");
        }
    }
}


void
ngx_http_relyloop_pg_fail_waiting(ngx_http_relyloop_pg_pool_t *pool)
{
    ngx_queue_t                   *head;
    ngx_http_relyloop_pg_query_t  *q;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "relyloop pg: no connection up, failing %ui waiting",
                   pool->nwaiting);

    while (!ngx_queue_empty(&pool->waiting)) {
        head = ngx_queue_head(&pool->waiting);
        q = ngx_queue_data(head, ngx_http_relyloop_pg_query_t, queue);

        ngx_queue_remove(head);
        pool->nwaiting--;
        q->waiting = 0;

        ngx_http_relyloop_pg_complete(q, NULL, RL_DB_UNAVAILABLE);
    }
}


void
ngx_http_relyloop_pg_complete(ngx_http_relyloop_pg_query_t *q, PGresult *res,
    rl_db_failure_t failure)
{
    if (q->timer.timer_set) {
        ngx_del_timer(&q->timer);
    }

    q->handler(q, res, failure);
}


/* a connection is up or on its way up: requests may wait for it */

ngx_uint_t
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


/* one line per failure burst, then a count every few seconds */

void
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
