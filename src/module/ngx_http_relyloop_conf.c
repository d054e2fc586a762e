
/*
 * ngx_http_relyloop_module: the directive handlers, the checks of their
 * values and the location configuration (docs/directives.md).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_relyloop_module.h"
#include "ngx_http_relyloop_conf.h"


static char *ngx_http_relyloop_range_check(ngx_conf_t *cf, void *post,
    void *data);
static ngx_int_t ngx_http_relyloop_valid_origin(ngx_str_t *origin);


ngx_http_relyloop_bounds_t  ngx_http_relyloop_positive = { 1, 65536 };
ngx_http_relyloop_bounds_t  ngx_http_relyloop_waiting = { 0, 1048576 };

ngx_http_relyloop_range_t  ngx_http_relyloop_body_buffer_bounds =
    { ngx_http_relyloop_range_check, 1024, 64 * 1024 * 1024, 0,
      "relyloop_body_buffer_size", "a size from 1k to 64m" };

/*
 * relyloop_webhook_max_body: up to 25m (GitHub caps payloads at 25 MB, and
 * the body is parsed and hashed on the event loop)
 */
ngx_http_relyloop_range_t  ngx_http_relyloop_webhook_body_bounds =
    { ngx_http_relyloop_range_check, 1024, 25 * 1024 * 1024, 0,
      "relyloop_webhook_max_body", "a size from 1k to 25m" };

ngx_http_relyloop_range_t  ngx_http_relyloop_replay_window_bounds =
    { ngx_http_relyloop_range_check, 3600, 30 * 86400, 1,
      "relyloop_webhook_replay_window", "a time from 1h to 30d" };


void *
ngx_http_relyloop_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_relyloop_loc_conf_t  *rlcf;

    rlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_relyloop_loc_conf_t));
    if (rlcf == NULL) {
        return NULL;
    }

    rlcf->api = NGX_CONF_UNSET;
    rlcf->cors_origins = NGX_CONF_UNSET_PTR;
    rlcf->body_buffer_size = NGX_CONF_UNSET_SIZE;
    rlcf->webhook = NGX_CONF_UNSET;
    rlcf->webhook_max_body = NGX_CONF_UNSET_SIZE;

    return rlcf;
}


char *
ngx_http_relyloop_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_relyloop_loc_conf_t *prev = parent;
    ngx_http_relyloop_loc_conf_t *conf = child;

    size_t                     size;
    ngx_http_core_loc_conf_t  *clcf;

    /* relyloop_api is not inherited: it installs a content handler */
    ngx_conf_init_value(conf->api, 0);
    ngx_conf_merge_ptr_value(conf->cors_origins, prev->cors_origins, NULL);
    ngx_conf_merge_size_value(conf->body_buffer_size, prev->body_buffer_size,
                              1024 * 1024);

    ngx_conf_init_value(conf->webhook, 0);
    ngx_conf_merge_size_value(conf->webhook_max_body, prev->webhook_max_body,
                              1024 * 1024);

    if (!conf->api) {
        return NGX_CONF_OK;
    }

    if (conf->webhook) {

        /*
         * A delivery is kept in memory up to relyloop_webhook_max_body, and
         * a larger one is refused with 413 before it is read (Content-Length)
         * or as soon as a chunked body grows past it (docs/webhooks.md).
         */

        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

        clcf->client_max_body_size = (off_t) conf->webhook_max_body;

        if (clcf->client_body_buffer_size < conf->webhook_max_body) {
            clcf->client_body_buffer_size = conf->webhook_max_body;
        }

        return NGX_CONF_OK;
    }

    /*
     * A body nginx spools to a temporary file cannot be read back without
     * blocking, so an API location keeps bodies up to client_max_body_size
     * (at most relyloop_body_buffer_size) in memory: its
     * client_body_buffer_size is raised to that. The core module's
     * configuration of this location is merged already.
     */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    size = conf->body_buffer_size;

    if (clcf->client_max_body_size > 0
        && (off_t) size > clcf->client_max_body_size)
    {
        size = (size_t) clcf->client_max_body_size;
    }

    if (clcf->client_body_buffer_size < size) {
        clcf->client_body_buffer_size = size;
    }

    return NGX_CONF_OK;
}


/*
 * The post handler of a size or time directive with a range: one message,
 * naming the directive, the value as written and the range.
 */

static char *
ngx_http_relyloop_range_check(ngx_conf_t *cf, void *post, void *data)
{
    ngx_http_relyloop_range_t *range = post;

    off_t        v;
    ngx_str_t   *value;

    v = range->is_time ? (off_t) *(time_t *) data : (off_t) *(size_t *) data;

    if (v < range->min || v > range->max) {
        value = cf->args->elts;

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"%s\" value \"%V\", it must be %s",
                           range->name, &value[1], range->text);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* relyloop_webhook: the API handler, serving POST /webhooks/github only */

char *
ngx_http_relyloop_webhook(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_relyloop_loc_conf_t *rlcf = conf;

    char  *rv;

    if (rlcf->webhook != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    rv = ngx_http_relyloop_api(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    rlcf->webhook = 1;

    return NGX_CONF_OK;
}


char *
ngx_http_relyloop_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_relyloop_loc_conf_t *rlcf = conf;

    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_relyloop_main_conf_t  *rmcf;

    if (rlcf->api != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    rlcf->api = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_relyloop_handler;

    rmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_relyloop_module);
    rmcf->used = 1;

    return NGX_CONF_OK;
}


char *
ngx_http_relyloop_pg_conninfo(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_relyloop_main_conf_t *rmcf = conf;

    char              *err;
    ngx_str_t         *value;
    PQconninfoOption  *opts;

    if (rmcf->pg_conninfo.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    err = NULL;
    opts = PQconninfoParse((char *) value[1].data, &err);

    if (opts == NULL) {
        /* libpq's message may quote the string, never print it whole */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"relyloop_pg_conninfo\": %s",
                           err ? err : "out of memory");
        if (err) {
            PQfreemem(err);
        }
        return NGX_CONF_ERROR;
    }

    PQconninfoFree(opts);

    rmcf->pg_conninfo = value[1];

    return NGX_CONF_OK;
}


char *
ngx_http_relyloop_environment(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_relyloop_main_conf_t *rmcf = conf;

    ngx_str_t  *value;

    if (rmcf->environment.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "development") != 0
        && ngx_strcmp(value[1].data, "staging") != 0
        && ngx_strcmp(value[1].data, "production") != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"relyloop_environment\" value \"%V\", "
                           "it must be \"development\", \"staging\" or "
                           "\"production\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    rmcf->environment = value[1];

    return NGX_CONF_OK;
}


/*
 * relyloop_github_web_url: checked by the core (rl_web_url_check) with the
 * very rule the worker applies to its --github-web-url (docs/directives.md),
 * so that nginx -t accepts exactly the URLs the worker does. Trailing '/'s
 * are dropped.
 */

char *
ngx_http_relyloop_web_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_relyloop_main_conf_t *rmcf = conf;

    size_t      len;
    rl_str_t    url;
    ngx_str_t  *value;

    if (rmcf->github_web_url.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    url.data = (const char *) value[1].data;
    url.len = value[1].len;

    if (rl_web_url_check(&len, url) != RL_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"relyloop_github_web_url\" value \"%V\", "
                           "it must be \"http[s]://host[:port][/path]\": a "
                           "host name, IPv4 address or [IPv6] address, a port "
                           "from 1 to 65535, no user info, query, fragment, "
                           "backslash or space", &value[1]);
        return NGX_CONF_ERROR;
    }

    rmcf->github_web_url.data = value[1].data;
    rmcf->github_web_url.len = len;
    rmcf->github_web_url.data[len] = '\0';

    return NGX_CONF_OK;
}


char *
ngx_http_relyloop_cors_origins(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_relyloop_loc_conf_t *rlcf = conf;

    ngx_str_t   *value, *origin;
    ngx_uint_t   i;

    if (rlcf->cors_origins != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    rlcf->cors_origins = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                          sizeof(ngx_str_t));
    if (rlcf->cors_origins == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        /* an origin is "scheme://host[:port]": no path, no trailing '/' */

        if (ngx_http_relyloop_valid_origin(&value[i]) != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"relyloop_cors_origins\" value "
                               "\"%V\", an origin is \"http[s]://host[:port]\"",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        origin = ngx_array_push(rlcf->cors_origins);
        if (origin == NULL) {
            return NGX_CONF_ERROR;
        }

        *origin = value[i];
    }

    return NGX_CONF_OK;
}


/* "http[s]://host[:port]": no path, user info, query, fragment or spaces */

static ngx_int_t
ngx_http_relyloop_valid_origin(ngx_str_t *origin)
{
    u_char  *p, *last;

    p = origin->data;
    last = origin->data + origin->len;

    if (origin->len > 7 && ngx_strncmp(p, "http://", 7) == 0) {
        p += 7;

    } else if (origin->len > 8 && ngx_strncmp(p, "https://", 8) == 0) {
        p += 8;

    } else {
        return NGX_ERROR;
    }

    for ( /* void */ ; p < last; p++) {
        if (*p <= ' ' || *p >= 0x7f || *p == '@' || *p == '?' || *p == '#'
            || *p == '\\' || *p == '/')
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* nginx's own number and time slots, with messages that quote the value */

char *
ngx_http_relyloop_set_number(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_relyloop_bounds_t *bounds = cmd->post;

    ngx_int_t    n;
    ngx_str_t   *value;
    ngx_uint_t  *np;

    np = (ngx_uint_t *) ((char *) conf + cmd->offset);

    if (*np != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    n = ngx_atoi(value[1].data, value[1].len);

    if (n == NGX_ERROR || (ngx_uint_t) n < bounds->min
        || (ngx_uint_t) n > bounds->max)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"%V\" value \"%V\", it must be a number "
                           "from %ui to %ui", &cmd->name, &value[1],
                           bounds->min, bounds->max);
        return NGX_CONF_ERROR;
    }

    *np = (ngx_uint_t) n;

    return NGX_CONF_OK;
}


char *
ngx_http_relyloop_set_msec(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t   *value;
    ngx_msec_t  *mp, ms;

    mp = (ngx_msec_t *) ((char *) conf + cmd->offset);

    if (*mp != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;
    ms = ngx_parse_time(&value[1], 0);

    if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"%V\" value \"%V\", it must be a time "
                           "greater than zero, such as \"5s\" or \"500ms\"",
                           &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    *mp = ms;

    return NGX_CONF_OK;
}
