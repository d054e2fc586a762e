
/*
 * ngx_http_relyloop_module: directives, configuration and process hooks.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <netdb.h>
#include <sys/un.h>

#include "ngx_http_relyloop_module.h"


static ngx_int_t ngx_http_relyloop_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_relyloop_header_filter(ngx_http_request_t *r);
static void *ngx_http_relyloop_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_relyloop_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_relyloop_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_relyloop_body_buffer_check(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_relyloop_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);

static char *ngx_http_relyloop_webhook(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_relyloop_webhook_body_check(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_relyloop_replay_window_check(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_relyloop_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_relyloop_pg_conninfo(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_relyloop_environment(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_relyloop_web_url(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_relyloop_cors_origins(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_relyloop_set_number(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_relyloop_set_msec(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

static ngx_int_t ngx_http_relyloop_build_conninfo(ngx_conf_t *cf,
    ngx_http_relyloop_main_conf_t *rmcf);
static const char *ngx_http_relyloop_strdup(ngx_pool_t *pool, const char *s);
static ngx_int_t ngx_http_relyloop_init_process(ngx_cycle_t *cycle);
static void ngx_http_relyloop_exit_process(ngx_cycle_t *cycle);


/* the accepted range of a number directive */
typedef struct {
    ngx_uint_t  min;
    ngx_uint_t  max;
} ngx_http_relyloop_bounds_t;

static ngx_http_relyloop_bounds_t  ngx_http_relyloop_positive = { 1, 65536 };
static ngx_http_relyloop_bounds_t  ngx_http_relyloop_waiting = { 0, 1048576 };

/* relyloop_body_buffer_size: 1k .. 64m */
#define NGX_HTTP_RELYLOOP_BODY_MIN  1024
#define NGX_HTTP_RELYLOOP_BODY_MAX  (64 * 1024 * 1024)

static ngx_conf_post_t  ngx_http_relyloop_body_buffer_bounds =
    { ngx_http_relyloop_body_buffer_check };

/*
 * relyloop_webhook_max_body: 1k .. 25m (GitHub caps payloads at 25 MB, and
 * the body is parsed and hashed on the event loop);
 * relyloop_webhook_replay_window: 1h .. 30d
 */
#define NGX_HTTP_RELYLOOP_WEBHOOK_BODY_MAX  (25 * 1024 * 1024)
static ngx_conf_post_t  ngx_http_relyloop_webhook_body_bounds =
    { ngx_http_relyloop_webhook_body_check };
static ngx_conf_post_t  ngx_http_relyloop_replay_window_bounds =
    { ngx_http_relyloop_replay_window_check };


static ngx_command_t  ngx_http_relyloop_commands[] = {

    { ngx_string("relyloop_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_relyloop_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("relyloop_webhook"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_relyloop_webhook,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("relyloop_webhook_max_body"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_relyloop_loc_conf_t, webhook_max_body),
      &ngx_http_relyloop_webhook_body_bounds },

    { ngx_string("relyloop_webhook_replay_window"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_relyloop_main_conf_t, webhook_replay_window),
      &ngx_http_relyloop_replay_window_bounds },

    { ngx_string("relyloop_pg_conninfo"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_relyloop_pg_conninfo,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_relyloop_main_conf_t, pg_conninfo),
      NULL },

    { ngx_string("relyloop_pg_pool_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_relyloop_set_number,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_relyloop_main_conf_t, pg_pool_size),
      &ngx_http_relyloop_positive },

    { ngx_string("relyloop_pg_max_waiting"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_relyloop_set_number,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_relyloop_main_conf_t, pg_max_waiting),
      &ngx_http_relyloop_waiting },

    { ngx_string("relyloop_pg_pipeline_depth"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_relyloop_set_number,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_relyloop_main_conf_t, pg_pipeline_depth),
      &ngx_http_relyloop_positive },

    { ngx_string("relyloop_pg_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_relyloop_set_msec,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_relyloop_main_conf_t, pg_timeout),
      NULL },

    { ngx_string("relyloop_worker_socket"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_relyloop_main_conf_t, worker_socket),
      NULL },

    { ngx_string("relyloop_worker_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_relyloop_set_msec,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_relyloop_main_conf_t, worker_timeout),
      NULL },

    { ngx_string("relyloop_secrets_dir"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_relyloop_main_conf_t, secrets_dir),
      NULL },

    { ngx_string("relyloop_environment"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_relyloop_environment,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_relyloop_main_conf_t, environment),
      NULL },

    { ngx_string("relyloop_github_web_url"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_relyloop_web_url,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_relyloop_main_conf_t, github_web_url),
      NULL },

    { ngx_string("relyloop_body_buffer_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_relyloop_loc_conf_t, body_buffer_size),
      &ngx_http_relyloop_body_buffer_bounds },
    { ngx_string("relyloop_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_relyloop_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("relyloop_cors_origins"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_relyloop_cors_origins,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_relyloop_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_relyloop_init,                /* postconfiguration */

    ngx_http_relyloop_create_main_conf,    /* create main configuration */
    ngx_http_relyloop_init_main_conf,      /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_relyloop_create_loc_conf,     /* create location configuration */
    ngx_http_relyloop_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_relyloop_module = {
    NGX_MODULE_V1,
    &ngx_http_relyloop_module_ctx,         /* module context */
    ngx_http_relyloop_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_relyloop_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_relyloop_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


/*
 * X-Content-Type-Options: nosniff on every response sent in a location with
 * relyloop_api: the module's own answers and everything nginx answers there
 * by itself (allow/deny, auth_basic, auth_request, its error pages), and
 * nginx's errors raised before location matching once error_page has
 * redirected them to such a location (docs/decisions.md). The module sits
 * below ngx_http_headers_filter_module in the filter chain (config), so an
 * add_header of the same name is seen here and not doubled.
 */

static ngx_int_t
ngx_http_relyloop_header_filter(ngx_http_request_t *r)
{
    ngx_uint_t                     i;
    ngx_list_part_t               *part;
    ngx_table_elt_t               *h;
    ngx_http_relyloop_loc_conf_t  *rlcf;

    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_relyloop_module);

    if (r != r->main || rlcf->api != 1) {
        return ngx_http_next_header_filter(r);
    }

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash != 0
            && h[i].key.len == sizeof("X-Content-Type-Options") - 1
            && ngx_strncasecmp(h[i].key.data,
                               (u_char *) "X-Content-Type-Options",
                               h[i].key.len)
               == 0)
        {
            return ngx_http_next_header_filter(r);
        }
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "X-Content-Type-Options");
    ngx_str_set(&h->value, "nosniff");

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_relyloop_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_relyloop_header_filter;

    return ngx_http_relyloop_metrics_postconfiguration(cf);
}


static void *
ngx_http_relyloop_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_relyloop_main_conf_t  *rmcf;

    rmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_relyloop_main_conf_t));
    if (rmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     rmcf->pg_conninfo = { 0, NULL };
     *     rmcf->pg_keywords = NULL;
     *     rmcf->worker_socket = { 0, NULL };
     *     rmcf->secrets_dir = { 0, NULL };
     *     rmcf->environment = { 0, NULL };
     *     rmcf->github_web_url = { 0, NULL };
     *     rmcf->used = 0;
     *     rmcf->core = NULL;
     *     rmcf->pool = NULL;
     */

    rmcf->pg_pool_size = NGX_CONF_UNSET_UINT;
    rmcf->pg_max_waiting = NGX_CONF_UNSET_UINT;
    rmcf->pg_pipeline_depth = NGX_CONF_UNSET_UINT;
    rmcf->pg_timeout = NGX_CONF_UNSET_MSEC;
    rmcf->worker_timeout = NGX_CONF_UNSET_MSEC;
    rmcf->webhook_replay_window = NGX_CONF_UNSET;

    return rmcf;
}


static char *
ngx_http_relyloop_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_relyloop_main_conf_t *rmcf = conf;

    ngx_conf_init_uint_value(rmcf->pg_pool_size, 4);
    ngx_conf_init_uint_value(rmcf->pg_max_waiting, 512);
    ngx_conf_init_uint_value(rmcf->pg_pipeline_depth, 8);
    ngx_conf_init_msec_value(rmcf->pg_timeout, 5000);
    ngx_conf_init_msec_value(rmcf->worker_timeout, 2000);
    ngx_conf_init_value(rmcf->webhook_replay_window,
                        RL_DEFAULT_WEBHOOK_REPLAY_WINDOW_S);

    if (rmcf->worker_socket.data == NULL) {
        ngx_str_set(&rmcf->worker_socket, RL_DEFAULT_WORKER_SOCKET);
    }

    if (rmcf->worker_socket.len >= sizeof(((struct sockaddr_un *) 0)->sun_path)
        || rmcf->worker_socket.len == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"relyloop_worker_socket\" path \"%V\" is empty "
                           "or longer than %uz bytes", &rmcf->worker_socket,
                           sizeof(((struct sockaddr_un *) 0)->sun_path) - 1);
        return NGX_CONF_ERROR;
    }

    if (rmcf->secrets_dir.data == NULL) {
        ngx_str_set(&rmcf->secrets_dir, RL_DEFAULT_SECRETS_DIR);
    }

    if (rmcf->environment.data == NULL) {
        ngx_str_set(&rmcf->environment, RL_DEFAULT_ENVIRONMENT);
    }

    if (rmcf->github_web_url.data == NULL) {
        ngx_str_set(&rmcf->github_web_url, RL_DEFAULT_GITHUB_WEB_URL);
    }

    if (!rmcf->used) {
        return NGX_CONF_OK;
    }

    if (rmcf->pg_conninfo.data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"relyloop_pg_conninfo\" is required when "
                           "\"relyloop_api\" is used");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_relyloop_build_conninfo(cf, rmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
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


static char *
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


static char *
ngx_http_relyloop_body_buffer_check(ngx_conf_t *cf, void *post, void *data)
{
    size_t      *sp = data;
    ngx_str_t   *value;

    if (*sp < NGX_HTTP_RELYLOOP_BODY_MIN || *sp > NGX_HTTP_RELYLOOP_BODY_MAX) {
        value = cf->args->elts;

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"relyloop_body_buffer_size\" value "
                           "\"%V\", it must be a size from 1k to 64m",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_relyloop_webhook_body_check(ngx_conf_t *cf, void *post, void *data)
{
    size_t      *sp = data;
    ngx_str_t   *value;

    if (*sp < NGX_HTTP_RELYLOOP_BODY_MIN
        || *sp > NGX_HTTP_RELYLOOP_WEBHOOK_BODY_MAX)
    {
        value = cf->args->elts;

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"relyloop_webhook_max_body\" value "
                           "\"%V\", it must be a size from 1k to 25m",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_relyloop_replay_window_check(ngx_conf_t *cf, void *post, void *data)
{
    time_t      *tp = data;
    ngx_str_t   *value;

    if (*tp < 3600 || *tp > 30 * 86400) {
        value = cf->args->elts;

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"relyloop_webhook_replay_window\" value "
                           "\"%V\", it must be a time from 1h to 30d",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* relyloop_webhook: the API handler, serving POST /webhooks/github only */

static char *
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


static char *
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


static char *
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


static char *
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


/* "http[s]://host[:port][/path]", no user info, query, fragment or spaces */

static ngx_int_t
ngx_http_relyloop_valid_url(ngx_str_t *url, ngx_uint_t path_allowed)
{
    u_char  *p, *last, *host;

    p = url->data;
    last = url->data + url->len;

    if (url->len > 7 && ngx_strncmp(p, "http://", 7) == 0) {
        p += 7;

    } else if (url->len > 8 && ngx_strncmp(p, "https://", 8) == 0) {
        p += 8;

    } else {
        return NGX_ERROR;
    }

    host = p;

    for ( /* void */ ; p < last; p++) {
        if (*p <= ' ' || *p >= 0x7f || *p == '@' || *p == '?' || *p == '#'
            || *p == '\\')
        {
            return NGX_ERROR;
        }

        if (*p == '/') {
            if (!path_allowed) {
                return NGX_ERROR;
            }
            break;
        }
    }

    if (p == host) {
        return NGX_ERROR;
    }

    for ( /* void */ ; p < last; p++) {
        if (*p <= ' ' || *p >= 0x7f || *p == '?' || *p == '#' || *p == '@') {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static char *
ngx_http_relyloop_web_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_relyloop_main_conf_t *rmcf = conf;

    ngx_str_t  *value, url;

    if (rmcf->github_web_url.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    url = value[1];

    while (url.len > 0 && url.data[url.len - 1] == '/') {
        url.len--;
    }

    if (ngx_http_relyloop_valid_url(&url, 1) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"relyloop_github_web_url\" value \"%V\", "
                           "it must be an http:// or https:// URL without "
                           "user info, query or fragment", &value[1]);
        return NGX_CONF_ERROR;
    }

    url.data[url.len] = '\0';
    rmcf->github_web_url = url;

    return NGX_CONF_OK;
}


static char *
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

        if (ngx_http_relyloop_valid_url(&value[i], 0) != NGX_OK) {
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


/* nginx's own number and time slots, with messages that quote the value */

static char *
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


static char *
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

static ngx_int_t
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


static ngx_int_t
ngx_http_relyloop_init_process(ngx_cycle_t *cycle)
{
    rl_core_conf_t                  conf;
    ngx_http_relyloop_main_conf_t  *rmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    rmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_relyloop_module);
    if (rmcf) {
        ngx_http_relyloop_metrics_init_process(cycle, rmcf);
    }

    if (rmcf == NULL || !rmcf->used) {
        return NGX_OK;
    }

    conf.environment = (const char *) rmcf->environment.data;
    conf.secrets_dir = (const char *) rmcf->secrets_dir.data;
    conf.github_web_url = (const char *) rmcf->github_web_url.data;
    conf.webhook_replay_window_s = (long long) rmcf->webhook_replay_window;

    if (rl_core_new(&rmcf->core, &conf) != RL_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "relyloop: cannot create the core");
        return NGX_ERROR;
    }

    rmcf->pool = ngx_http_relyloop_pg_pool_create(cycle, rmcf);
    if (rmcf->pool == NULL) {
        rl_core_free(rmcf->core);
        rmcf->core = NULL;
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_relyloop_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_relyloop_main_conf_t  *rmcf;

    ngx_http_relyloop_metrics_exit_process();

    rmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_relyloop_module);
    if (rmcf == NULL) {
        return;
    }

    if (rmcf->pool) {
        ngx_http_relyloop_pg_pool_destroy(rmcf->pool);
        rmcf->pool = NULL;
    }

    if (rmcf->core) {
        rl_core_free(rmcf->core);
        rmcf->core = NULL;
    }
}
