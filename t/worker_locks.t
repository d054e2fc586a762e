#!/usr/bin/perl

# Per-repo serialization across workers (docs/worker.md, Jobs): two workers on one
# database never run two jobs of one config repo at once, do run jobs of
# different repos in parallel, log and retry contention, and give up with
# LOCK_TIMEOUT when the budget is spent.

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
$w->script('default', 'sleep 700');
$w->start('w1', args => ['--threads', 2, '--lock-retry-delay', 1, '--max-lock-waits', 30]);
$w->start('w2', args => ['--threads', 2, '--lock-retry-delay', 1, '--max-lock-waits', 30]);

my ($ra, $rb, $rc) = map { $w->repo } 1 .. 3;
my ($ca, $cb, $cc) = map { $w->cluster($_) } $ra, $rb, $rc;

# Three proposals on repo A, one each on B and C, enqueued through both workers.
my @a = map { $w->proposal($ca) } 1 .. 3;
my $b = $w->proposal($cb);
my $c = $w->proposal($cc);
my @jobs;
my $i = 0;
for my $p (@a, $b, $c) {
    my $r = $w->enqueue($p, $i++ % 2 ? 'w2' : 'w1');
    ok($r->{ok}, "enqueued $p");
    push @jobs, $r->{job_id};
}
for my $j (@jobs) {
    is($w->wait_job($j, 'succeeded|failed', 40)->{state}, 'succeeded', "job $j succeeded");
}

my @runs = $w->runs;
is(scalar @runs, 5, 'five pipeline runs');
my %pids = map { $_->{pid} => 1 } @runs;
is(scalar keys %pids, 2, 'both workers ran jobs');
ok(!(grep { $_->{advisory_locks} != 1 } @runs), 'each run held exactly one advisory lock');

my @runs_a = grep { $_->{config_repo_id} eq $ra } @runs;
is(scalar @runs_a, 3, 'three runs on repo A');
my $a_overlaps = 0;
for my $x (0 .. $#runs_a) {
    for my $y ($x + 1 .. $#runs_a) {
        $a_overlaps++ if RelyLoop::WorkerTest::overlap($runs_a[$x], $runs_a[$y]);
    }
}
is($a_overlaps, 0, 'jobs of one config repo never overlap in time');

my $cross = 0;
for my $x (@runs) {
    for my $y (@runs) {
        $cross++ if $x->{config_repo_id} lt $y->{config_repo_id}
            && RelyLoop::WorkerTest::overlap($x, $y);
    }
}
cmp_ok($cross, '>', 0, 'jobs of different repos do overlap');

my @contention = ($w->events('w1', 'pr_open_lock_contention'),
    $w->events('w2', 'pr_open_lock_contention'));
cmp_ok(scalar @contention, '>', 0, 'contention logged as pr_open_lock_contention');
ok(!(grep { ($_->{config_repo_id} // '') ne $ra } @contention), 'only on repo A');
ok(!(grep { !defined $_->{job_id} || !defined $_->{proposal_id} } @contention),
    'with job_id and proposal_id');
my $waits = $t->psql("SELECT sum(lock_waits) FROM pr_jobs");
cmp_ok($waits, '>', 0, 'lock_waits counted');
is(scalar $t->psql("SELECT count(*) FROM pr_jobs WHERE attempts <> 1"), 0,
    'contention does not count as an attempt');

# --- LOCK_TIMEOUT ---------------------------------------------------------------------
# One job holds repo D's lock (blocked); another job on D runs out of its
# budget of 2 waits of 1 s.
is($w->stop('w2', 'TERM'), 0, 'w2 stopped');
is($w->stop('w1', 'TERM'), 0, 'w1 stopped');
$w->start('w3', args => ['--threads', 2, '--lock-retry-delay', 1, '--max-lock-waits', 2]);
my $rd = $w->repo;
my $cd = $w->cluster($rd);
my $holder = $w->proposal($cd);
my $loser = $w->proposal($cd);
$w->script($holder, 'block');
$w->script($loser, 'succeed');
my $rh = $w->enqueue($holder, 'w3');
$w->wait_job($rh->{job_id}, 'running');
RelyLoop::Test::wait_for(sub { scalar $w->runs_of($holder) }, 30);
my $rl = $w->enqueue($loser, 'w3');
my $jl = $w->wait_job($rl->{job_id}, 'succeeded|failed', 60);
is($jl->{state}, 'failed', 'the waiting job failed');
is($jl->{lock_waits}, 2, 'after max-lock-waits retries');
# the worker's events for it, in order: two deferrals by the retry delay, then the failure
my @seq = map { $_->{event} eq 'pr_open_lock_contention' ? "wait $_->{lock_waits}: $_->{message}" : $_->{event} }
    grep { ($_->{job_id} // '') eq $rl->{job_id}
        && $_->{event} =~ /^(pr_open_lock_contention|pr_open_failed)$/ } $w->events('w3');
is_deeply(\@seq, ['wait 1: config repo locked by another job; retry in 1 s',
    'wait 2: config repo locked by another job; retry in 1 s', 'pr_open_failed'],
    'spread over the retry delays: deferred twice by --lock-retry-delay, then failed');
like($w->proposal_row($loser)->{pr_open_error}, qr/^LOCK_TIMEOUT: /, 'LOCK_TIMEOUT in pr_open_error');
is(scalar($w->runs_of($loser)), 0, 'its pipeline never ran');
my @lt = grep { ($_->{error_code} // '') eq 'LOCK_TIMEOUT' } $w->events('w3', 'pr_open_failed');
is(scalar @lt, 1, 'pr_open_failed with error_code LOCK_TIMEOUT');

$w->release($holder);
is($w->wait_job($rh->{job_id}, 'succeeded|failed', 10)->{state}, 'succeeded',
    'the holder finishes');
is(scalar $t->psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"), 0,
    'no advisory lock left behind');

# A new enqueue after LOCK_TIMEOUT runs now that the repo is free.
my $again = $w->enqueue($loser, 'w3');
ok($again->{ok} && !$again->{deduplicated}, 'new job after LOCK_TIMEOUT');
is($w->wait_job($again->{job_id}, 'succeeded|failed', 10)->{state}, 'succeeded', 'and it succeeds');
is($w->proposal_row($loser)->{pr_open_error}, '', 'pr_open_error cleared');

is($w->stop('w3', 'TERM'), 0, 'w3 stopped');
$t->done;
