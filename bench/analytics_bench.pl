#!/usr/bin/env perl
# The study analytics end to end (docs/analytics.md): a study of 2,000 trials
# × 500 queries (every trial with per_query_metrics for all 500 queries, as
# upstream RelyLoop stores them), then GET /api/v1/studies/{id} — one
# statement reading every input, the bootstrap and the rest in the module —
# under wrk at concurrency 1, against pgbench running the very same statement
# (the reference, measured in the same run). Also the peak resident memory of
# the nginx worker (VmHWM) before and after, and the pure computation from
# bench/analytics_bench.cpp. RELYLOOP_BENCH_TRIALS / _QUERIES change the size.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../t/lib";

use Bench qw(wrk pgbench print_statements ratio fmt_ms seconds);
use RelyLoop::Test;

my $build = $ENV{RELYLOOP_BUILD_DIR} || "$FindBin::Bin/../build";
my $trials = $ENV{RELYLOOP_BENCH_TRIALS} || 2000;
my $queries = $ENV{RELYLOOP_BENCH_QUERIES} || 500;

my $t = RelyLoop::Test->new;
$t->start_pg->migrate;
$t->start_nginx(environment => 'production', workers => 1, access_log => 0, log_level => 'warn',
    directives => {relyloop_pg_timeout => '30s'});

my $sid = '0196c0de-0000-7000-8000-00000000a001';
$t->psql(<<"SQL");
INSERT INTO config_repos (id, name, provider, repo_url, auth_ref)
  VALUES ('r1', 'repo', 'github', 'https://github.com/o/r', 'pat');
INSERT INTO clusters (id, name, engine_type, environment, base_url, auth_kind, credentials_ref,
                      config_repo_id, config_path)
  VALUES ('c1', 'cluster', 'elasticsearch', 'prod', 'http://es', 'es_basic', 'cred', 'r1', 'cfg');
INSERT INTO query_templates (id, name, engine_type, body, declared_params)
  VALUES ('t1', 'tpl', 'elasticsearch', '{}', '{"boost": "float"}');
INSERT INTO query_sets (id, name, cluster_id) VALUES ('qs1', 'qs', 'c1');
INSERT INTO judgment_lists (id, name, query_set_id, cluster_id, target, rubric, status)
  VALUES ('jl1', 'jl', 'qs1', 'c1', 'products', '', 'complete');
INSERT INTO queries (id, query_set_id, query_text)
  SELECT 'q' || lpad(q::text, 5, '0'), 'qs1', 'query text ' || q FROM generate_series(1, $queries) q;
INSERT INTO studies (id, name, cluster_id, target, template_id, query_set_id, judgment_list_id,
                     status, optuna_study_name, search_space, objective, config, best_metric)
  VALUES ('$sid', 'big', 'c1', 'products', 't1', 'qs1', 'jl1', 'completed', 'o',
          '{}', '{"metric": "ndcg", "k": 10, "direction": "maximize"}', '{}', 0.6);
INSERT INTO trials (id, study_id, optuna_trial_number, params, metrics, status, primary_metric,
                    per_query_metrics)
  SELECT 'tr' || n, '$sid', n, '{}', '{}', 'complete', 0.3 + 0.3 * random(),
         (SELECT jsonb_object_agg('q' || lpad(q::text, 5, '0'),
                                  jsonb_build_object('ndcg\@10', round(random()::numeric, 4),
                                                     'map', round(random()::numeric, 4)))
          FROM generate_series(1, $queries) q WHERE n >= 0)
  FROM generate_series(0, $trials - 1) n;
UPDATE studies SET best_trial_id = 'tr' || ($trials * 9 / 10) WHERE id = '$sid';
UPDATE trials SET primary_metric = 0.6 WHERE id = 'tr' || ($trials * 9 / 10);
ANALYZE;
SQL

my $r = $t->http(GET => "/api/v1/studies/$sid");
die "detail: $r->{status} $r->{body}" unless $r->{status} == 200 && $r->{json}{confidence}{ci_95};
my $hwm_before = worker_hwm($t);

my $st = print_statements($build, $t->dir);
my $get = $st->{rl_study_get} or die 'no rl_study_get';
my $get_sql = $get->{sql} =~ s/\$1\b/:id/gr;
write_file($t->dir . '/get.sql', "$get_sql;\n");

wrk(url => $t->url("/api/v1/studies/$sid"), connections => 1, threads => 1, seconds => 2);
pgbench(port => $t->pg_port, script => $t->dir . '/get.sql', defines => {id => $sid},
    clients => 1, threads => 1, seconds => 2, dir => $t->dir);
my $module = wrk(url => $t->url("/api/v1/studies/$sid"), connections => 1, threads => 1);
my $pg = pgbench(port => $t->pg_port, script => $t->dir . '/get.sql', defines => {id => $sid},
    clients => 1, threads => 1, dir => $t->dir);
die "module: errors\n$module->{raw}" if $module->{errors} || $module->{non2xx};
my $hwm_after = worker_hwm($t);

my $secs = seconds();
print "\n== Study analytics: $trials trials x $queries queries, GET /studies/{id}, c=1, ${secs}s ==\n";
printf "%-40s %10s %10s %10s\n", '', 'req/s', 'p50', 'p99';
printf "%-40s %10.1f %10s %10s\n", 'module (SQL + analytics + JSON)', $module->{rps},
    fmt_ms($module->{p50_ms}), fmt_ms($module->{p99_ms});
printf "%-40s %10.1f %10s %10s\n", 'pgbench, the same statement', $pg->{tps},
    fmt_ms($pg->{p50_ms}), fmt_ms($pg->{p99_ms});
printf "ratio module/pgbench: %s\n", ratio($module->{rps}, $pg->{tps});
printf "nginx worker peak RSS (VmHWM): %s KiB after the first request, %s KiB after the run\n",
    $hwm_before // 'n/a', $hwm_after // 'n/a';
$t->stop_all;

my $bench = "$build/cmake-release/analytics_bench";
system($bench, $trials, $queries) if -x $bench;

sub worker_hwm {
    my ($t) = @_;
    my $master = $t->nginx_pid or return undef;
    opendir(my $dh, '/proc') or return undef;
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        open my $fh, '<', "/proc/$pid/status" or next;
        my $status = do { local $/; <$fh> };
        next unless $status =~ /^PPid:\s+$master$/m && $status =~ /^Name:\s+nginx/m;
        return $1 if $status =~ /^VmHWM:\s+(\d+) kB/m;
    }
    return undef;
}

sub write_file {
    my ($f, $s) = @_;
    open my $fh, '>', $f or die "$f: $!";
    print $fh $s;
    close $fh;
}
