#!/usr/bin/perl
# The job timeout is enforced, not renewed past (docs/worker.md, "Job
# timeout"): a pipeline stuck where the cancel flag cannot reach it keeps
# running after --job-timeout, but its lease is no longer renewed, so another
# worker re-claims the job (and waits for the repo lock the stuck run still
# holds); the stuck run, when it finally returns, writes nothing
# (job_abandoned), and the job is finished by whichever worker gets it next.
# No wall-clock assertion: order of events and counts.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use RelyLoop::Test;
use RelyLoop::WorkerTest;

$SIG{ALRM} = sub { BAIL_OUT('t/worker_stuck.t: hard timeout (120 s)') };
alarm 120;

my $t = RelyLoop::Test->new;
$t->start_pg->migrate;
my $w = RelyLoop::WorkerTest->new($t);

# Lease 3 s (WorkerTest's default), job timeout 2 s, a run stuck for 12 s.
$w->start('a', args => ['--threads', 1, '--job-timeout', 2]);
my $p = $w->proposal($w->cluster($w->repo));
$w->script($p, 'hang 12000');
my $r = $w->enqueue($p, 'a');
ok($r && $r->{ok}, 'enqueued');
ok(RelyLoop::Test::wait_for(sub { scalar $w->runs_of($p) }, 15), 'the run started (and hangs)');
$w->script($p, 'succeed');
$w->start('b', args => ['--threads', 1, '--max-lock-waits', 100]);

my $job = $w->wait_job($r->{job_id}, 'succeeded|failed', 60);
is($job->{state}, 'succeeded', 'the job succeeded');
is($job->{attempts}, 2, 'on the second claim');
is($w->proposal_row($p)->{pr_open_error}, '', 'no pr_open_error (no JOB_TIMEOUT written by the stuck run)');

my @runs = $w->runs_of($p);
is(scalar @runs, 2, 'two runs');
is($runs[0]{pid}, $w->pid('a'), 'the stuck one on a');
is($runs[0]{outcome}, 'cancelled', 'which saw its cancel flag when it came back');
isnt($runs[1]{outcome} // '', 'cancelled', 'the second completed (on a or b: both are free by then)');
ok(!RelyLoop::WorkerTest::overlap($runs[0], $runs[1]), 'never at the same time (the repo lock)');

my @a = map { $_->{event} } grep { ($_->{job_id} // '') eq $r->{job_id} } $w->events('a');
my @a_order = grep { /^job_(claimed|timeout|lease_expired|abandoned|succeeded|failed|released|retry)$/ } @a;
is_deeply([@a_order[0 .. 2]], [qw(job_claimed job_timeout job_abandoned)],
    'a: claimed, timed out, abandoned (lease not renewed past the timeout); nothing written')
    or diag explain \@a_order;
my @b = map { $_->{event} } grep { ($_->{job_id} // '') eq $r->{job_id} } $w->events('b');
ok((grep { $_ eq 'job_reclaimed' } @b), 'b re-claimed the job after the lease expired');
ok((grep { $_ eq 'pr_open_lock_contention' } @b),
    'while the stuck run still held the repo lock');
is(scalar(grep { $_ eq 'job_succeeded' } @a, @b), 1, 'one job_succeeded (a or b)');
ok(!(grep { /^(job_failed|pr_open_failed)$/ } @a, @b), 'no failure written by either');

is($w->stop('a', 'TERM', 30) >> 8, 0, 'a exits 0');
is($w->stop('b', 'TERM', 30) >> 8, 0, 'b exits 0');
$t->done;
