#!/usr/bin/perl
# Every pr_open_error code of docs/runbook.md, produced on purpose through the real
# path (open_pr → worker → git server / fake GitHub): the proposal stays
# pending with "<CODE>: <message>", nothing leaks the PAT; then the cause is
# fixed, open_pr again succeeds and clears the error.
#
# Conditions the API's preflight would refuse (no config repo, no PAT) are
# created while the job waits for the repo lock held by a "blocker" job whose
# PR creation the fake GitHub slows down.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep);

use RelyLoop::PipelineStack;
use RelyLoop::Fixtures qw(api sql_quote sql_json);

my $s = RelyLoop::PipelineStack->new;
my $t = $s->t;
my $git = $s->git;
my $gh = $s->gh;
my $pat = $s->pat;
my $REPO = 'acme/failures';
my $params = RelyLoop::PipelineStack::params_text();

my $repo = $s->repo($REPO, files => {
    'clusters/prod/bm25.params.json' => $params,
    'clusters/other/README.md' => "no params here\n",
    'clusters/broken/bm25.params.json' => "title.boost = 1.0\n",
    'clusters/array/bm25.params.json' => "[{\"title.boost\": 1.0}]\n",
    'clusters/dir/bm25.params.json/README' => "a directory named like the file\n",
    'clusters/linked/README.md' => "the params file is a symlink\n",
}, symlinks => {
    'escape' => '/tmp',
    'clusters/linked/bm25.params.json' => '../prod/bm25.params.json',
});
my $cluster = $s->cluster($repo, 'clusters/prod');
my $blocker_cluster = $s->cluster($repo, 'clusters/prod');
my $tmpl = $s->template(name => 'bm25');

my $n = 0;
sub fresh {    # a fresh study-backed proposal on $cluster (title.boost 1.0 → 2.5)
    my (%o) = @_;
    return $s->study($o{cluster} // $cluster, $tmpl, %o);
}

sub cluster_set {
    my ($c, $col, $val) = @_;
    $t->psql("UPDATE clusters SET $col = " . (defined $val ? sql_quote($val) : 'NULL')
        . ' WHERE id = ' . sql_quote($c->{id}));
}

sub fails_with {
    my ($id, $code, $re, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $row = $s->open_and_wait($id);
    is($row->{status}, 'pending', "$name: proposal stays pending");
    like($row->{pr_open_error} // '', qr/^\Q$code\E: /, "$name: pr_open_error is $code")
        or diag(explain $row);
    like($row->{pr_open_error} // '', $re, "$name: message") if $re;
    is($row->{pr_url}, undef, "$name: no pr_url");
    unlike($row->{pr_open_error} // '', qr/\Q$pat\E/, "$name: no PAT in the error");
    my @failed = $s->events('pr_open_failed', $id);
    ok(@failed && $failed[-1]{error_code} eq $code, "$name: pr_open_failed event with error_code")
        or diag(explain \@failed);
    return $row;
}

sub succeeds {
    my ($id, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $row = $s->open_and_wait($id);
    is($row->{status}, 'pr_opened', "$name: fixed, open_pr succeeds");
    is($row->{pr_open_error}, undef, "$name: pr_open_error cleared");
    ok(defined $row->{pr_url}, "$name: pr_url set");
    return $row;
}

# Hold the repo lock with a blocker job whose PR creation takes $delay s, start
# the victim's job, run $change while it waits for the lock, then wait for it.
sub while_waiting_for_lock {
    my ($victim, $change, %o) = @_;
    my $blocker = $s->manual($blocker_cluster, $tmpl,
        {tie_breaker => {to => 0.5 + (++$n) / 100}});
    $gh->script(create_pull => {delay => $o{delay} // 5, passthrough => JSON::PP::true});
    is($s->open_pr($blocker)->{status}, 202, 'blocker queued');
    ok(RelyLoop::Test::wait_for(sub { ($s->job($blocker) // {})->{last_event} eq 'opening_pr' }, 30),
        'blocker holds the repo lock');
    is($s->open_pr($victim)->{status}, 202, 'victim queued');
    ok(RelyLoop::Test::wait_for(sub {
        $t->psql('SELECT lock_waits FROM pr_jobs WHERE proposal_id = ' . sql_quote($victim)
            . " AND state = 'queued'") // 0 } , 30), 'victim waits for the lock');
    $change->();
    my $row = $s->wait_done($victim, 60);
    is($s->wait_done($blocker, 60)->{status}, 'pr_opened', 'blocker done');
    return $row;
}

# --- UNSUPPORTED_PROVIDER: the worker re-checks the repo URL ---------------------
{
    my $p = fresh();
    my $url = $repo->{repo_url};
    $t->psql("UPDATE config_repos SET repo_url = 'https://gitlab.com/acme/failures' WHERE id = "
        . sql_quote($repo->{id}));
    fails_with($p->{proposal_id}, 'UNSUPPORTED_PROVIDER', qr/GitLab and Bitbucket are not supported/,
        'gitlab URL');
    $t->psql('UPDATE config_repos SET repo_url = ' . sql_quote($url) . ' WHERE id = '
        . sql_quote($repo->{id}));
    succeeds($p->{proposal_id}, 'UNSUPPORTED_PROVIDER');
}

# --- CLONE_FAILED: the server refuses the PAT; a missing base branch -------------
{
    my $p = fresh();
    my $wrong = 'github_pat_11WRONGTOKEN_' . ('x' x 50);
    $t->write_secret($s->auth_ref, "$wrong\n");
    my $row = fails_with($p->{proposal_id}, 'CLONE_FAILED', qr/authentication failed/i, 'wrong PAT');
    unlike($row->{pr_open_error}, qr/\Q$wrong\E/, 'the wrong PAT is not echoed either');
    ok(-d $t->dir . "/clones/$repo->{id}/.git", 'an auth failure keeps the cached clone');
    ok(!glob($t->dir . '/clones/.tmp-*'), 'no temporary clone left behind');
    $t->write_secret($s->auth_ref, "$pat\n");    # rotation: no worker restart needed
    succeeds($p->{proposal_id}, 'CLONE_FAILED (PAT)');

    my $p2 = fresh();
    $t->psql("UPDATE config_repos SET pr_base_branch = 'release' WHERE id = " . sql_quote($repo->{id}));
    fails_with($p2->{proposal_id}, 'CLONE_FAILED', qr/'release' does not exist on the remote/,
        'missing base branch');
    $t->psql("UPDATE config_repos SET pr_base_branch = 'main' WHERE id = " . sql_quote($repo->{id}));
    succeeds($p2->{proposal_id}, 'CLONE_FAILED (base)');
}

# --- BRANCH_EXISTS: somebody else's branch of that name ---------------------------
{
    my $p = fresh();
    my $b = "relyloop/study-$p->{study_id}";
    $git->commit($REPO, branch => 'main', message => "unrelated work\n\nRelyloop-Proposal: someone-else");
    $git->git($REPO, 'branch', $b, 'main');
    fails_with($p->{proposal_id}, 'BRANCH_EXISTS', qr/\Q$b\E/, 'foreign branch');
    is($git->git($REPO, 'log', '-1', '--format=%s', $b), "unrelated work\n", 'never force-pushed');
    $git->git($REPO, 'branch', '-D', $b);
    succeeds($p->{proposal_id}, 'BRANCH_EXISTS');
}

# --- CONFIG_PATH_INVALID -----------------------------------------------------------
{
    my $p = fresh();
    cluster_set($cluster, 'config_path', 'escape');
    fails_with($p->{proposal_id}, 'CONFIG_PATH_INVALID', qr/outside the repository/,
        'directory symlink escaping the clone');
    cluster_set($cluster, 'config_path', 'clusters/linked');
    fails_with($p->{proposal_id}, 'CONFIG_PATH_INVALID', qr/symlink/, 'params file is a symlink');
    cluster_set($cluster, 'config_path', '../../etc');
    fails_with($p->{proposal_id}, 'CONFIG_PATH_INVALID', qr/not a safe relative path/, '.. in config_path');
    cluster_set($cluster, 'config_path', undef);
    # the API refuses a cluster without config_path? then the job never starts; the
    # worker's own check is what this exercises when it does
    my $res = $s->open_pr($p->{proposal_id});
    if ($res->{status} == 202) {
        my $row = $s->wait_done($p->{proposal_id});
        like($row->{pr_open_error}, qr/^CONFIG_PATH_INVALID: .*no config_path/, 'no config_path');
    } else {
        pass("no config_path refused by the API ($res->{status})");
    }
    cluster_set($cluster, 'config_path', 'clusters/prod');
    succeeds($p->{proposal_id}, 'CONFIG_PATH_INVALID');
}

# --- PARAMS_FILE_NOT_FOUND -----------------------------------------------------------
{
    my $p = fresh();
    for my $case (['clusters/other', qr/no such file/, 'missing file'],
                  ['clusters/nowhere', qr/no such file/, 'missing directory'],
                  ['clusters/broken', qr/not valid JSON/, 'not JSON'],
                  ['clusters/array', qr/holds a JSON array, not an object/, 'top-level array'],
                  ['clusters/dir', qr/not a regular file/, 'a directory']) {
        cluster_set($cluster, 'config_path', $case->[0]);
        fails_with($p->{proposal_id}, 'PARAMS_FILE_NOT_FOUND', $case->[1], $case->[2]);
    }
    cluster_set($cluster, 'config_path', 'clusters/prod');
    succeeds($p->{proposal_id}, 'PARAMS_FILE_NOT_FOUND');
}

# --- PARAM_NOT_IN_TEMPLATE and NO_CHANGES ------------------------------------------------
{
    my $p = fresh(config_diff => {'title.boost' => {from => 1.0, to => 2.5},
        'not_declared' => {to => 1}});
    fails_with($p->{proposal_id}, 'PARAM_NOT_IN_TEMPLATE', qr/"not_declared" is not declared/,
        'undeclared param');
    $t->psql('UPDATE proposals SET config_diff = ' . sql_json({operator => {to => 'XOR'}})
        . ' WHERE id = ' . sql_quote($p->{proposal_id}));
    fails_with($p->{proposal_id}, 'PARAM_NOT_IN_TEMPLATE', qr/not one of the declared values/,
        'categorical value not allowed');
    $t->psql('UPDATE proposals SET config_diff = ' . sql_json({'title.boost' => {to => 'high'}})
        . ' WHERE id = ' . sql_quote($p->{proposal_id}));
    fails_with($p->{proposal_id}, 'PARAM_NOT_IN_TEMPLATE', qr/declared float/, 'wrong type');
    $t->psql('UPDATE proposals SET config_diff = ' . sql_json({'title.boost' => {to => 11}})
        . ' WHERE id = ' . sql_quote($p->{proposal_id}));
    fails_with($p->{proposal_id}, 'PARAM_NOT_IN_TEMPLATE', qr/above the declared max/, 'above max');

    $t->psql('UPDATE proposals SET config_diff = ' . sql_json({'title.boost' => {from => 1, to => 1.0},
        operator => {to => 'OR'}}) . ' WHERE id = ' . sql_quote($p->{proposal_id}));
    fails_with($p->{proposal_id}, 'NO_CHANGES', qr/already holds every value/, 'nothing to change');
    my @branches = grep { /\Q$p->{study_id}\E/ } $git->branches($REPO);
    is(scalar @branches, 0, 'NO_CHANGES: no branch');

    $t->psql('UPDATE proposals SET config_diff = ' . sql_json({'title.boost' => {from => 1.0, to => 3.5}})
        . ' WHERE id = ' . sql_quote($p->{proposal_id}));
    succeeds($p->{proposal_id}, 'PARAM_NOT_IN_TEMPLATE / NO_CHANGES');
}

# --- PUSH_FAILED: the server declines the push ----------------------------------------
{
    my $p = fresh();
    my $hook = $git->bare($REPO) . '/hooks/pre-receive';
    open my $fh, '>', $hook or die;
    print $fh "#!/bin/sh\necho 'pushes are frozen' >&2\nexit 1\n";
    close $fh;
    chmod 0755, $hook;
    fails_with($p->{proposal_id}, 'PUSH_FAILED', qr/declined|rejected/, 'pre-receive hook declines');
    unlink $hook;
    succeeds($p->{proposal_id}, 'PUSH_FAILED');
}

# --- GITHUB_API_FAILED, then resume on the pushed branch ---------------------------------
{
    my $p = fresh();
    my $b = "relyloop/study-$p->{study_id}";
    $gh->script(create_pull => {status => 404,
        body => {message => 'Not Found', documentation_url => 'https://docs.github.com/rest'}});
    fails_with($p->{proposal_id}, 'GITHUB_API_FAILED', qr/^GITHUB_API_FAILED: 404: Not Found$/, '404');
    is($git->git($REPO, 'rev-list', '--count', "main..$b"), "2\n", 'the branch was pushed');
    $gh->script(create_pull => {status => 422, body => {message => 'Validation Failed',
        errors => [{resource => 'PullRequest', field => 'base', code => 'invalid'}]}});
    fails_with($p->{proposal_id}, 'GITHUB_API_FAILED', qr/422: Validation Failed: invalid \(base\)/,
        '422 validation');
    succeeds($p->{proposal_id}, 'GITHUB_API_FAILED');
    is($git->git($REPO, 'rev-list', '--count', "main..$b"), "2\n",
        'resumed on the existing branch: no new commit');
    ok(scalar $s->events('pr_open_resume', $p->{proposal_id}), 'pr_open_resume logged');

    my $p2 = fresh();
    $gh->script(create_pull => {status => 201, raw => 'this is not json'});
    fails_with($p2->{proposal_id}, 'GITHUB_API_FAILED', qr/malformed/, 'malformed 2xx');
    $gh->script(create_pull => {status => 201, body => {id => 1, state => 'open'}});
    fails_with($p2->{proposal_id}, 'GITHUB_API_FAILED', qr/malformed/, '2xx without number/html_url');
    succeeds($p2->{proposal_id}, 'GITHUB_API_FAILED (malformed)');
}

# --- CLUSTER_HAS_NO_CONFIG_REPO, GITHUB_NOT_CONFIGURED, INTERNAL_ERROR: changed while queued --
{
    my $p = fresh();
    my $row = while_waiting_for_lock($p->{proposal_id}, sub { cluster_set($cluster, 'config_repo_id', undef) });
    is($row->{status}, 'pending', 'detached repo: pending');
    like($row->{pr_open_error}, qr/^CLUSTER_HAS_NO_CONFIG_REPO: /, 'detached repo: CLUSTER_HAS_NO_CONFIG_REPO');
    cluster_set($cluster, 'config_repo_id', $repo->{id});
    succeeds($p->{proposal_id}, 'CLUSTER_HAS_NO_CONFIG_REPO');

    my $p2 = fresh();
    $row = while_waiting_for_lock($p2->{proposal_id}, sub { $t->write_secret($s->auth_ref, "  \n") });
    is($row->{status}, 'pending', 'emptied PAT: pending');
    like($row->{pr_open_error}, qr/^GITHUB_NOT_CONFIGURED: .*acme-pat/, 'emptied PAT: GITHUB_NOT_CONFIGURED');
    $t->write_secret($s->auth_ref, "$pat\n");
    succeeds($p2->{proposal_id}, 'GITHUB_NOT_CONFIGURED');

    # Rebound to another repo while queued: the runner re-resolves the repo
    # and locks that one; the pipeline checks the lock it runs under matches.
    my $other = $s->repo('acme/other', files => {'clusters/prod/bm25.params.json' => $params});
    my $p3 = fresh();
    $row = while_waiting_for_lock($p3->{proposal_id},
        sub { cluster_set($cluster, 'config_repo_id', $other->{id}) });
    is($row->{status}, 'pr_opened', 'rebound while queued: opened');
    ok(grep({ /\Q$p3->{study_id}\E/ } $git->branches('acme/other')), 'on the new repo');
    ok(!grep({ /\Q$p3->{study_id}\E/ } $git->branches($REPO)), 'not on the old one');
    cluster_set($cluster, 'config_repo_id', $repo->{id});
}

# --- LOCK_TIMEOUT: the repo stays locked by another job for too long -------------------------
{
    $s->restart_worker(args => ['--max-lock-waits', 1]);
    my $p = fresh();
    my $row = while_waiting_for_lock($p->{proposal_id}, sub {}, delay => 6);
    is($row->{status}, 'pending', 'lock timeout: pending');
    like($row->{pr_open_error}, qr/^LOCK_TIMEOUT: /, 'lock timeout: LOCK_TIMEOUT');
    $s->restart_worker;
    succeeds($p->{proposal_id}, 'LOCK_TIMEOUT');
}

# --- JOB_TIMEOUT: a hanging GitHub is abandoned; the next run adopts its PR -----------------
{
    $s->restart_worker(job_timeout => 3);
    my $p = fresh();
    $gh->script(create_pull => {delay => 6, passthrough => JSON::PP::true});
    my $row = $s->open_and_wait($p->{proposal_id}, 30);
    is($row->{status}, 'pending', 'timeout: pending');
    like($row->{pr_open_error}, qr/^JOB_TIMEOUT: /, 'timeout: JOB_TIMEOUT');
    # the fake finishes the abandoned request and creates the PR
    ok(RelyLoop::Test::wait_for(sub {
        grep { $_->{head}{ref} eq "relyloop/study-$p->{study_id}" } $gh->pulls }, 60),
        'timeout: the abandoned request created the PR');
    $s->restart_worker;
    $row = succeeds($p->{proposal_id}, 'JOB_TIMEOUT');
    my @mine = grep { $_->{head}{ref} eq "relyloop/study-$p->{study_id}" } $gh->pulls;
    is(scalar @mine, 1, 'one PR for the branch');
    is($row->{pr_url}, $mine[0]{html_url}, 'the existing PR was adopted');
    ok(scalar $s->events('pr_open_adopted', $p->{proposal_id}), 'pr_open_adopted logged');
}

# Nothing anywhere carries the PAT (the full sweep is t/pipeline_tokens.t).
unlike(join('', map { $t->slurp($_) } glob($t->dir . '/logs/*.log')), qr/\Q$pat\E/, 'no PAT in worker logs');

$s->done;
