
/*
 * The pipeline of one PostgreSQL connection (docs/architecture.md, "The
 * PostgreSQL pool").
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
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_relyloop_pg.h"


static ngx_int_t ngx_http_relyloop_pg_send_query(
    ngx_http_relyloop_pg_conn_t *conn, ngx_http_relyloop_pg_query_t *q);
static ngx_int_t ngx_http_relyloop_pg_push(ngx_http_relyloop_pg_conn_t *conn,
    ngx_uint_t kind, ngx_http_relyloop_pg_query_t *q, int stmt);
static ngx_int_t ngx_http_relyloop_pg_sync(ngx_http_relyloop_pg_conn_t *conn);
static void ngx_http_relyloop_pg_pop(ngx_http_relyloop_pg_conn_t *conn);
static void ngx_http_relyloop_pg_results(ngx_http_relyloop_pg_conn_t *conn);


void
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

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                   "relyloop pg #%ui: %s event",
                   conn->index, ev->write ? "write" : "read");

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


ngx_int_t
ngx_http_relyloop_pg_flush(ngx_http_relyloop_pg_conn_t *conn)
{
    int  rc;

    rc = PQflush(conn->pgconn);

    if (rc < 0) {
        return NGX_ERROR;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                   "relyloop pg #%ui: flushed, %s", conn->index,
                   rc == 1 ? "output pending" : "all sent");

    /* while output is pending, keep reading too: libpq may need to */

    return ngx_http_relyloop_pg_want(conn, 1, rc == 1);
}


void
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


/*
 * Sends q on conn. On failure q is in no ring (the caller still owns it) and
 * the connection must be given up.
 */

ngx_int_t
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

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                       "relyloop pg #%ui: prepare \"%s\"",
                       conn->index, st->name);

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

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                   "relyloop pg #%ui: query \"%s\"%s",
                   conn->index, st->name, solo ? " in its own segment" : "");

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

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                   "relyloop pg #%ui: push %s at slot %ui, %ui in the ring",
                   conn->index, ngx_http_relyloop_pg_slot_name(kind), i,
                   conn->count);

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

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                   "relyloop pg #%ui: sync, %ui queries in flight",
                   conn->index, conn->queries);

    return NGX_OK;
}


static void
ngx_http_relyloop_pg_pop(ngx_http_relyloop_pg_conn_t *conn)
{
    ngx_http_relyloop_pg_slot_t  *slot;

    slot = &conn->slots[conn->head];

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                   "relyloop pg #%ui: pop %s at slot %ui, %ui left",
                   conn->index, ngx_http_relyloop_pg_slot_name(slot->kind),
                   conn->head, conn->count - 1);

    if (slot->kind == NGX_HTTP_RELYLOOP_SLOT_QUERY) {
        conn->queries--;
    }

    ngx_memzero(slot, sizeof(ngx_http_relyloop_pg_slot_t));

    conn->head = (conn->head + 1) % conn->nslots;
    conn->count--;
}


ngx_uint_t
ngx_http_relyloop_pg_drain(ngx_http_relyloop_pg_conn_t *conn)
{
    ngx_uint_t                    n;
    ngx_http_relyloop_pg_slot_t  *slot;

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

    return n;
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

            ngx_log_debug3(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                           "relyloop pg #%ui: prepare \"%s\": %s",
                           conn->index, conn->pool->stmts[slot->stmt].name,
                           PQresStatus(status));

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
                ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                               "relyloop pg #%ui: result of an abandoned "
                               "query dropped", conn->index);
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
                        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                                       "relyloop pg #%ui: \"%s\" aborted "
                                       "too often, given up", conn->index,
                                       conn->pool->stmts[q->stmt].name);
                        ngx_http_relyloop_pg_complete(q, NULL,
                                                      RL_DB_UNAVAILABLE);
                        break;
                    }
                }

                ngx_log_debug3(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                               "relyloop pg #%ui: \"%s\" aborted by a "
                               "neighbour, resubmitted alone, %ui counted",
                               conn->index, conn->pool->stmts[q->stmt].name,
                               q->resubmits);

                q->alone = 1;
                ngx_http_relyloop_metrics_count(
                    NGX_HTTP_RELYLOOP_M_PG_RESUBMITS);

                ngx_queue_insert_head(&conn->pool->waiting, &q->queue);
                conn->pool->nwaiting++;
                q->waiting = 1;
                break;
            }

            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                           "relyloop pg #%ui: result of \"%s\"",
                           conn->index, conn->pool->stmts[q->stmt].name);

            ngx_http_relyloop_pg_complete(q, res, 0);
            break;
        }
    }

    ngx_http_relyloop_pg_dispatch(conn->pool);
}


ngx_uint_t
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
