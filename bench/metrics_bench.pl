#!/usr/bin/env perl
# The cost of metrics (docs/metrics.md): GET /api/v1/config-repos/{id} under
# wrk with and without a `relyloop_metrics` location (with it, every API
# request does its atomic adds in the log phase), each against pgbench
# running the same SQL in the same run. Rounds alternate which goes first so
# that drift on a shared machine hits both alike; the verdict is the median
# round's on/off (each round's pair shares its pgbench reference).
# Target: the ratio with metrics on within 3% of the ratio with them off.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../t/lib";

use Bench qw(wrk pgbench print_statements seed_config_repos ratio seconds);
use RelyLoop::Test;

my $build = $ENV{RELYLOOP_BUILD_DIR} || "$FindBin::Bin/../build";
my $conc = $ENV{RELYLOOP_BENCH_CONCURRENCY} || 32;
my $rounds = $ENV{RELYLOOP_BENCH_ROUNDS} || 5;

my $t = RelyLoop::Test->new;
$t->start_pg->migrate;
my $id = seed_config_repos($t);
my $st = print_statements($build, $t->dir);
my $get = $st->{rl_config_repo_get} or die 'no rl_config_repo_get';
open my $fh, '>', $t->dir . '/get.sql' or die;
print $fh(($get->{sql} =~ s/\$1\b/:id/gr) . ";\n");
close $fh;

my %nginx = (environment => 'production', workers => 1, access_log => 0, log_level => 'warn',
    directives => {relyloop_pg_timeout => '5s', relyloop_pg_pool_size => 2,
        relyloop_pg_pipeline_depth => 16});
my $metrics_location = "location = /metrics { relyloop_metrics; allow 127.0.0.1; deny all; }";

sub module_rps {
    my ($on, $secs) = @_;
    $t->start_nginx(%nginx, $on ? (server => $metrics_location) : ());
    my $r = $t->http(GET => "/api/v1/config-repos/$id");
    die "detail: $r->{status}" unless $r->{status} == 200;
    if ($on) {
        $r = $t->http(GET => '/metrics');
        die "metrics: $r->{status}" unless $r->{status} == 200;
    }
    my $w = wrk(url => $t->url("/api/v1/config-repos/$id"), connections => $conc,
        defined $secs ? (seconds => $secs) : ());
    die "errors or non-2xx\n$w->{raw}" if $w->{errors} || $w->{non2xx};
    if ($on) {
        # the requests were counted
        $r = $t->http(GET => '/metrics');
        my ($n) = $r->{body} =~ m{^relyloop_http_requests_total\{route="/api/v1/config-repos/\{id\}",method="GET",code="2xx"\} (\d+)$}m;
        die "metrics did not count the load" unless ($n // 0) > $w->{rps};
    }
    $t->stop_nginx;
    return $w->{rps};
}

sub pg_tps {
    return pgbench(port => $t->pg_port, script => $t->dir . '/get.sql', defines => {id => $id},
        clients => $conc, dir => $t->dir)->{tps};
}

# warm up
module_rps(0, 2);
module_rps(1, 2);

my (@off, @on);
for my $i (1 .. $rounds) {
    my $pg = pg_tps();
    # alternate which goes first
    my ($off, $on) = $i % 2 ? (module_rps(0), module_rps(1))
                            : reverse(module_rps(1), module_rps(0));
    push @off, [$off, $pg];
    push @on, [$on, $pg];
}
$t->stop_all;

my $secs = seconds();
print "\n== metrics cost: GET /config-repos/{id} (nginx 1 worker, pool 2 x depth 16, c=$conc, "
    . "${secs}s each, $rounds rounds) ==\n";
printf "%-7s %12s %12s %12s %8s\n", 'round', 'off req/s', 'on req/s', 'pgbench tps', 'on/off';
my ($ro, $rn, @per) = (0, 0);
for my $i (0 .. $rounds - 1) {
    printf "%-7d %12.0f %12.0f %12.0f %8s\n", $i + 1, $off[$i][0], $on[$i][0], $off[$i][1],
        ratio($on[$i][0], $off[$i][0]);
    $ro += $off[$i][0] / $off[$i][1];
    $rn += $on[$i][0] / $on[$i][1];
    push @per, $on[$i][0] / $off[$i][0];
}
$ro /= $rounds;
$rn /= $rounds;
@per = sort { $a <=> $b } @per;
# the median round: one round disturbed by a neighbour on a shared machine
# does not decide the verdict
my $median = @per % 2 ? $per[$#per / 2] : ($per[@per / 2 - 1] + $per[@per / 2]) / 2;
printf "ratio module/pgbench: metrics off %.3f, on %.3f (mean over rounds); "
    . "on/off median %.3f (target >= 0.97)\n", $ro, $rn, $median;
