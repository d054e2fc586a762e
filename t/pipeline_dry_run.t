#!/usr/bin/perl
# The worker's --dry-run (docs/worker.md, "Dry run"): the pipeline runs
# through the local commit, pushes nothing, opens no PR, leaves the proposal
# pending with pr_job.last_event dry_run_complete, and records the PR it would
# have opened — which is then exactly what a real run of the same proposal
# sends to GitHub.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;

use RelyLoop::Fixtures qw(api);
use RelyLoop::PipelineStack;
use RelyLoop::Test qw(json_decode);

$SIG{ALRM} = sub { fail('hard timeout'); done_testing(); exit 1 };
alarm 240;

my $s = RelyLoop::PipelineStack->new(worker_args => ['--dry-run']);
my $t = $s->t;
my $git = $s->git;
my $gh = $s->gh;
my $REPO = 'acme/search-config';

my $repo = $s->repo($REPO, files => {'clusters/prod/bm25.params.json' => RelyLoop::PipelineStack::params_text()});
my $cluster = $s->cluster($repo, 'clusters/prod');
my $tmpl = $s->template(name => 'bm25');
my $seed = $s->seed($cluster, $tmpl);
my ($pid, $sid) = @{$seed}{qw(proposal_id study_id)};
my $branch = "relyloop/study-$sid";
my $refs_before = $git->git($REPO, 'for-each-ref');

# --- the dry run -------------------------------------------------------------------

my $row = $s->open_and_wait($pid);
is($row->{status}, 'pending', 'dry run: the proposal stays pending');
is($row->{pr_url}, undef, '... without a pr_url');
is($row->{pr_open_error}, undef, '... or an error');
my $detail = api($t, GET => "/api/v1/proposals/$pid")->{json};
is($detail->{pr_job}{state}, 'succeeded', 'pr_job: succeeded');
is($detail->{pr_job}{last_event}, 'dry_run_complete', 'pr_job.last_event: dry_run_complete');
is($git->git($REPO, 'for-each-ref'), $refs_before, "the bare repository's refs are unchanged");
is_deeply([map { "$_->{method} $_->{path}" } $gh->requests], [], 'the fake GitHub received nothing');

my $file = $t->dir . "/clones/dry-run/$pid.json";
my $rec = eval { JSON::PP->new->utf8->decode($t->slurp($file)) } || {};
is(sprintf('%o', (stat $file)[2] & 07777), '600', 'the record is mode 0600');
is($rec->{proposal_id}, $pid, 'record: proposal_id');
is($rec->{branch}, $branch, 'record: branch');
is($rec->{base}, 'main', 'record: base');
is($rec->{repository}, $REPO, 'record: repository');
is($rec->{create_pull_url}, $gh->api_url . "/repos/$REPO/pulls", 'record: where it would POST');
is($rec->{create_pull}{head}, $branch, 'record: the PR head');
like($rec->{create_pull}{body} // '', qr/## RelyLoop relevance proposal/, 'record: the PR body');

# the local commit, in the worker's clone
my $clone_git = "git --git-dir=$rec->{clone}/.git";
my $msg = qx{$clone_git log -1 --format=%B $branch 2>&1};
like($msg, qr/Relyloop-Proposal: \Q$pid\E/, 'the commit exists on the local branch of the clone');
is(qx{$clone_git rev-parse $branch}, "$rec->{commit}\n", 'record: commit is its tip');

my ($ev) = $s->events('pr_dry_run', $pid);
ok($ev, 'a pr_dry_run event');
my $ev_body = $ev->{body} // '';
utf8::decode($ev_body);
is($ev_body, $rec->{create_pull}{body}, '... carrying the same body');
is($ev->{file}, $file, '... naming the record');

# --- the same proposal, for real ---------------------------------------------------

$s->{worker_args} = [];
$s->restart_worker;
$row = $s->open_and_wait($pid);
is($row->{status}, 'pr_opened', 'real run: pr_opened');
my @posts = $gh->requests(route => 'create_pull', method => 'POST');
is(scalar @posts, 1, 'one PR creation');
is_deeply($posts[0]{json}, $rec->{create_pull}, 'what GitHub received is what the dry run recorded');
ok($git->git_ok($REPO, 'rev-parse', '--verify', $branch), 'the branch is pushed now');

$s->done;
