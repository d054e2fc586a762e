#!/usr/bin/perl
# Several PR jobs at once (docs/worker.md, Jobs and Pipeline steps): two proposals on one config repo run
# one after the other, each branch based on pr_base_branch; proposals on
# different repos run in parallel on the worker's threads, each in its own
# clone, with a configured non-main base branch.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;

use RelyLoop::PipelineStack;

my $s = RelyLoop::PipelineStack->new(worker_args => ['--threads', 4]);
my $t = $s->t;
my $git = $s->git;
my $gh = $s->gh;
my $params = RelyLoop::PipelineStack::params_text();
my $tmpl = $s->template(name => 'bm25');

# --- two proposals, one repo ---------------------------------------------------------------
{
    my $REPO = 'acme/shared';
    my $repo = $s->repo($REPO, pr_base_branch => 'live',
        files => {'clusters/prod/bm25.params.json' => $params});
    my $cluster = $s->cluster($repo, 'clusters/prod');
    my $a = $s->study($cluster, $tmpl, config_diff => {'title.boost' => {from => 1.0, to => 2.5}});
    my $b = $s->study($cluster, $tmpl, config_diff => {tie_breaker => {from => 0.3, to => 0.7}});
    $gh->script(create_pull => {delay => 1.5, passthrough => JSON::PP::true},
        {delay => 1.5, passthrough => JSON::PP::true});
    is($s->open_pr($a->{proposal_id})->{status}, 202, 'first queued');
    is($s->open_pr($b->{proposal_id})->{status}, 202, 'second queued at once');
    my $ra = $s->wait_done($a->{proposal_id});
    my $rb = $s->wait_done($b->{proposal_id});
    is($ra->{status}, 'pr_opened', 'first opened');
    is($rb->{status}, 'pr_opened', 'second opened');
    my $base = $git->git($REPO, 'rev-parse', 'live');
    for my $p ($a, $b) {
        my $br = "relyloop/study-$p->{study_id}";
        is($git->git($REPO, 'merge-base', 'live', $br), $base, "$br based on pr_base_branch");
        is($git->git($REPO, 'rev-list', '--count', "live..$br"), "2\n", "$br: its own two commits");
    }
    my @changed = grep { /^[-+](?![-+])/ } split /\n/,
        $git->git($REPO, 'diff', '-U0', 'live', "relyloop/study-$b->{study_id}~1");
    is_deeply(\@changed, ['-  "tie_breaker": 0.3,', '+  "tie_breaker": 0.7,'],
        'the second branch carries only its own change');
    my @bases = map { $_->{json}{base} } $gh->requests(route => 'create_pull');
    is_deeply(\@bases, ['live', 'live'], 'both PRs against pr_base_branch');
    my @complete = map { $s->events('pr_open_complete', $_->{proposal_id}) } $a, $b;
    is(scalar @complete, 2, 'both complete');
    ok(scalar($s->events('pr_open_lock_contention')) >= 1, 'the second waited for the repo lock');
}

# --- four repos in parallel -------------------------------------------------------------------
{
    my @jobs;
    for my $i (1 .. 4) {
        my $name = "acme/parallel-$i";
        my $repo = $s->repo($name, files => {'cfg/bm25.params.json' => $params}, bulk_files => 200);
        my $cluster = $s->cluster($repo, 'cfg');
        push @jobs, {repo => $repo, name => $name, p => $s->study($cluster, $tmpl)};
    }
    $gh->script(create_pull => map { {delay => 2, passthrough => JSON::PP::true} } 1 .. 4);
    is($s->open_pr($_->{p}{proposal_id})->{status}, 202, "queued $_->{name}") for @jobs;
    my @rows = map { $s->wait_done($_->{p}{proposal_id}) } @jobs;
    is(scalar(grep { $_->{status} eq 'pr_opened' } @rows), 4, 'all four opened');
    # How many ran at once, from the jobs' own run windows.
    my @win = $t->psql('SELECT extract(epoch FROM started_at), extract(epoch FROM finished_at) '
        . 'FROM pr_jobs WHERE proposal_id IN ('
        . join(',', map { "'$_->{p}{proposal_id}'" } @jobs) . ')');
    my $most = 0;
    for my $w (@win) {
        my $n = grep { $_->[0] <= $w->[0] && $w->[0] < $_->[1] } @win;
        $most = $n if $n > $most;
    }
    cmp_ok($most, '>=', 3, "different repos ran in parallel ($most at once)");
    for my $j (@jobs) {
        ok(-d $t->dir . "/clones/$j->{repo}{id}/.git", "$j->{name}: its own clone");
        is($git->git($j->{name}, 'rev-list', '--count', "main..relyloop/study-$j->{p}{study_id}"),
            "2\n", "$j->{name}: two commits");
    }
}

$s->done;
