#!/usr/bin/env perl
# API read path: the module answering GET /api/v1/config-repos/{id} and the
# list (limit 50) under wrk, against pgbench running the very same SQL as
# prepared statements at the same concurrency, in the same run (docs/decisions.md: numbers only, ratios against a reference).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../t/lib";

use Bench qw(wrk pgbench print_statements seed_config_repos ratio fmt_ms seconds);
use RelyLoop::Test;

my $build = $ENV{RELYLOOP_BUILD_DIR} || "$FindBin::Bin/../build";
my $conc = $ENV{RELYLOOP_BENCH_CONCURRENCY} || 32;
my $workers = $ENV{RELYLOOP_BENCH_NGINX_WORKERS} || 1;

# Two configurations of the module: the defaults (relyloop_pg_pool_size 4,
# relyloop_pg_pipeline_depth 8) and fewer, deeper pipelines (2 x 16), which
# suit a small machine best (docs/directives.md). RELYLOOP_BENCH_POOL and
# RELYLOOP_BENCH_DEPTH run one configuration of your own instead.
my @configs = $ENV{RELYLOOP_BENCH_POOL} || $ENV{RELYLOOP_BENCH_DEPTH}
    ? ([$ENV{RELYLOOP_BENCH_POOL} || 4, $ENV{RELYLOOP_BENCH_DEPTH} || 8])
    : ([4, 8], [2, 16]);
run_config(@$_) for @configs;

sub run_config {
my ($pool, $depth) = @_;
my $t = RelyLoop::Test->new;
$t->start_pg->migrate;
$t->start_nginx(environment => 'production', workers => $workers,
    access_log => 0, log_level => 'warn',
    directives => {relyloop_pg_timeout => '5s', relyloop_pg_pool_size => $pool,
        relyloop_pg_pipeline_depth => $depth});

my $id = seed_config_repos($t);

my $st = print_statements($build, $t->dir);
my $get = $st->{rl_config_repo_get} or die 'no rl_config_repo_get';
my $list = $st->{rl_config_repo_list} or die 'no rl_config_repo_list';

# The module's parameters: detail ($1 = id); list ($1 = limit + 1, then the
# unset cursor and since as NULL).
my $get_sql = $get->{sql} =~ s/\$1\b/:id/gr;
my $list_sql = $list->{sql} =~ s/\$1\b/:lim/gr;
$list_sql =~ s/\$\d+\b/NULL/g;
write_file($t->dir . '/get.sql', "$get_sql;\n");
write_file($t->dir . '/list.sql', "$list_sql;\n");

my $r = $t->http(GET => "/api/v1/config-repos/$id");
die "detail: $r->{status} $r->{body}" unless $r->{status} == 200;
$r = $t->http(GET => '/api/v1/config-repos?limit=50');
die "list: $r->{status}" unless $r->{status} == 200 && @{$r->{json}{data}} == 50;

# warm both sides
wrk(url => $t->url("/api/v1/config-repos/$id"), connections => $conc, seconds => 2);
pgbench(port => $t->pg_port, script => $t->dir . '/get.sql', defines => {id => $id},
    clients => $conc, seconds => 2, dir => $t->dir);

my %res;
$res{detail_module} = wrk(url => $t->url("/api/v1/config-repos/$id"), connections => $conc);
$res{detail_pg} = pgbench(port => $t->pg_port, script => $t->dir . '/get.sql',
    defines => {id => $id}, clients => $conc, dir => $t->dir);
$res{list_module} = wrk(url => $t->url('/api/v1/config-repos?limit=50'), connections => $conc);
$res{list_pg} = pgbench(port => $t->pg_port, script => $t->dir . '/list.sql',
    defines => {lim => 51}, clients => $conc, dir => $t->dir);

for my $k (qw(detail_module list_module)) {
    die "$k: errors or non-2xx\n$res{$k}{raw}" if $res{$k}{errors} || $res{$k}{non2xx};
}

my $secs = seconds();
print "\n== API read path: module (nginx, $workers worker, pool $pool x pipeline depth $depth, "
    . "wrk) vs pgbench -M prepared, c=$conc, ${secs}s each ==\n";
printf "%-34s %12s %10s %10s\n", '', 'req/s', 'p50', 'p99';
for my $row (['GET /config-repos/{id}  module', 'detail_module', 'rps'],
             ['                        pgbench', 'detail_pg', 'tps'],
             ['GET /config-repos?limit=50 module', 'list_module', 'rps'],
             ['                        pgbench', 'list_pg', 'tps']) {
    my $x = $res{$row->[1]};
    printf "%-34s %12.0f %10s %10s\n", $row->[0], $x->{$row->[2]}, fmt_ms($x->{p50_ms}),
        fmt_ms($x->{p99_ms});
}
printf "ratio module/pgbench: detail %s (target >= 0.75), list %s\n",
    ratio($res{detail_module}{rps}, $res{detail_pg}{tps}),
    ratio($res{list_module}{rps}, $res{list_pg}{tps});

$t->stop_all;
}

sub write_file {
    my ($f, $s) = @_;
    open my $fh, '>', $f or die "$f: $!";
    print $fh $s;
    close $fh;
}
