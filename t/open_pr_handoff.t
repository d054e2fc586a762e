#!/usr/bin/env perl
# POST /api/v1/proposals/{id}/open_pr end to end through nginx, the Unix
# socket and the worker (with the scripted test pipeline): the preflight of
# docs/api.md's open_pr preflight in its order, none of it touching the proposal row; the 503s of a
# stopped or mute worker; one job for twenty concurrent POSTs; a new job after
# a failed one; pr_job in the proposal detail; health pinging the worker.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Select;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use Test::More;
use Time::HiRes qw(time sleep);

use RelyLoop::Test;
use RelyLoop::WorkerTest;

my $t = RelyLoop::Test->new;
$t->start_pg->migrate;
my $w = RelyLoop::WorkerTest->new($t);
$w->start('w1', args => ['--threads', 2]);
$t->start_nginx(worker_socket => $w->socket_of('w1'),
    directives => {relyloop_worker_timeout => '1s'});

my $dir = $t->dir;

sub repo_with_pat {
    my ($content) = @_;
    my $repo = $w->repo;
    my $ref = $t->psql("SELECT auth_ref FROM config_repos WHERE id = '$repo'");
    $t->write_secret($ref, $content) if defined $content;
    return ($repo, $ref);
}

sub row_of { scalar $t->psql("SELECT to_jsonb(p)::text FROM proposals p WHERE id = '$_[0]'") }

sub open_pr {
    my ($id, %opts) = @_;
    return $t->http(POST => "/api/v1/proposals/$id/open_pr", %opts);
}

sub error_is {
    my ($r, $status, $code, $name) = @_;
    is($r->{status}, $status, "$name: $status") or diag($r->{body});
    is($r->{json} && $r->{json}{detail}{error_code}, $code, "$name: $code");
    my $retryable = $r->{json} && $r->{json}{detail}{retryable};
    ok(ref $retryable && ($status == 503 ? $retryable : !$retryable),
        "$name: retryable is " . ($status == 503 ? 'true' : 'false'));
}

# --- preflight, in order, never writing the proposal ------------------------------

my ($repo, $ref) = repo_with_pat("ghp_handoff_token\n");
my $cluster = $w->cluster($repo);

{
    my $r = open_pr('no-such-proposal');
    error_is($r, 404, 'PROPOSAL_NOT_FOUND', 'unknown proposal');
}

for my $status (qw(pr_opened pr_merged rejected)) {
    my $p = $w->proposal($cluster, status => $status);
    my $before = row_of($p);
    # step 2 comes before step 3: even an unbound cluster is a 409 here
    error_is(open_pr($p, json => {}), 409, 'INVALID_STATE_TRANSITION', "status $status");
    is(row_of($p), $before, "status $status: proposal row unchanged");
}

{
    my $p = $w->proposal($w->cluster(undef));
    my $before = row_of($p);
    error_is(open_pr($p), 422, 'CLUSTER_HAS_NO_CONFIG_REPO', 'unbound cluster');
    is(row_of($p), $before, 'unbound cluster: proposal row unchanged');
}

{
    my ($gone) = repo_with_pat("ghp_x\n");
    my $p = $w->proposal($w->cluster($gone));
    # The FK has no ON DELETE action (upstream's schema): bypass it to leave
    # the cluster pointing at a missing row.
    $t->psql("SET session_replication_role = replica; DELETE FROM config_repos WHERE id = '$gone'");
    my $before = row_of($p);
    error_is(open_pr($p), 422, 'CLUSTER_HAS_NO_CONFIG_REPO', 'repo row deleted');
    is(row_of($p), $before, 'repo row deleted: proposal row unchanged');
}

{
    my ($r2) = repo_with_pat("ghp_x\n");
    my $c2 = $w->cluster($r2);
    my $p = $w->proposal($c2);
    $t->psql("UPDATE clusters SET deleted_at = now() WHERE id = '$c2'");
    error_is(open_pr($p), 422, 'CLUSTER_HAS_NO_CONFIG_REPO', 'cluster soft-deleted');
}

# the PAT file: missing, empty, a directory, a symlink out. nginx checks it
# by stat only (docs/security.md), so a file of whitespace passes here: the
# worker reads it and fails the job (t/pipeline_failures.t).
{
    my $outside = "$dir/outside-secret";
    open my $fh, '>', $outside or die;
    print $fh "ghp_outside\n";
    close $fh;
    my %cases = (
        missing => sub { },
        empty => sub { $t->write_secret($_[0], '') },
        directory => sub { mkdir "$dir/secrets/$_[0]" or die },
        escaping_symlink => sub { symlink $outside, "$dir/secrets/$_[0]" or die },
    );
    for my $case (sort keys %cases) {
        my ($r3, $ref3) = repo_with_pat(undef);
        $cases{$case}->($ref3);
        my $p = $w->proposal($w->cluster($r3));
        my $before = row_of($p);
        my $r = open_pr($p);
        error_is($r, 503, 'GITHUB_NOT_CONFIGURED', "PAT file $case");
        unlike($r->{body}, qr/ghp_outside/, "PAT file $case: no file content in the answer");
        is(row_of($p), $before, "PAT file $case: proposal row unchanged");
        is(scalar $w->jobs_of($p), 0, "PAT file $case: no job");
    }
}

# --- the happy handoff and the proposal detail ----------------------------------

{
    my $p = $w->proposal($cluster);
    $w->script($p, 'succeed');
    my $before = row_of($p);
    my $r = open_pr($p);
    is($r->{status}, 202, 'open_pr → 202') or diag($r->{body});
    is_deeply($r->{json}, {proposal_id => $p, status => 'pending',
        message => 'PR creation queued'}, '202 body');
    my ($job) = $w->jobs_of($p);
    ok($job, 'a job row exists when the 202 arrives');
    $w->wait_job($job, 'succeeded');
    my $d = $t->http(GET => "/api/v1/proposals/$p");
    is($d->{json}{status}, 'pr_opened', 'the (test) pipeline opened it');
    is($d->{json}{pr_job}{state}, 'succeeded', 'pr_job.state in the detail');
    is($d->{json}{pr_job}{attempts}, 1, 'pr_job.attempts');
    like($d->{json}{pr_job}{created_at} // '', qr/^\d{4}-\d\d-\d\dT[\d:]{8}\.\d{6}\+00:00$/,
        'pr_job.created_at is RFC 3339');
    isnt(row_of($p), $before, 'the pipeline, not the endpoint, changed the row');
    error_is(open_pr($p), 409, 'INVALID_STATE_TRANSITION', 'open_pr after the PR opened');
}

# --- twenty concurrent POSTs: one job, one pipeline run ---------------------------

{
    my $p = $w->proposal($cluster);
    $w->script($p, 'sleep 1500');
    my @res = $t->parallel(20, sub {
        my $r = open_pr($p, json => {});
        return $r->{status};
    });
    is_deeply(\@res, [(202) x 20], 'twenty concurrent POSTs: all 202');
    my @jobs = $w->jobs_of($p);
    is(scalar @jobs, 1, 'exactly one job row');
    $w->wait_job($jobs[0], 'succeeded');
    is(scalar $w->runs_of($p), 1, 'the pipeline ran once');
}

# --- a failed job, then a new POST: a new job runs --------------------------------

{
    my $p = $w->proposal($cluster);
    $w->script($p, 'fail PUSH_FAILED remote rejected the branch');
    is(open_pr($p)->{status}, 202, 'first open_pr → 202');
    my ($first) = $w->jobs_of($p);
    $w->wait_job($first, 'failed');
    my $d = $t->http(GET => "/api/v1/proposals/$p");
    is($d->{json}{status}, 'pending', 'still pending after the failure');
    like($d->{json}{pr_open_error} // '', qr/^PUSH_FAILED: /, 'pr_open_error written');
    is($d->{json}{pr_job}{state}, 'failed', 'pr_job shows the failure');

    $w->script($p, 'succeed');
    is(open_pr($p)->{status}, 202, 'second open_pr → 202');
    my @jobs = $w->jobs_of($p);
    is(scalar @jobs, 2, 'a second job (no silent dedup with the failed one)');
    $w->wait_job($jobs[1], 'succeeded');
    is(scalar $w->runs_of($p), 2, 'the pipeline ran again');
    $d = $t->http(GET => "/api/v1/proposals/$p");
    is($d->{json}{status}, 'pr_opened', 'opened by the second job');
    is($d->{json}{pr_open_error}, undef, 'pr_open_error cleared');
}

# --- health pings the worker ------------------------------------------------------

{
    my $r = $t->http(GET => '/api/v1/health');
    is($r->{status}, 200, 'health 200 with the worker up');
    is_deeply($r->{json}, {status => 'ok', database => 'ok', worker => 'ok'}, 'health body');
}

# --- the worker stopped, then mute ----------------------------------------------------

{
    my $p = $w->proposal($cluster);
    $w->stop('w1');
    my $before = row_of($p);
    error_is(open_pr($p), 503, 'QUEUE_UNAVAILABLE', 'worker stopped');
    is(row_of($p), $before, 'worker stopped: proposal row unchanged');
    my $h = $t->http(GET => '/api/v1/health');
    is($h->{status}, 503, 'health 503 with the worker stopped');
    is($h->{json}{worker}, 'unavailable', 'health names the worker');
    is($h->{json}{database}, 'ok', 'and not the database');

    # something accepts on the socket and never answers
    my $mute = IO::Socket::UNIX->new(Local => $w->socket_of('w1'), Type => SOCK_STREAM,
        Listen => 16) or die "listen: $!";
    my $timeouts = () = $t->nginx_error_log =~ /did not answer within relyloop_worker_timeout/g;
    my $r = open_pr($p);
    error_is($r, 503, 'QUEUE_UNAVAILABLE', 'worker accepting but never answering');
    # the order of events: the module connected (the mute socket has it
    # queued), then its relyloop_worker_timeout timer fired (its log line)
    ok(IO::Select->new($mute)->can_read(0), 'the module connected to the mute worker');
    my $after = () = $t->nginx_error_log =~ /did not answer within relyloop_worker_timeout/g;
    is($after - $timeouts, 1, 'and gave up when relyloop_worker_timeout (1s) expired, as its log says');
    is(row_of($p), $before, 'mute worker: proposal row unchanged');
    is(scalar $w->jobs_of($p), 0, 'mute worker: no job');
    close $mute;
    unlink $w->socket_of('w1');

    # back up: the same proposal goes through
    $w->start('w1', args => ['--threads', 2]);
    $w->script($p, 'succeed');
    is(open_pr($p)->{status}, 202, 'worker back: 202 without restarting nginx');
}

unlike($t->nginx_error_log, qr/ghp_handoff_token/, 'the PAT never reaches the nginx log');
$t->done;
