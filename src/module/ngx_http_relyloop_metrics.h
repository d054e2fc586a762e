
/*
 * Prometheus metrics (docs/metrics.md), what the two halves share: the
 * layout of the shared memory zone that ngx_http_relyloop_metrics.c counts
 * into and ngx_http_relyloop_metrics_handler.c prints.
 */

#ifndef _NGX_HTTP_RELYLOOP_METRICS_H_INCLUDED_
#define _NGX_HTTP_RELYLOOP_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_relyloop_module.h"


#define NGX_HTTP_RELYLOOP_M_ROUTES    40      /* the core's routes + "other" */
#define NGX_HTTP_RELYLOOP_M_METHODS   6
#define NGX_HTTP_RELYLOOP_M_CLASSES   5
#define NGX_HTTP_RELYLOOP_M_BUCKETS   12
#define NGX_HTTP_RELYLOOP_M_SLOTS     256     /* worker processes, any cycle */


typedef struct {
    ngx_atomic_t                pid;
    ngx_atomic_t                up;
    ngx_atomic_t                in_use;
    ngx_atomic_t                waiting;
} ngx_http_relyloop_m_slot_t;


typedef struct {
    ngx_atomic_t                requests[NGX_HTTP_RELYLOOP_M_ROUTES]
                                        [NGX_HTTP_RELYLOOP_M_METHODS]
                                        [NGX_HTTP_RELYLOOP_M_CLASSES];
    /* per bucket, not cumulative: made cumulative when printed */
    ngx_atomic_t                latency[NGX_HTTP_RELYLOOP_M_ROUTES]
                                       [NGX_HTTP_RELYLOOP_M_BUCKETS + 1];
    ngx_atomic_t                latency_ms[NGX_HTTP_RELYLOOP_M_ROUTES];
    ngx_atomic_t                counters[NGX_HTTP_RELYLOOP_M_NCOUNTERS];
    ngx_http_relyloop_m_slot_t  slots[NGX_HTTP_RELYLOOP_M_SLOTS];
} ngx_http_relyloop_m_shm_t;


/* upper bounds of the latency buckets, milliseconds (nginx's clock) */
extern ngx_uint_t  ngx_http_relyloop_m_bounds[NGX_HTTP_RELYLOOP_M_BUCKETS];

/* the zone of the running cycle, NULL without `relyloop_metrics` */
extern ngx_http_relyloop_m_shm_t  *ngx_http_relyloop_m_shm;


/* this process's pool gauges into its slot */
void ngx_http_relyloop_metrics_publish(void);
/* the content handler of a relyloop_metrics location */
ngx_int_t ngx_http_relyloop_metrics_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_RELYLOOP_METRICS_H_INCLUDED_ */
