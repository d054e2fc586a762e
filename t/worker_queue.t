#!/usr/bin/perl

# The durable queue (docs/api.md, docs/worker.md Jobs and step 1): dedup under concurrency, a new
# job after a failure, failures always written to pr_open_error, job timeout,
# progress in last_event, proposals no longer pending, poison jobs.

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
$w->start('w1', args => ['--threads', 3, '--job-timeout', 3]);

my $repo = $w->repo;
my $cluster = $w->cluster($repo);

# --- twenty concurrent enqueues: one job, one pipeline run --------------------
{
    my $p = $w->proposal($cluster);
    $w->script($p, 'sleep 500');
    my $sock = $w->socket_of('w1');
    my @r = $t->parallel(20, sub {
        $t->worker_request({op => 'enqueue', proposal_id => $p, request_id => "c$_[0]"}, $sock);
    });
    is(scalar(grep { $_ && $_->{ok} } @r), 20, '20 concurrent enqueues: all ok')
        or diag explain \@r;
    my %ids = map { ($_->{job_id} // 'none') => 1 } @r;
    is(scalar keys %ids, 1, 'one job id for all');
    is(scalar(grep { $_->{ok} && !$_->{deduplicated} } @r), 1, 'exactly one was not deduplicated');
    is(scalar $t->psql("SELECT count(*) FROM pr_jobs WHERE proposal_id = '$p'"), 1,
        'exactly one pr_jobs row');
    my ($job) = keys %ids;
    is($w->wait_job($job, 'succeeded|failed')->{state}, 'succeeded', 'the job succeeded');
    my @runs = $w->runs_of($p);
    is(scalar @runs, 1, 'the pipeline ran once');
    is($runs[0]{config_repo_id}, $repo, 'with the cluster\'s config repo');
    is($runs[0]{advisory_locks}, 1, 'holding the repo lock on ctx.db');
    my $pr = $w->proposal_row($p);
    is($pr->{status}, 'pr_opened', 'proposal pr_opened');
    like($pr->{pr_url}, qr{^https://github\.com/test/test/pull/\d+$}, 'pr_url set');

    # After success, a new enqueue makes a new job, which finds nothing to do.
    my $again = $w->enqueue($p);
    ok($again->{ok} && !$again->{deduplicated} && $again->{job_id} ne $job,
        'enqueue after success: a new job');
    is($w->wait_job($again->{job_id}, 'succeeded|failed')->{last_event},
        'pr_open_proposal_no_longer_pending', 'which ends as no longer pending');
    is(scalar($w->runs_of($p)), 1, 'without running the pipeline');
}

# --- a failed job, then a new enqueue starts a new job -------------------------
{
    my $p = $w->proposal($cluster);
    $w->script($p, 'fail PUSH_FAILED remote rejected the push');
    my $r1 = $w->enqueue($p);
    my $j1 = $w->wait_job($r1->{job_id}, 'succeeded|failed');
    is($j1->{state}, 'failed', 'scripted failure: job failed');
    is($j1->{last_error}, 'PUSH_FAILED: remote rejected the push', 'last_error');
    is($w->proposal_row($p)->{pr_open_error}, 'PUSH_FAILED: remote rejected the push',
        'pr_open_error written');
    is($w->proposal_row($p)->{status}, 'pending', 'proposal stays pending');
    my ($ev) = grep { $_->{job_id} eq $r1->{job_id} } $w->events('w1', 'pr_open_failed');
    ok($ev, 'pr_open_failed logged');
    is($ev->{error_code}, 'PUSH_FAILED', 'with error_code');
    is($ev->{proposal_id}, $p, 'with proposal_id');
    is($ev->{config_repo_id}, $repo, 'with config_repo_id');
    ok(defined $ev->{duration_ms}, 'with duration_ms');

    $w->script($p, 'succeed');
    my $r2 = $w->enqueue($p);
    ok($r2->{ok} && !$r2->{deduplicated}, 'enqueue after failure: not deduplicated');
    isnt($r2->{job_id}, $r1->{job_id}, 'a new job');
    is($w->wait_job($r2->{job_id}, 'succeeded|failed')->{state}, 'succeeded', 'it ran');
    my $pr = $w->proposal_row($p);
    is($pr->{status}, 'pr_opened', 'proposal opened');
    is($pr->{pr_open_error}, '', 'pr_open_error cleared by the successful run');
    is(scalar($w->jobs_of($p)), 2, 'two job rows');
}

# --- secrets in a failure message never reach the row ------------------------------
{
    my $p = $w->proposal($cluster);
    my $pat = 'ghp_' . ('A1b2' x 10);
    $w->script($p, "fail CLONE_FAILED clone of https://x-access-token:$pat\@github.com/o/r failed");
    my $r = $w->enqueue($p);
    $w->wait_job($r->{job_id}, 'failed');
    my $err = $w->proposal_row($p)->{pr_open_error};
    like($err, qr/^CLONE_FAILED: /, 'CLONE_FAILED written');
    unlike($err, qr/\Q$pat\E/, 'token redacted in pr_open_error');
    unlike($t->worker_log('w1'), qr/\Q$pat\E/, 'token not in the log');
}

# --- job timeout --------------------------------------------------------------------
{
    my $p = $w->proposal($cluster);
    $w->script($p, 'block');
    my $r = $w->enqueue($p);
    my $j = $w->wait_job($r->{job_id}, 'running');
    ok(RelyLoop::Test::wait_for(sub { $w->job($r->{job_id})->{last_event} eq 'test_pipeline_running' }, 5),
        'last_event follows ctx.report()');
    $j = $w->wait_job($r->{job_id}, 'succeeded|failed', 60);
    is($j->{state}, 'failed', 'blocked job failed');
    like($w->proposal_row($p)->{pr_open_error}, qr/^JOB_TIMEOUT: /, 'JOB_TIMEOUT in pr_open_error');
    my ($run) = $w->runs_of($p);
    is($run->{outcome}, 'cancelled', 'the pipeline saw the cancel flag');
    # the order of the worker's events: its watchdog's job_timeout, then the failure
    my @seq = map { $_->{event} } grep { ($_->{job_id} // '') eq $r->{job_id}
        && $_->{event} =~ /^(job_timeout|pr_open_failed)$/ } $w->events('w1');
    is_deeply(\@seq, ['job_timeout', 'pr_open_failed'],
        'cancelled by the job timeout (job_timeout), then failed');
}

# --- not pending, no config repo ----------------------------------------------------
{
    my $p = $w->proposal($cluster, status => 'rejected');
    my $r = $w->enqueue($p);
    my $j = $w->wait_job($r->{job_id}, 'succeeded|failed');
    is($j->{state}, 'succeeded', 'rejected proposal: job succeeded');
    is(scalar($w->runs_of($p)), 0, 'pipeline not called');
    ok((grep { ($_->{job_id} // '') eq $r->{job_id} }
        $w->events('w1', 'pr_open_proposal_no_longer_pending')), 'event logged');
    is($w->proposal_row($p)->{pr_open_error}, '', 'nothing written to the proposal');

    my $bare = $w->cluster(undef);
    my $p2 = $w->proposal($bare);
    $r = $w->enqueue($p2);
    $j = $w->wait_job($r->{job_id}, 'succeeded|failed');
    is($j->{state}, 'failed', 'cluster without config repo: failed');
    like($w->proposal_row($p2)->{pr_open_error}, qr/^CLUSTER_HAS_NO_CONFIG_REPO: /,
        'CLUSTER_HAS_NO_CONFIG_REPO written');

    my $gone = $w->cluster($w->repo);
    my $p3 = $w->proposal($gone);
    $t->psql("UPDATE clusters SET deleted_at = now() WHERE id = '$gone'");
    $r = $w->enqueue($p3);
    $w->wait_job($r->{job_id}, 'failed');
    like($w->proposal_row($p3)->{pr_open_error}, qr/^CLUSTER_HAS_NO_CONFIG_REPO: /,
        'soft-deleted cluster: CLUSTER_HAS_NO_CONFIG_REPO');
}

# --- poison: a job whose workers kept dying ------------------------------------------
{
    my $p = $w->proposal($cluster);
    my $id = $w->uuid;
    $t->psql(qq{INSERT INTO pr_jobs (id, proposal_id, state, attempts, lease_until, worker_id)
        VALUES ('$id', '$p', 'running', 3, now() - interval '1 second', 'dead-host:1')});
    my $j = $w->wait_job($id, 'succeeded|failed', 10);
    is($j->{state}, 'failed', 'expired lease, 3 attempts already: failed');
    is($j->{attempts}, 4, 'on the fourth claim');
    is($w->proposal_row($p)->{pr_open_error}, 'INTERNAL_ERROR: abandoned after 3 attempts',
        'pr_open_error says so');
    is(scalar($w->runs_of($p)), 0, 'pipeline not called');
    ok((grep { ($_->{job_id} // '') eq $id } $w->events('w1', 'job_reclaimed')),
        'job_reclaimed logged');
}

# --- the event log ------------------------------------------------------------------
{
    my @bad = $w->non_json_lines('w1');
    ok(!@bad, 'every log line is JSON') or diag join "\n", @bad[0 .. 4];
    for my $e (qw(worker_started job_enqueued job_claimed job_succeeded job_failed pr_open_failed
                  pr_open_complete)) {
        ok(scalar $w->events('w1', $e), "event $e present");
    }
    my @missing = grep { !$_->{ts} || !$_->{level} } $w->events('w1');
    ok(!@missing, 'every event has ts and level');
}

is($w->stop('w1', 'TERM'), 0, 'clean exit');
$t->done;
