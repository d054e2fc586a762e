
/*
 * ngx_http_relyloop_module: the module, its directive table, the main
 * configuration, the nosniff header filter and the process hooks.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <netdb.h>
#include <sys/un.h>

#include "ngx_http_relyloop_module.h"
#include "ngx_http_relyloop_conf.h"


static ngx_int_t ngx_http_relyloop_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_relyloop_header_filter(ngx_http_request_t *r);
static void *ngx_http_relyloop_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_relyloop_init_main_conf(ngx_conf_t *cf, void *conf);

static ngx_int_t ngx_http_relyloop_init_process(ngx_cycle_t *cycle);
static void ngx_http_relyloop_exit_process(ngx_cycle_t *cycle);


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


/*
 * The handlers of the directives in the table above, the checks of their
 * values and the location configuration are in ngx_http_relyloop_conf.c.
 */


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
