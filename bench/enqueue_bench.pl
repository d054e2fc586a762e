#!/usr/bin/env perl
# The open_pr handoff: POST /api/v1/proposals/{id}/open_pr through nginx with
# the worker running (preflight + PAT check + Unix socket + durable enqueue),
# against the same request on proposals that fail preflight at step 2 (pure
# module + database cost), in the same run (issue "open_pr", benchmark).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../t/lib";

use Bench qw(wrk ratio fmt_ms seconds);
use RelyLoop::Test;

my $conc = $ENV{RELYLOOP_BENCH_CONCURRENCY} || 32;
my $n = 2000;

my $t = RelyLoop::Test->new;
my $ctl = $t->dir . '/pipeline';
mkdir $ctl;
# the test pipeline holds every job: the benchmark measures the handoff only
open my $fh, '>', "$ctl/default" or die;
print $fh "block\n";
close $fh;

$t->start_pg->migrate;
$t->start_worker(test_pipeline => 1, env => {RELYLOOP_TEST_PIPELINE_DIR => $ctl});
$t->start_nginx(environment => 'production', access_log => 0, log_level => 'warn');
$t->write_secret('bench-pat', "ghp_bench\n");

# One config repo per proposal: the runner threads each hold one blocked job
# and the rest wait in the queue, so the runners stay idle and the benchmark
# measures the handoff (with every proposal on one repo, the runners would
# keep claiming and deferring jobs on the busy repo's lock meanwhile).
$t->psql(<<"SQL");
INSERT INTO config_repos (id, name, provider, repo_url, auth_ref)
SELECT 'r' || g, 'bench-' || g, 'github', 'https://github.com/acme/config-' || g, 'bench-pat'
FROM generate_series(1, $n) g;
INSERT INTO clusters (id, name, engine_type, environment, base_url, auth_kind, credentials_ref,
                      config_repo_id, config_path)
SELECT 'c' || g, 'bench-' || g, 'elasticsearch', 'prod', 'http://es:9200', 'es_basic', 'es',
       'r' || g, 'search'
FROM generate_series(1, $n) g;
INSERT INTO query_templates (id, name, engine_type, body, declared_params)
VALUES ('t1', 'products', 'elasticsearch', '{}', '{"title.boost": "float"}');
INSERT INTO proposals (id, cluster_id, template_id, config_diff, status)
SELECT 'p-pending-' || g, 'c' || g, 't1', '{"title.boost": {"to": 2}}', 'pending'
FROM generate_series(1, $n) g;
INSERT INTO proposals (id, cluster_id, template_id, config_diff, status, pr_url)
SELECT 'p-opened-' || g, 'c' || g, 't1', '{"title.boost": {"to": 2}}', 'pr_opened', 'x'
FROM generate_series(1, $n) g;
SQL

for my $kind (qw(pending opened)) {
    open my $ids, '>', $t->dir . "/$kind.ids" or die;
    print $ids "p-$kind-$_\n" for 1 .. $n;
    close $ids;
}

my $r = $t->http(POST => '/api/v1/proposals/p-pending-1/open_pr', json => {});
die "open_pr: $r->{status} $r->{body}" unless $r->{status} == 202;
$r = $t->http(POST => '/api/v1/proposals/p-opened-1/open_pr', json => {});
die "preflight: $r->{status} $r->{body}" unless $r->{status} == 409;

my $script = "$FindBin::Bin/open_pr.lua";
my $url = $t->url('/');
my $dir = $t->dir;
wrk(url => $url, script => $script, args => ["$dir/opened.ids"], connections => $conc,
    seconds => 2);
my $enq = wrk(url => $url, script => $script, args => ["$dir/pending.ids"],
    connections => $conc);
my $ref = wrk(url => $url, script => $script, args => ["$dir/opened.ids"],
    connections => $conc);

die "open_pr answered non-2xx:\n$enq->{raw}" if $enq->{non2xx} || $enq->{errors};

my $jobs = $t->psql("SELECT count(*) FROM pr_jobs");
my $secs = seconds();
print "\n== open_pr handoff: POST open_pr (enqueue) vs the same request failing preflight "
    . "step 2, c=$conc, ${secs}s each ==\n";
printf "%-36s %12s %10s %10s\n", '', 'req/s', 'p50', 'p99';
printf "%-36s %12.0f %10s %10s\n", 'open_pr, worker enqueue (202)', $enq->{rps},
    fmt_ms($enq->{p50_ms}), fmt_ms($enq->{p99_ms});
printf "%-36s %12.0f %10s %10s\n", 'open_pr, preflight 409 (reference)', $ref->{rps},
    fmt_ms($ref->{p50_ms}), fmt_ms($ref->{p99_ms});
printf "ratio enqueue/preflight-only: %s (%d job rows for %d proposals: one per proposal)\n",
    ratio($enq->{rps}, $ref->{rps}), $jobs, $n;

$t->stop_all;
