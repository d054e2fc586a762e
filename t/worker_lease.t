#!/usr/bin/perl
# Lease discipline with the real pipeline (docs/worker.md, "Leases"):
#  - two live workers and a job that runs three times the lease TTL: the lease
#    is renewed, the job runs once, one PR;
#  - PostgreSQL out of reach for the worker (a TCP proxy cut) for longer than
#    the lease while the PR is being opened: the run is cancelled and
#    abandoned, nothing more reaches GitHub or the git server from it; when
#    PostgreSQL is back the job is re-claimed and ends with exactly one PR;
#  - a database blip (the worker's sessions terminated) mid-pipeline: the job
#    is retried, not failed, and succeeds with one PR.
# No wall-clock assertion: order of events, counts, the fake GitHub's request
# log, git refs.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep);

use RelyLoop::PipelineStack;
use RelyLoop::TcpProxy;

$SIG{ALRM} = sub { BAIL_OUT('t/worker_lease.t: hard timeout (300 s)') };
alarm 300;

my $LEASE = 3;
my $s = RelyLoop::PipelineStack->new(worker_args => ['--lease-ttl', $LEASE]);
my $t = $s->t;
my $git = $s->git;
my $gh = $s->gh;
my $REPO = 'acme/lease';
my $repo = $s->repo($REPO, files => {'clusters/prod/bm25.params.json' => RelyLoop::PipelineStack::params_text()});
my $cluster = $s->cluster($repo, 'clusters/prod');
my $tmpl = $s->template(name => 'bm25');

sub branch_of { "relyloop/study-$_[0]{study_id}" }
sub prs_for { my $b = branch_of($_[0]); grep { $_->{head}{ref} eq $b } $gh->pulls }
sub creates_for { my $b = branch_of($_[0]); grep { ($_->{json}{head} // '') eq $b } $gh->requests(route => 'create_pull') }
sub job_events {
    my ($p, @names) = @_;
    return map { $s->events($_, $p->{proposal_id}) } @names;
}

# --- two live workers, a job three times the lease ---------------------------------------
{
    $s->start_worker(name => 'worker2', no_wait => 0, args => ['--socket', $t->dir . '/worker2.sock']);
    my $p = $s->study($cluster, $tmpl);
    $gh->script(create_pull => {delay => 3 * $LEASE, passthrough => JSON::PP::true});
    my $row = $s->open_and_wait($p->{proposal_id}, 90);
    is($row->{status}, 'pr_opened', 'long job: opened');
    is(scalar(prs_for($p)), 1, 'one PR');
    is(scalar(creates_for($p)), 1, 'one create request');
    is($s->job($p->{proposal_id})->{attempts}, 1, 'claimed once');
    is(scalar(job_events($p, 'job_claimed')), 1, 'one job_claimed over both workers');
    is(scalar(job_events($p, 'job_reclaimed', 'job_lease_expired', 'job_abandoned',
        'job_lease_lost', 'job_retry')), 0, 'no re-claim, no lost or expired lease, no retry');
    is(scalar(job_events($p, 'pr_open_complete')), 1, 'one pr_open_complete');
    $t->stop_worker('worker2');
    is($t->worker_exit_status('worker2') >> 8, 0, 'worker2 exits 0');
}

# --- PostgreSQL out of reach for longer than the lease -------------------------------------
{
    $t->stop_worker('worker');
    my $px = RelyLoop::TcpProxy->start(target_port => $t->pg_port);
    my $via = 'host=127.0.0.1 port=' . $px->port . ' user=postgres dbname=relyloop';
    $s->start_worker(name => 'px', args => ['--pg-conninfo', $via]);
    my $p = $s->study($cluster, $tmpl);
    my $b = branch_of($p);
    $gh->script(create_pull => {delay => 2 * $LEASE, passthrough => JSON::PP::true});
    is($s->open_pr($p->{proposal_id})->{status}, 202, 'queued');
    ok(RelyLoop::Test::wait_for(sub { scalar creates_for($p) }, 60), 'pushed, the PR is being created');
    my $tip = $git->git($REPO, 'rev-parse', $b);
    $px->cut;
    my $requests_at_cut = scalar($gh->requests);
    my $abandoned = RelyLoop::Test::wait_for(sub { scalar grep { $_->{event} eq 'job_abandoned' }
        map { RelyLoop::Test::json_decode($_) // () } grep { /^\{/ } split /\n/, $t->worker_log('px') }, 60);
    ok($abandoned, 'the run was abandoned') or diag($t->worker_log('px'));
    my @ev = grep { ($_->{proposal_id} // '') eq $p->{proposal_id} }
        map { RelyLoop::Test::json_decode($_) // () } grep { /^\{/ } split /\n/, $t->worker_log('px');
    my @order = grep { /^job_(claimed|lease_expired|abandoned|succeeded|failed|released|retry)$|^pr_open_complete$/ }
        map { $_->{event} } @ev;
    is_deeply(\@order, [qw(job_claimed job_lease_expired job_abandoned)],
        'claimed, lease expired, abandoned; no outcome written') or diag explain \@order;
    # The fake answers the create after its delay (the PR exists then); a run
    # that went on would now post comments or finalize.
    sleep 2 * $LEASE + 1;
    is(scalar($gh->requests), $requests_at_cut, 'no GitHub request after the lease ran out');
    is($git->git($REPO, 'rev-parse', $b), $tip, 'no push after the lease ran out');
    is($s->job($p->{proposal_id})->{state}, 'running', 'the row still shows the abandoned claim');
    $px->resume;
    my $row = $s->wait_done($p->{proposal_id}, 90);
    is($row->{status}, 'pr_opened', 'PostgreSQL back: the job was re-claimed and finished');
    my @prs = prs_for($p);
    is(scalar @prs, 1, 'exactly one PR');
    is($row->{pr_url}, $prs[0]{html_url}, 'the proposal points at it');
    is($git->git($REPO, 'rev-list', '--count', "main..$b"), "2\n", 'no second commit');
    is($s->job($p->{proposal_id})->{attempts}, 2, 'two claims');
    ok(scalar(job_events($p, 'job_reclaimed')), 'job_reclaimed logged');
    $t->stop_worker('px');
    is($t->worker_exit_status('px') >> 8, 0, 'px exits 0');
    $px->cut;
}

# --- a database blip mid-pipeline -----------------------------------------------------------
{
    # A long lease keeps the heartbeat out of the way: the pipeline itself
    # meets the dead session (its final update) and asks for a retry.
    $s->start_worker(name => 'worker', args => ['--lease-ttl', 60]);
    my $p = $s->study($cluster, $tmpl);
    $gh->script(create_pull => {delay => 2, passthrough => JSON::PP::true});
    is($s->open_pr($p->{proposal_id})->{status}, 202, 'queued');
    ok(RelyLoop::Test::wait_for(sub { scalar creates_for($p) }, 60), 'the PR is being created');
    my $killed = $t->psql(q{SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
        WHERE application_name LIKE 'relyloop-worker%'});
    cmp_ok($killed, '>=', 2, "terminated the worker's sessions ($killed)");
    my $row = $s->wait_done($p->{proposal_id}, 90);
    is($row->{status}, 'pr_opened', 'the blip did not fail the job');
    is($row->{pr_open_error}, undef, 'no pr_open_error');
    is(scalar(prs_for($p)), 1, 'one PR');
    is($s->job($p->{proposal_id})->{attempts}, 2, 'retried once');
    my @retry = job_events($p, 'job_retry');
    is(scalar @retry, 1, 'one job_retry');
    like($retry[0]{message} // '', qr/^database: /, 'for the database error') or diag explain \@retry;
    is(scalar(job_events($p, 'pr_open_failed')), 0, 'no pr_open_failed');
}

$s->done;
