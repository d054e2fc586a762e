
/*
 * relyloop_pg_conninfo, turned at configuration time into the keyword and
 * value arrays that ngx_http_relyloop_pg_conn.c hands to PQconnectStartParams
 * (docs/architecture.md, "The PostgreSQL pool").
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <netdb.h>

#include "ngx_http_relyloop_module.h"


static const char *ngx_http_relyloop_strdup(ngx_pool_t *pool, const char *s);


/*
 * libpq's asynchronous connect must not resolve names (PQconnectStart calls
 * a blocking getaddrinfo), so every "host" that is not a socket directory is
 * resolved here, at configuration time, into "hostaddr". The session is
 * pinned to UTC/ISO, UTF-8 and shortest exact float text (the core formats
 * timestamps and numbers from that text, and cursors rely on floats reading
 * back exactly) and gets a
 * server-side statement_timeout equal to relyloop_pg_timeout, which cancels
 * a query whose request gave up on it.
 */

ngx_int_t
ngx_http_relyloop_build_conninfo(ngx_conf_t *cf,
    ngx_http_relyloop_main_conf_t *rmcf)
{
    int                 rc;
    char               *err;
    u_char             *p, *host_list, *addr_list, *options;
    size_t              len;
    ngx_uint_t          n, i, have_hostaddr, have_app, have_gss;
    ngx_str_t           hosts;
    struct addrinfo     hints, *res;
    PQconninfoOption   *opts, *o;
    u_char              ip[NGX_SOCKADDR_STRLEN];

    err = NULL;
    opts = PQconninfoParse((char *) rmcf->pg_conninfo.data, &err);
    if (opts == NULL) {
        if (err) {
            PQfreemem(err);
        }
        return NGX_ERROR;
    }

    n = 0;
    have_hostaddr = 0;
    have_app = 0;
    have_gss = 0;
    ngx_str_null(&hosts);

    for (o = opts; o->keyword; o++) {
        if (o->val == NULL || o->val[0] == '\0') {
            continue;
        }

        n++;

        if (ngx_strcmp(o->keyword, "hostaddr") == 0) {
            have_hostaddr = 1;

        } else if (ngx_strcmp(o->keyword, "host") == 0) {
            hosts.data = (u_char *) o->val;
            hosts.len = ngx_strlen(o->val);

        } else if (ngx_strcmp(o->keyword, "application_name") == 0) {
            have_app = 1;

        } else if (ngx_strcmp(o->keyword, "gssencmode") == 0) {
            have_gss = 1;
        }
    }

    /* + hostaddr, options, application_name, gssencmode, the NULL end */

    rmcf->pg_keywords = ngx_pcalloc(cf->pool, (n + 5) * sizeof(char *));
    rmcf->pg_values = ngx_pcalloc(cf->pool, (n + 5) * sizeof(char *));
    if (rmcf->pg_keywords == NULL || rmcf->pg_values == NULL) {
        PQconninfoFree(opts);
        return NGX_ERROR;
    }

    addr_list = NULL;

    if (!have_hostaddr && hosts.len) {

        /* one address per comma-separated host, in the same order */

        addr_list = ngx_pnalloc(cf->pool, 16 * NGX_SOCKADDR_STRLEN + 16);
        if (addr_list == NULL) {
            PQconninfoFree(opts);
            return NGX_ERROR;
        }

        p = addr_list;
        host_list = hosts.data;

        for (i = 0; ; i++) {
            u_char  *end, name[NGX_MAXHOSTNAMELEN + 1];

            end = (u_char *) ngx_strchr(host_list, ',');
            len = end ? (size_t) (end - host_list) : ngx_strlen(host_list);

            if (i >= 16 || len > NGX_MAXHOSTNAMELEN) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"relyloop_pg_conninfo\": too many or too "
                                   "long host names");
                PQconninfoFree(opts);
                return NGX_ERROR;
            }

            ngx_memcpy(name, host_list, len);
            name[len] = '\0';

            if (i > 0) {
                *p++ = ',';
            }

            if (len == 0 || name[0] == '/' || name[0] == '@') {
                /* a Unix socket directory (or default): no address */

            } else {
                ngx_memzero(&hints, sizeof(struct addrinfo));
                hints.ai_family = AF_UNSPEC;
                hints.ai_socktype = SOCK_STREAM;

                res = NULL;
                rc = getaddrinfo((char *) name, NULL, &hints, &res);

                if (rc != 0 || res == NULL) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "\"relyloop_pg_conninfo\": host \"%s\" "
                                       "not found: %s", name,
                                       gai_strerror(rc));
                    PQconninfoFree(opts);
                    return NGX_ERROR;
                }

                len = ngx_sock_ntop(res->ai_addr, res->ai_addrlen, ip,
                                    NGX_SOCKADDR_STRLEN, 0);
                freeaddrinfo(res);

                p = ngx_cpymem(p, ip, len);
            }

            if (end == NULL) {
                break;
            }

            host_list = end + 1;
        }

        *p = '\0';
    }

    i = 0;

    for (o = opts; o->keyword; o++) {
        if (o->val == NULL || o->val[0] == '\0') {
            continue;
        }

        if (ngx_strcmp(o->keyword, "options") == 0) {
            continue;
        }

        rmcf->pg_keywords[i] = ngx_http_relyloop_strdup(cf->pool, o->keyword);
        rmcf->pg_values[i] = ngx_http_relyloop_strdup(cf->pool, o->val);
        if (rmcf->pg_keywords[i] == NULL || rmcf->pg_values[i] == NULL) {
            PQconninfoFree(opts);
            return NGX_ERROR;
        }

        i++;
    }

    if (addr_list) {
        rmcf->pg_keywords[i] = "hostaddr";
        rmcf->pg_values[i] = (char *) addr_list;
        i++;
    }

    if (!have_app) {
        rmcf->pg_keywords[i] = "application_name";
        rmcf->pg_values[i] = "relyloop-nginx";
        i++;
    }

    if (!have_gss) {
        rmcf->pg_keywords[i] = "gssencmode";
        rmcf->pg_values[i] = "disable";
        i++;
    }

    len = sizeof("-c TimeZone=UTC -c DateStyle=ISO -c client_encoding=UTF8 "
                 "-c extra_float_digits=1 -c statement_timeout=")
          - 1 + NGX_INT_T_LEN + 1;

    for (o = opts; o->keyword; o++) {
        if (ngx_strcmp(o->keyword, "options") == 0 && o->val) {
            len += ngx_strlen(o->val) + 1;
        }
    }

    options = ngx_pnalloc(cf->pool, len);
    if (options == NULL) {
        PQconninfoFree(opts);
        return NGX_ERROR;
    }

    p = options;

    for (o = opts; o->keyword; o++) {
        if (ngx_strcmp(o->keyword, "options") == 0 && o->val && o->val[0]) {
            p = ngx_sprintf(p, "%s ", o->val);
        }
    }

    p = ngx_sprintf(p, "-c TimeZone=UTC -c DateStyle=ISO -c client_encoding=UTF8 "
                    "-c extra_float_digits=1 -c statement_timeout=%M%Z",
                    rmcf->pg_timeout);

    rmcf->pg_keywords[i] = "options";
    rmcf->pg_values[i] = (char *) options;
    i++;

    rmcf->pg_keywords[i] = NULL;
    rmcf->pg_values[i] = NULL;

    PQconninfoFree(opts);

    return NGX_OK;
}


static const char *
ngx_http_relyloop_strdup(ngx_pool_t *pool, const char *s)
{
    size_t   len;
    u_char  *p;

    len = ngx_strlen(s);

    p = ngx_pnalloc(pool, len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s, len + 1);

    return (const char *) p;
}
