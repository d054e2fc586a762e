
/*
 * The worker link: one request line and one reply line over the worker's
 * Unix socket (docs/worker.md, "The socket protocol"), non-blocking, within
 * relyloop_worker_timeout for
 * connect, send and reply together. A connection per exchange: connecting a
 * local socket is cheap, and a fresh one never carries a stale reply.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <sys/un.h>

#include "ngx_http_relyloop_module.h"


static void ngx_http_relyloop_link_write_handler(ngx_event_t *wev);
static void ngx_http_relyloop_link_read_handler(ngx_event_t *rev);
static void ngx_http_relyloop_link_finish(ngx_http_relyloop_link_t *link,
    ngx_str_t *reply, const char *error);


ngx_int_t
ngx_http_relyloop_link_start(ngx_http_relyloop_link_t *link, ngx_pool_t *pool,
    ngx_str_t *socket_path, ngx_msec_t timeout, ngx_str_t *line,
    const char **error)
{
    int                  rc;
    ngx_err_t            err;
    ngx_socket_t         s;
    ngx_connection_t    *c;
    struct sockaddr_un   sun;

    link->done = 0;
    link->connection = NULL;
    link->pool = pool;

    link->out = ngx_create_temp_buf(pool, line->len);
    link->in = ngx_create_temp_buf(pool, 1024);

    if (link->out == NULL || link->in == NULL) {
        *error = "out of memory";
        return NGX_ERROR;
    }

    link->out->last = ngx_cpymem(link->out->pos, line->data, line->len);

    ngx_memzero(&sun, sizeof(struct sockaddr_un));
    sun.sun_family = AF_UNIX;
    ngx_memcpy(sun.sun_path, socket_path->data, socket_path->len);

    s = ngx_socket(AF_UNIX, SOCK_STREAM, 0);

    if (s == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ERR, link->log, ngx_socket_errno,
                      "relyloop: socket() for the worker failed");
        *error = "cannot create a socket";
        return NGX_ERROR;
    }

    if (ngx_nonblocking(s) == -1) {
        ngx_close_socket(s);
        *error = "cannot make the socket non-blocking";
        return NGX_ERROR;
    }

    c = ngx_get_connection(s, link->log);
    if (c == NULL) {
        ngx_close_socket(s);
        *error = "no free connection";
        return NGX_ERROR;
    }

    c->data = link;
    c->log = link->log;
    c->read->log = link->log;
    c->write->log = link->log;
    c->recv = ngx_recv;
    c->send = ngx_send;
    c->read->handler = ngx_http_relyloop_link_read_handler;
    c->write->handler = ngx_http_relyloop_link_write_handler;

    link->connection = c;

    rc = connect(s, (struct sockaddr *) &sun, sizeof(struct sockaddr_un));

    if (rc == -1) {
        err = ngx_socket_errno;

        /* a full backlog (EAGAIN) means the worker is not keeping up */

        if (err != NGX_EINPROGRESS) {
            ngx_log_error(NGX_LOG_ERR, link->log, err,
                          "relyloop: connect() to the worker at \"%V\" "
                          "failed", socket_path);
            ngx_http_relyloop_link_close(link);
            *error = (err == NGX_ECONNREFUSED || err == NGX_ENOENT)
                     ? "the worker is not running"
                     : "cannot connect to the worker";
            return NGX_ERROR;
        }
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK
        || ngx_handle_write_event(c->write, 0) != NGX_OK)
    {
        ngx_http_relyloop_link_close(link);
        *error = "cannot register the socket";
        return NGX_ERROR;
    }

    ngx_add_timer(c->read, timeout);

    return NGX_OK;
}


void
ngx_http_relyloop_link_close(ngx_http_relyloop_link_t *link)
{
    if (link->connection) {
        ngx_close_connection(link->connection);
        link->connection = NULL;
    }

    link->done = 1;
}


static void
ngx_http_relyloop_link_write_handler(ngx_event_t *wev)
{
    ssize_t                    n;
    ngx_connection_t          *c;
    ngx_http_relyloop_link_t  *link;

    c = wev->data;
    link = c->data;

    while (link->out->pos < link->out->last) {
        n = c->send(c, link->out->pos, link->out->last - link->out->pos);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_http_relyloop_link_finish(link, NULL,
                                          "cannot send to the worker");
            return;
        }

        link->out->pos += n;
    }

    if (ngx_handle_write_event(wev, 0) != NGX_OK) {
        ngx_http_relyloop_link_finish(link, NULL, "cannot register the socket");
    }
}


static void
ngx_http_relyloop_link_read_handler(ngx_event_t *rev)
{
    u_char                    *nl;
    size_t                     size, max;
    ssize_t                    n;
    ngx_buf_t                 *b, *nb;
    ngx_str_t                  reply;
    ngx_connection_t          *c;
    ngx_http_relyloop_link_t  *link;

    c = rev->data;
    link = c->data;

    if (rev->timedout) {
        ngx_log_error(NGX_LOG_ERR, link->log, NGX_ETIMEDOUT,
                      "relyloop: the worker did not answer within "
                      "relyloop_worker_timeout");
        ngx_http_relyloop_link_finish(link, NULL,
                                      "the worker did not answer in time");
        return;
    }

    b = link->in;

    for ( ;; ) {

        if (b->last == b->end) {

            /*
             * the worker's replies are small; the protocol caps a line at
             * rl_worker_line_max() bytes (docs/worker.md): room for that
             * and the newline, never more
             */

            max = rl_worker_line_max() + 1;
            size = b->end - b->start;

            if (size >= max) {
                ngx_http_relyloop_link_finish(link, NULL,
                                              "the worker's reply is too long");
                return;
            }

            size = ngx_min(size * 2, max);

            nb = ngx_create_temp_buf(link->pool, size);
            if (nb == NULL) {
                ngx_http_relyloop_link_finish(link, NULL, "out of memory");
                return;
            }

            nb->last = ngx_cpymem(nb->pos, b->pos, b->last - b->pos);
            link->in = nb;
            b = nb;
        }

        n = c->recv(c, b->last, b->end - b->last);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_http_relyloop_link_finish(link, NULL,
                                          "the worker closed the connection "
                                          "without a reply");
            return;
        }

        nl = ngx_strlchr(b->last, b->last + n, '\n');
        b->last += n;

        if (nl) {
            reply.data = b->pos;
            reply.len = nl - b->pos;
            ngx_http_relyloop_link_finish(link, &reply, NULL);
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_relyloop_link_finish(link, NULL, "cannot register the socket");
    }
}


static void
ngx_http_relyloop_link_finish(ngx_http_relyloop_link_t *link, ngx_str_t *reply,
    const char *error)
{
    if (link->done) {
        return;
    }

    link->done = 1;

    if (link->connection && link->connection->read->timer_set) {
        ngx_del_timer(link->connection->read);
    }

    link->handler(link, reply, error);
}
