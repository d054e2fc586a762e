#!/usr/bin/perl

# Nothing acknowledged is lost: kill -9 with a job running and others queued,
# then a restart, runs every job to an end and never one job twice at once;
# SIGTERM releases a running job for the next worker; PostgreSQL going away
# and coming back does not take the worker down.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);

use RelyLoop::Test;
use RelyLoop::WorkerTest;

$SIG{PIPE} = 'IGNORE';

my $t = RelyLoop::Test->new;
$t->start_pg->migrate;
my $w = RelyLoop::WorkerTest->new($t);

sub now_ms { int(time * 1000) }

# The worker's events from its first worker_stopping on, as short strings.
sub stop_sequence {
    my ($name) = @_;
    my ($on, @out) = (0);
    for my $e ($w->events($name)) {
        $on ||= $e->{event} eq 'worker_stopping';
        next unless $on && $e->{event} =~ /^(worker_stopping|worker_stopped|job_cancelling|job_released)$/;
        my $what = $e->{event};
        if ($what eq 'worker_stopping') {
            my ($grace) = ($e->{message} // '') =~ /(running jobs get \d+ s)/;
            $what .= ' running=' . ($e->{running} // '?') . ' (' . ($grace // $e->{message} // '') . ')';
        } elsif ($what eq 'job_cancelling') {
            $what .= " $e->{job_id} ($e->{message})";
        } elsif ($what ne 'worker_stopped') {
            $what .= " " . ($e->{job_id} // '');
        }
        push @out, $what;
    }
    return @out;
}

# --- kill -9 while a job runs and others wait ---------------------------------
my @repos = map { $w->repo } 1 .. 2;
my @clusters = map { $w->cluster($_) } @repos;
$w->script('default', 'sleep 200');
$w->start('a', args => ['--threads', 1, '--lease-ttl', 2]);

my $blocked = $w->proposal($clusters[0]);
$w->script($blocked, 'block');
my $rb = $w->enqueue($blocked, 'a');
ok($rb->{ok}, 'blocking job acknowledged');
is($w->wait_job($rb->{job_id}, 'running')->{state}, 'running', 'and running');
RelyLoop::Test::wait_for(sub { scalar $w->runs_of($blocked) }, 30);

my @queued = map { $w->proposal($clusters[$_ % 2]) } 0 .. 3;
my @acks = map { $w->enqueue($_, 'a') } @queued;
is(scalar(grep { $_->{ok} } @acks), 4, 'four more acknowledged while the only thread is busy');
is(scalar $t->psql("SELECT count(*) FROM pr_jobs WHERE state = 'queued'"), 4, 'four queued');

my $killed_at = now_ms();
$w->stop('a', 'KILL');
ok(-S $w->socket_of('a'), 'kill -9 left the socket file');
# The blocked job's re-run should finish.
$w->script($blocked, 'sleep 300');

$w->start('b', socket => $w->socket_of('a'), args => ['--threads', 2, '--lease-ttl', 2]);
for my $r ($rb, @acks) {
    is($w->wait_job($r->{job_id}, 'succeeded|failed', 30)->{state}, 'succeeded',
        "job $r->{job_id} ran to an end");
}
for my $p ($blocked, @queued) {
    is($w->proposal_row($p)->{status}, 'pr_opened', "proposal $p opened");
}

my $b_pid = $w->pid('b');
my @runs = $w->runs_of($blocked);
is(scalar @runs, 2, 'the blocked job ran twice: killed, then re-claimed');
ok(!defined $runs[0]{end_ms}, 'the first run never ended (kill -9)');
is($runs[1]{pid}, $b_pid, 'the second run is the new worker\'s');
cmp_ok($runs[1]{start_ms}, '>=', $killed_at, 'and started only after the kill');
is($runs[1]{attempt}, 2, 'as attempt 2');
is($w->job($rb->{job_id})->{attempts}, 2, 'attempts = 2 in the row');
ok((grep { ($_->{job_id} // '') eq $rb->{job_id} } $w->events('b', 'job_reclaimed')),
    'job_reclaimed logged');

# No job ever ran twice at the same time (a run cut by kill -9 ends at the kill).
my @all = $w->runs;
my $overlaps = 0;
for my $i (0 .. $#all) {
    for my $j ($i + 1 .. $#all) {
        next unless $all[$i]{job_id} eq $all[$j]{job_id};
        my %a = %{$all[$i]};
        $a{end_ms} //= $killed_at;
        $overlaps++ if RelyLoop::WorkerTest::overlap(\%a, $all[$j]);
    }
}
is($overlaps, 0, 'no job ran twice concurrently');
for my $p (@queued) {
    is(scalar($w->runs_of($p)), 1, "queued proposal $p ran exactly once");
}

# --- SIGTERM with a running job: released, finished by the next worker ------------
my $p6 = $w->proposal($clusters[1]);
$w->script($p6, 'block');
my $r6 = $w->enqueue($p6, 'a');
$w->wait_job($r6->{job_id}, 'running');
RelyLoop::Test::wait_for(sub { scalar $w->runs_of($p6) }, 30);
my $status = $w->stop('b', 'TERM', 60);
is($status, 0, 'SIGTERM: exit 0');
# b's shutdown, in the order it logged it
is_deeply([stop_sequence('b')], ['worker_stopping running=1 (running jobs get 2 s)',
    "job_cancelling $r6->{job_id} (shutdown grace period over)", "job_released $r6->{job_id}",
    'worker_stopped'], 'running job got the grace period (2 s), was then cancelled and released');
is(($w->runs_of($p6))[0]{outcome}, 'cancelled', 'the pipeline saw the cancel');
my $j6 = $w->job($r6->{job_id});
is($j6->{state}, 'queued', 'released back to queued');
is($j6->{attempts}, 0, 'the interrupted claim is not counted');
is($j6->{worker_id}, '', 'lease cleared');
is($w->proposal_row($p6)->{pr_open_error}, '', 'no error written for a shutdown');
ok(!-e $w->socket_of('a'), 'socket removed on SIGTERM');
ok((grep { ($_->{job_id} // '') eq $r6->{job_id} } $w->events('b', 'job_released')),
    'job_released logged');
ok(scalar $w->events('b', 'worker_stopping'), 'worker_stopping logged');
ok(scalar $w->events('b', 'worker_stopped'), 'worker_stopped logged');

$w->script($p6, 'succeed');
$w->start('c', args => ['--threads', 1]);
is($w->wait_job($r6->{job_id}, 'succeeded|failed', 15)->{state}, 'succeeded',
    'the next worker finished the released job');
is($w->job($r6->{job_id})->{attempts}, 1, 'attempts = 1');

# The runner's connection dies mid-job (and the repo lock with it): the job
# must not go on without the lock; it is cancelled, released and re-run.
{
    my $p = $w->proposal($clusters[0]);
    $w->script($p, 'block');
    my $r = $w->enqueue($p, 'c');
    $w->wait_job($r->{job_id}, 'running');
    RelyLoop::Test::wait_for(sub { scalar $w->runs_of($p) }, 30);
    $w->script($p, 'succeed');
    my $killed = $t->psql(q{SELECT count(pg_terminate_backend(pid)) FROM pg_locks
        WHERE locktype = 'advisory' AND granted});
    is($killed, 1, 'terminated the backend holding the repo lock');
    is($w->wait_job($r->{job_id}, 'succeeded|failed', 20)->{state}, 'succeeded',
        'the job ran again and succeeded');
    my @pr = $w->runs_of($p);
    is(scalar @pr, 2, 'two runs');
    is($pr[0]{outcome}, 'cancelled', 'the first was cancelled when the lock was lost');
    ok(!RelyLoop::WorkerTest::overlap($pr[0], $pr[1]), 'the runs did not overlap');
    ok((grep { ($_->{job_id} // '') eq $r->{job_id} } $w->events('c', 'job_lock_lost')),
        'job_lock_lost logged');
    is($w->job($r->{job_id})->{attempts}, 2, 'a lost lock counts as an attempt (poison after 3)');
    ok((grep { ($_->{job_id} // '') eq $r->{job_id} } $w->events('c', 'job_retry')),
        'job_retry logged');
}

# SIGTERM with a job claimed but idle workers: immediate exit.
is($w->stop('c', 'TERM', 30), 0, 'idle worker: exit 0');
is_deeply([stop_sequence('c')], ['worker_stopping running=0 (running jobs get 2 s)', 'worker_stopped'],
    'promptly: nothing running, nothing waited for or cancelled');

# --- PostgreSQL goes away and comes back ------------------------------------------
$w->start('d', args => ['--threads', 2]);
$t->pg_ctl_stop;
my $r = $w->ping('d');
ok($r && !$r->{ok} && $r->{error} eq 'database unavailable', 'PG down: ping says so')
    or diag explain $r;
$r = $w->enqueue('00000000-0000-0000-0000-000000000001', 'd');
ok($r && !$r->{ok}, 'PG down: enqueue not acknowledged');
sleep 1.5;
ok(kill(0, $w->pid('d')), 'the worker survives the outage');
$t->pg_ctl_start;
my $p8 = $w->proposal($clusters[0]);
my $ok = RelyLoop::Test::wait_for(sub { my $x = $w->enqueue($p8, 'd'); $x && $x->{ok} }, 15);
ok($ok, 'PG back: enqueue acknowledged again');
my ($j8) = $w->jobs_of($p8);
is($w->wait_job($j8, 'succeeded|failed', 20)->{state}, 'succeeded', 'and the job runs');
is($w->stop('d', 'TERM', 30), 0, 'clean exit after the outage');

for my $n (qw(a b c d)) {
    my @bad = $w->non_json_lines($n);
    ok(!@bad, "worker $n: every log line is JSON") or diag join "\n", @bad[0 .. 4];
}

$t->done;
