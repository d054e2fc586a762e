#!/usr/bin/perl
# Partial failures the pipeline recovers from by itself (docs/worker.md, Pipeline steps 5, 12;
# §7 leases): an operator rejecting while the PR is being opened, a worker
# killed between push and PR creation (with and without the PR having been
# created), a corrupt or re-pointed clone cache, leftovers in the clone.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Path qw(remove_tree);
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep);

use RelyLoop::PipelineStack;
use RelyLoop::Test qw(json_decode);
use RelyLoop::Fixtures qw(api sql_quote);

my $s = RelyLoop::PipelineStack->new(worker_args => ['--lease-ttl', 3], stall => 1);
my $t = $s->t;
my $git = $s->git;
my $gh = $s->gh;
my $REPO = 'acme/recovery';
my $params = RelyLoop::PipelineStack::params_text();
my $repo = $s->repo($REPO, files => {'clusters/prod/bm25.params.json' => $params});
my $cluster = $s->cluster($repo, 'clusters/prod');
my $tmpl = $s->template(name => 'bm25');
my $clone = $t->dir . "/clones/$repo->{id}";

sub wait_step {
    my ($id, $step) = @_;
    return RelyLoop::Test::wait_for(sub { (($s->job($id) // {})->{last_event} // '') eq $step }, 30);
}

# The worker records the step opening_pr just before it sends the request:
# a test that kills it "while the PR is being opened" waits until the fake
# GitHub has received that request (it records it on arrival, before any
# scripted delay).
sub wait_create_sent {
    my ($p) = @_;
    my $b = "relyloop/study-$p->{study_id}";
    return RelyLoop::Test::wait_for(sub {
        scalar grep { (($_->{json} // {})->{head} // '') =~ /(?:^|:)\Q$b\E$/ }
            $gh->requests(route => 'create_pull', method => 'POST');
    }, 30);
}

sub prs_for {
    my ($p) = @_;
    return grep { $_->{head}{ref} eq "relyloop/study-$p->{study_id}" } $gh->pulls;
}

# --- the operator rejects while the PR is being opened ------------------------------------
{
    my $p = $s->study($cluster, $tmpl);
    $gh->script(create_pull => {delay => 3, passthrough => JSON::PP::true});
    is($s->open_pr($p->{proposal_id})->{status}, 202, 'queued');
    ok(wait_step($p->{proposal_id}, 'opening_pr'), 'pushed, opening the PR');
    my $res = api($t, POST => "/api/v1/proposals/$p->{proposal_id}/reject",
        json => {reason => 'not this week'});
    is($res->{status}, 200, 'operator rejects meanwhile');
    my $row = $s->wait_done($p->{proposal_id});
    is($row->{status}, 'rejected', 'stays rejected');
    is($row->{pr_url}, undef, 'no pr_url written');
    is($row->{pr_state}, undef, 'no pr_state written');
    my @ev = grep { defined $_->{pr_url} } $s->events('pr_open_proposal_no_longer_pending', $p->{proposal_id});
    is(scalar @ev, 1, 'pr_open_proposal_no_longer_pending logged with the PR to close');
    my @prs = prs_for($p);
    is(scalar @prs, 1, 'the PR stays open for the operator to close');
    is($ev[0]{pr_url}, $prs[0]{html_url}, 'the event names it');
    ok(!$s->events('pr_open_complete', $p->{proposal_id}), 'no pr_open_complete');
}

# --- killed after the push; GitHub did create the PR ------------------------------------------
{
    my $p = $s->study($cluster, $tmpl);
    my $b = "relyloop/study-$p->{study_id}";
    $gh->script(create_pull => {delay => 4, passthrough => JSON::PP::true});
    is($s->open_pr($p->{proposal_id})->{status}, 202, 'queued');
    ok(wait_step($p->{proposal_id}, 'opening_pr'), 'pushed, opening the PR');
    ok(wait_create_sent($p), 'the create request reached GitHub');
    $t->stop_worker('worker', 'KILL');
    is($git->git($REPO, 'rev-list', '--count', "main..$b"), "2\n", 'the branch is on the remote');
    # the fake finishes the dead connection's request: the PR comes to exist
    ok(RelyLoop::Test::wait_for(sub { scalar(prs_for($p)) == 1 }, 60), 'GitHub has the PR');
    $s->start_worker;
    my $row = $s->wait_done($p->{proposal_id}, 60);
    is($row->{status}, 'pr_opened', 'the restarted worker finished the job');
    my @prs = prs_for($p);
    is(scalar @prs, 1, 'still one PR');
    is($row->{pr_url}, $prs[0]{html_url}, 'adopted');
    is($git->git($REPO, 'rev-list', '--count', "main..$b"), "2\n", 'no new commit');
    is(scalar(grep { /\Q$p->{study_id}\E|\Q$p->{proposal_id}\E/ } $git->branches($REPO)), 1,
        'no second branch');
    ok(scalar $s->events('pr_open_resume', $p->{proposal_id}), 'resumed');
    ok(scalar $s->events('pr_open_adopted', $p->{proposal_id}), 'adopted');
}

# --- killed after the push; the PR was never created --------------------------------------------
{
    my $p = $s->study($cluster, $tmpl);
    my $b = "relyloop/study-$p->{study_id}";
    $gh->script(create_pull => {delay => 4, status => 502, body => {message => 'never mind'}});
    is($s->open_pr($p->{proposal_id})->{status}, 202, 'queued');
    ok(wait_step($p->{proposal_id}, 'opening_pr'), 'pushed, opening the PR');
    ok(wait_create_sent($p), 'the create request reached GitHub');
    $t->stop_worker('worker', 'KILL');
    $s->start_worker;
    my $row = $s->wait_done($p->{proposal_id}, 60);
    is($row->{status}, 'pr_opened', 'finished after the restart');
    is(scalar(prs_for($p)), 1, 'PR created once');
    is($git->git($REPO, 'rev-list', '--count', "main..$b"), "2\n", 'on the existing branch');
    my @creates = grep { ($_->{json}{head} // '') eq $b } $gh->requests(route => 'create_pull');
    is($creates[-1]{status}, 201, 'the last create succeeded');
}

# --- leftovers in the cached clone are cleaned ---------------------------------------------------
{
    open my $fh, '>', "$clone/clusters/prod/bm25.params.json" or die;
    print $fh "{\"title.boost\": 42}\n";
    close $fh;
    open $fh, '>', "$clone/stray.json" or die;
    print $fh "{}\n";
    close $fh;
    my $p = $s->study($cluster, $tmpl);
    my $row = $s->open_and_wait($p->{proposal_id});
    is($row->{status}, 'pr_opened', 'opened despite local edits');
    my @changed = grep { /^[-+](?![-+])/ } split /\n/,
        $git->git($REPO, 'diff', '-U0', 'main', "relyloop/study-$p->{study_id}~1");
    is_deeply(\@changed, ['-  "title.boost": 1.0,', '+  "title.boost": 2.5,'],
        'the local edit did not leak into the commit');
    ok(!-e "$clone/stray.json", 'untracked file removed');
    is($t->slurp("$clone/clusters/prod/bm25.params.json"), $params, 'tracked file restored');
}

# --- a corrupt clone is wiped and cloned again ------------------------------------------------------
{
    remove_tree("$clone/.git/objects");
    unlink "$clone/.git/HEAD";
    my $p = $s->study($cluster, $tmpl);
    my $row = $s->open_and_wait($p->{proposal_id});
    is($row->{status}, 'pr_opened', 'opened with a corrupt cache');
    ok(scalar $s->events('pr_open_clone_reset', $p->{proposal_id}), 'pr_open_clone_reset logged');
    ok(-e "$clone/.git/HEAD", 'fresh clone in place');
    ok(!glob($t->dir . '/clones/.tmp-*'), 'no temporary clone left');
}

# --- the repo moved: a cached clone of the old URL is replaced -----------------------------------------
{
    my $moved = 'acme/recovery-moved';
    $git->create_repo($moved, files => {'clusters/prod/bm25.params.json' => $params});
    $t->psql('UPDATE config_repos SET repo_url = ' . sql_quote($git->repo_url($moved))
        . ' WHERE id = ' . sql_quote($repo->{id}));
    my $p = $s->study($cluster, $tmpl);
    my $row = $s->open_and_wait($p->{proposal_id});
    is($row->{status}, 'pr_opened', 'opened on the moved repo');
    my ($reset) = $s->events('pr_open_clone_reset', $p->{proposal_id});
    like($reset->{message} // '', qr/origin URL/, 'reclone because the origin URL changed');
    ok(grep({ /\Q$p->{study_id}\E/ } $git->branches($moved)), 'branch on the new repo');
    like($t->slurp("$clone/.git/config"), qr/recovery-moved\.git/, 'cache points at the new URL');
}

# --- a git server that accepts and then goes silent: the job timeout still works --------------
{
    $s->restart_worker(job_timeout => 3);
    my $stalled = $s->repo('stall/hung', no_bare => 1);
    my $c = $s->cluster($stalled, 'clusters/prod');
    my $p = $s->study($c, $tmpl);
    my $row = $s->open_and_wait($p->{proposal_id}, 60);
    like($row->{pr_open_error} // '', qr/^JOB_TIMEOUT: /, 'silent git server: JOB_TIMEOUT');
    # the worker's events: the watchdog's job_timeout, then the failure, and
    # nothing after the clone began but those (the hung fetch was abandoned)
    my @seq = grep { /^(job_timeout|pr_open_failed|pr_open_complete)$/ }
        map { my $e = json_decode($_); $e && ($e->{proposal_id} // '') eq $p->{proposal_id} ? $e->{event} : () }
        grep { /^\{/ } split /\n/, $t->worker_log('worker');
    is_deeply(\@seq, ['job_timeout', 'pr_open_failed'],
        'abandoned on the job timeout (job_timeout, then pr_open_failed)');
    ok(!glob($t->dir . '/clones/.tmp-*'), 'the half-made clone was removed');
    my $ok = $s->study($cluster, $tmpl);
    is($s->open_and_wait($ok->{proposal_id})->{status}, 'pr_opened',
        'the worker is healthy afterwards');
}

$s->done;
