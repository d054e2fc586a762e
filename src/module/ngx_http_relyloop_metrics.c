
/*
 * Prometheus metrics (docs/metrics.md), the counting half: the
 * `relyloop_metrics` directive and its shared memory zone, where every nginx
 * worker process counts API requests by route, method and status class,
 * their latency histogram, and the events of the PostgreSQL pools and the
 * worker link. ngx_http_relyloop_metrics_handler.c serves the zone.
 *
 * Counters are atomic adds in the zone, so they are summed across worker
 * processes and survive a reload (the zone is kept when its name and size
 * do not change). The pool gauges are a state, not a sum of events: each
 * process publishes its own in a slot of the zone (once a second, and when
 * it serves a scrape) and a scrape adds up the slots of live processes, old
 * ones finishing their requests after a reload included.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_relyloop_module.h"
#include "ngx_http_relyloop_metrics.h"


#define NGX_HTTP_RELYLOOP_M_PUBLISH   1000    /* gauges, at least every 1 s */
#define NGX_HTTP_RELYLOOP_M_ZONE_SIZE (256 * 1024)


static ngx_int_t ngx_http_relyloop_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_relyloop_metrics_log_handler(ngx_http_request_t *r);
static void ngx_http_relyloop_metrics_timer(ngx_event_t *ev);


ngx_uint_t  ngx_http_relyloop_m_bounds[NGX_HTTP_RELYLOOP_M_BUCKETS] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000
};

ngx_http_relyloop_m_shm_t         *ngx_http_relyloop_m_shm;
static ngx_http_relyloop_m_slot_t *ngx_http_relyloop_m_slot;
static ngx_event_t                 ngx_http_relyloop_m_timer;

static ngx_str_t  ngx_http_relyloop_m_zone_name =
    ngx_string("relyloop_metrics");


char *
ngx_http_relyloop_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_relyloop_main_conf_t  *rmcf;

    rmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_relyloop_module);

    if (rmcf->metrics_zone == NULL) {
        rmcf->metrics_zone = ngx_shared_memory_add(cf,
                                 &ngx_http_relyloop_m_zone_name,
                                 NGX_HTTP_RELYLOOP_M_ZONE_SIZE,
                                 &ngx_http_relyloop_module);
        if (rmcf->metrics_zone == NULL) {
            return NGX_CONF_ERROR;
        }

        rmcf->metrics_zone->init = ngx_http_relyloop_metrics_init_zone;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_relyloop_metrics_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_relyloop_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t  *shpool;

    if (data) {
        /* a reload: keep the counts */
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    shm_zone->data = ngx_slab_calloc(shpool, sizeof(ngx_http_relyloop_m_shm_t));
    if (shm_zone->data == NULL) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "relyloop: the metrics zone is too small");
        return NGX_ERROR;
    }

    shpool->data = shm_zone->data;

    return NGX_OK;
}


ngx_int_t
ngx_http_relyloop_metrics_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt             *h;
    ngx_http_core_main_conf_t       *cmcf;
    ngx_http_relyloop_main_conf_t   *rmcf;

    rmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_relyloop_module);

    if (rmcf->metrics_zone == NULL) {
        return NGX_OK;
    }

    if (rl_route_count() + 1 > NGX_HTTP_RELYLOOP_M_ROUTES) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "relyloop: more routes than the metrics zone holds");
        return NGX_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_relyloop_metrics_log_handler;

    return NGX_OK;
}


void
ngx_http_relyloop_metrics_init_process(ngx_cycle_t *cycle,
    ngx_http_relyloop_main_conf_t *rmcf)
{
    ngx_uint_t                   i;
    ngx_atomic_uint_t            pid;
    ngx_http_relyloop_m_shm_t   *shm;
    ngx_http_relyloop_m_slot_t  *slot;

    ngx_http_relyloop_m_shm = NULL;
    ngx_http_relyloop_m_slot = NULL;

    if (rmcf->metrics_zone == NULL || rmcf->metrics_zone->data == NULL) {
        return;
    }

    shm = rmcf->metrics_zone->data;
    ngx_http_relyloop_m_shm = shm;

    /* a free slot, or one a process that died without exit_process held */

    for (i = 0; i < NGX_HTTP_RELYLOOP_M_SLOTS; i++) {
        slot = &shm->slots[i];
        pid = slot->pid;

        if ((pid == 0 || (kill((ngx_pid_t) pid, 0) == -1 && errno == ESRCH))
            && ngx_atomic_cmp_set(&slot->pid, pid, (ngx_atomic_uint_t) ngx_pid))
        {
            slot->up = 0;
            slot->in_use = 0;
            slot->waiting = 0;
            ngx_http_relyloop_m_slot = slot;
            break;
        }
    }

    if (ngx_http_relyloop_m_slot == NULL) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "relyloop: no metrics slot for this process; "
                      "its pool gauges are not reported");
        return;
    }

    ngx_memzero(&ngx_http_relyloop_m_timer, sizeof(ngx_event_t));
    ngx_http_relyloop_m_timer.handler = ngx_http_relyloop_metrics_timer;
    ngx_http_relyloop_m_timer.log = cycle->log;
    ngx_http_relyloop_m_timer.cancelable = 1;

    ngx_add_timer(&ngx_http_relyloop_m_timer, NGX_HTTP_RELYLOOP_M_PUBLISH);
}


void
ngx_http_relyloop_metrics_exit_process(void)
{
    ngx_http_relyloop_m_slot_t  *slot;

    slot = ngx_http_relyloop_m_slot;

    if (slot == NULL) {
        return;
    }

    if (ngx_http_relyloop_m_timer.timer_set) {
        ngx_del_timer(&ngx_http_relyloop_m_timer);
    }

    slot->up = 0;
    slot->in_use = 0;
    slot->waiting = 0;
    (void) ngx_atomic_cmp_set(&slot->pid, (ngx_atomic_uint_t) ngx_pid, 0);

    ngx_http_relyloop_m_slot = NULL;
    ngx_http_relyloop_m_shm = NULL;
}


void
ngx_http_relyloop_metrics_count(ngx_uint_t counter)
{
    if (ngx_http_relyloop_m_shm && counter < NGX_HTTP_RELYLOOP_M_NCOUNTERS) {
        (void) ngx_atomic_fetch_add(&ngx_http_relyloop_m_shm->counters[counter],
                                    1);
    }
}


static void
ngx_http_relyloop_metrics_timer(ngx_event_t *ev)
{
    ngx_http_relyloop_metrics_publish();

    if (!ngx_exiting && !ngx_quit && !ngx_terminate) {
        ngx_add_timer(ev, NGX_HTTP_RELYLOOP_M_PUBLISH);
    }
}


/* this process's pool gauges into its slot */

void
ngx_http_relyloop_metrics_publish(void)
{
    ngx_uint_t                      up, in_use, waiting;
    ngx_http_relyloop_m_slot_t     *slot;
    ngx_http_relyloop_main_conf_t  *rmcf;

    slot = ngx_http_relyloop_m_slot;

    if (slot == NULL) {
        return;
    }

    rmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_relyloop_module);

    up = 0;
    in_use = 0;
    waiting = 0;

    if (rmcf && rmcf->pool) {
        ngx_http_relyloop_pg_stats(rmcf->pool, &up, &in_use, &waiting);
    }

    slot->up = up;
    slot->in_use = in_use;
    slot->waiting = waiting;
}


static ngx_int_t
ngx_http_relyloop_metrics_log_handler(ngx_http_request_t *r)
{
    u_char                         *p, *last;
    ngx_int_t                       status;
    ngx_msec_int_t                  ms;
    ngx_uint_t                      route, method, class, bucket;
    ngx_time_t                     *tp;
    rl_str_t                        m, path;
    ngx_http_relyloop_m_shm_t      *shm;
    ngx_http_relyloop_loc_conf_t   *rlcf;
    ngx_http_relyloop_main_conf_t  *rmcf;

    shm = ngx_http_relyloop_m_shm;

    if (shm == NULL) {
        return NGX_OK;
    }

    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_relyloop_module);

    if (rlcf == NULL || rlcf->api != 1) {
        return NGX_OK;
    }

    status = r->err_status ? (ngx_int_t) r->err_status
                           : (ngx_int_t) r->headers_out.status;

    if (status < 100 || status > 599 || !r->header_sent) {
        /* no response was sent (the client went away first) */
        return NGX_OK;
    }

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_relyloop_module);

    route = 0;

    if (rmcf->core) {
        p = r->unparsed_uri.data;
        last = p + r->unparsed_uri.len;

        while (p < last && *p != '?' && *p != '#') {
            p++;
        }

        m.data = (const char *) r->method_name.data;
        m.len = r->method_name.len;
        path.data = (const char *) r->unparsed_uri.data;
        path.len = p - r->unparsed_uri.data;

        if (path.data) {
            route = (ngx_uint_t) (rl_route_index(rmcf->core, m, path) + 1);
        }
    }

    switch (r->method) {
    case NGX_HTTP_GET:
        method = 0;
        break;
    case NGX_HTTP_HEAD:
        method = 1;
        break;
    case NGX_HTTP_POST:
        method = 2;
        break;
    case NGX_HTTP_PATCH:
        method = 3;
        break;
    case NGX_HTTP_OPTIONS:
        method = 4;
        break;
    default:
        method = 5;
    }

    class = (ngx_uint_t) status / 100 - 1;

    tp = ngx_timeofday();
    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));
    ms = ngx_max(ms, 0);

    for (bucket = 0; bucket < NGX_HTTP_RELYLOOP_M_BUCKETS; bucket++) {
        if ((ngx_uint_t) ms <= ngx_http_relyloop_m_bounds[bucket]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&shm->requests[route][method][class], 1);
    (void) ngx_atomic_fetch_add(&shm->latency[route][bucket], 1);
    (void) ngx_atomic_fetch_add(&shm->latency_ms[route], (ngx_atomic_int_t) ms);

    return NGX_OK;
}
