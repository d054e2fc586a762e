
/*
 * The directive handlers, value checks and location configuration of
 * ngx_http_relyloop_conf.c, for the command table and the module context in
 * ngx_http_relyloop_module.c (docs/directives.md).
 */

#ifndef _NGX_HTTP_RELYLOOP_CONF_H_INCLUDED_
#define _NGX_HTTP_RELYLOOP_CONF_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* the accepted range of a number directive (ngx_http_relyloop_set_number) */
typedef struct {
    ngx_uint_t  min;
    ngx_uint_t  max;
} ngx_http_relyloop_bounds_t;


extern ngx_http_relyloop_bounds_t  ngx_http_relyloop_positive;
extern ngx_http_relyloop_bounds_t  ngx_http_relyloop_waiting;

/*
 * The accepted range of a size (size_t) or time (time_t) directive, as the
 * post of ngx_conf_set_size_slot / ngx_conf_set_sec_slot.
 */
typedef struct {
    ngx_conf_post_handler_pt   post_handler;
    off_t                      min;
    off_t                      max;
    ngx_uint_t                 is_time;
    const char                *name;
    const char                *text;   /* "a size from 1k to 64m" */
} ngx_http_relyloop_range_t;


extern ngx_http_relyloop_range_t  ngx_http_relyloop_body_buffer_bounds;
extern ngx_http_relyloop_range_t  ngx_http_relyloop_webhook_body_bounds;
extern ngx_http_relyloop_range_t  ngx_http_relyloop_replay_window_bounds;


void *ngx_http_relyloop_create_loc_conf(ngx_conf_t *cf);
char *ngx_http_relyloop_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);

char *ngx_http_relyloop_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_relyloop_webhook(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_relyloop_pg_conninfo(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_relyloop_environment(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_relyloop_web_url(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_relyloop_cors_origins(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_relyloop_set_number(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_relyloop_set_msec(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#endif /* _NGX_HTTP_RELYLOOP_CONF_H_INCLUDED_ */
