#!/usr/bin/env perl
# How closely the timeouts are kept. The tests assert only that a timeout
# fired and in what order things happened (never how long it took: that
# flakes on a slow or ASan machine); the time is measured here, as the
# median over a few rounds against the configured value (ratio 1.00 = on
# time). Numbers only, no pass/fail.
#
#   relyloop_pg_timeout      a query blocked on a lock → 503 (t/api_resilience.t)
#   relyloop_worker_timeout  a worker socket that accepts and never answers → 503
#                            (t/open_pr_handoff.t)
#   --client-idle-timeout    a silent socket client is closed (t/worker_protocol.t)
#   --job-timeout            a blocked pipeline is cancelled (t/worker_queue.t)

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../t/lib";

use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(sleep time);

use RelyLoop::Test;
use RelyLoop::Fixtures qw(psql_bg lock_held);
use RelyLoop::WorkerTest;

my $rounds = $ENV{RELYLOOP_BENCH_ROUNDS} || 3;

my $t = RelyLoop::Test->new;
$t->start_pg->migrate;
my $w = RelyLoop::WorkerTest->new($t);
# (WorkerTest's daemon: --client-idle-timeout 2)
$w->start('w1', args => ['--threads', 1, '--job-timeout', 3]);
$t->start_nginx(worker_socket => $w->socket_of('w1'), log_level => 'warn',
    directives => {relyloop_pg_timeout => '3s', relyloop_worker_timeout => '1s'});

my @rows;
sub measured {
    my ($what, $configured, @secs) = @_;
    @secs = sort { $a <=> $b } grep { defined } @secs;
    return push @rows, [$what, $configured] unless @secs;
    push @rows, [$what, $configured, $secs[int(@secs / 2)], $secs[0], $secs[-1]];
}

# relyloop_pg_timeout: the table locked by another session
{
    my @took;
    for (1 .. $rounds) {
        my $locker = psql_bg($t, 'BEGIN; LOCK TABLE config_repos IN ACCESS EXCLUSIVE MODE; '
            . 'SELECT pg_sleep(60); COMMIT;');
        RelyLoop::Test::wait_for(sub { lock_held($t, 'config_repos') }, 30) or die 'no lock';
        my $t0 = time;
        my $r = $t->http(GET => '/api/v1/config-repos');
        push @took, $r->{status} == 503 ? time - $t0 : undef;
        $t->psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' "
            . 'AND pid <> pg_backend_pid()');
        waitpid($locker, 0);
    }
    measured('relyloop_pg_timeout (blocked query → 503)', 3, @took);
}

# relyloop_worker_timeout: a socket that accepts and never answers
{
    my $repo = $w->repo;
    my $ref = $t->psql("SELECT auth_ref FROM config_repos WHERE id = '$repo'");
    $t->write_secret($ref, "ghp_bench_timeouts\n");
    my $p = $w->proposal($w->cluster($repo));
    $w->stop('w1');
    my $mute = IO::Socket::UNIX->new(Local => $w->socket_of('w1'), Type => SOCK_STREAM,
        Listen => 64) or die "listen: $!";
    my @took;
    for (1 .. $rounds) {
        my $t0 = time;
        my $r = $t->http(POST => "/api/v1/proposals/$p/open_pr");
        push @took, $r->{status} == 503 ? time - $t0 : undef;
    }
    measured('relyloop_worker_timeout (mute worker → 503)', 1, @took);
    close $mute;
    unlink $w->socket_of('w1');
    $w->start('w1', args => ['--threads', 1, '--job-timeout', 3]);
}

# --client-idle-timeout: a client that says nothing after connecting
{
    my @took;
    for (1 .. $rounds) {
        my $c = $w->client('w1') or die 'connect';
        my $t0 = time;
        push @took, $c->closed_within(30) ? time - $t0 : undef;
        $c->close;
    }
    measured('worker --client-idle-timeout (silent client closed)', 2, @took);
}

# --job-timeout: a pipeline that blocks until it is cancelled (the test
# pipeline's own start and end times)
{
    my $cluster = $w->cluster($w->repo);
    my @took;
    for (1 .. $rounds) {
        my $p = $w->proposal($cluster);
        $w->script($p, 'block');
        my $r = $w->enqueue($p, 'w1');
        $w->wait_job($r->{job_id}, 'succeeded|failed', 60);
        my ($run) = $w->runs_of($p);
        push @took, $run && defined $run->{end_ms} ? ($run->{end_ms} - $run->{start_ms}) / 1000 : undef;
    }
    measured('worker --job-timeout (blocked pipeline cancelled)', 3, @took);
}

$t->stop_all;

print "\n== timeouts: configured vs measured, median of $rounds ==\n";
printf "%-52s %10s %10s %16s %7s\n", '', 'configured', 'median', 'min - max', 'ratio';
for my $r (@rows) {
    my ($what, $conf, $med, $min, $max) = @$r;
    if (!defined $med) {
        printf "%-52s %9ss %10s\n", $what, $conf, 'no answer';
        next;
    }
    printf "%-52s %9ss %9.2fs %7.2f - %5.2fs %7.2f\n", $what, $conf, $med, $min, $max, $med / $conf;
}
