#!/usr/bin/perl
# The webhook registration job (docs/worker.md, "Webhook registration")
# against the fake GitHub: created with the exact payload; already there → no
# second hook; 404/422/403 → failed with their messages; 5xx → retried at
# +1/+5/+15 min, then failed; a row without a secret ref is skipped; a
# missing secret file; the secret in no log line, job row, config repo row or
# error string.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

use RelyLoop::Test qw(json_decode);
use RelyLoop::FakeGithub;
use RelyLoop::WorkerTest;

sub wait_for { &RelyLoop::Test::wait_for(@_) }

RelyLoop::Test->timeout(240);

my $t = RelyLoop::Test->new;
$t->start_pg->migrate;
my $wt = RelyLoop::WorkerTest->new($t);
my $PAT = 'ghp_REGISTER' . ('Z3' x 14);
my $SECRET = 'whsec-I13B-' . join('', map { ('a' .. 'z', 0 .. 9)[($_ * 11) % 36] } 1 .. 32);
my $WEB = 'https://github.register.test';
my $HOOK_URL = 'https://rl.register.test/webhooks/github';
my $gh = RelyLoop::FakeGithub->start(dir => $t->dir, token => $PAT, web_url => $WEB);
my $prev_stop = $t->{on_stop};
$t->{on_stop} = sub { $prev_stop->() if $prev_stop; $gh->stop };
$t->write_secret('reg-pat', "$PAT\n");
$t->write_secret('reg-hook', "  $SECRET \n");

my $n = 0;
sub repo {
    my ($full, %o) = @_;
    my $id = $wt->uuid;
    my $ref = exists $o{secret_ref} ? $o{secret_ref} : 'reg-hook';
    my $sref = defined $ref ? "'$ref'" : 'NULL';
    $n++;
    $t->psql(qq{INSERT INTO config_repos (id, name, provider, repo_url, auth_ref, webhook_secret_ref)
        VALUES ('$id', 'reg-$n', 'github', '$WEB/$full', 'reg-pat', $sref)});
    return $id;
}
sub job {
    my ($repo) = @_;
    return scalar $t->psql(qq{INSERT INTO webhook_jobs (id, config_repo_id, state)
        VALUES (gen_random_uuid()::text, '$repo', 'queued') RETURNING id});
}
sub job_row {
    my ($id) = @_;
    my ($r) = $t->psql(qq{SELECT state, attempts, coalesce(last_event, ''), coalesce(last_error, ''),
        run_after > now() + interval '50 seconds', run_after > now() + interval '4 minutes',
        run_after > now() + interval '14 minutes' FROM webhook_jobs WHERE id = '$id'});
    my %j;
    @j{qw(state attempts last_event last_error after1 after5 after15)} = @$r;
    return \%j;
}
sub wait_state {
    my ($id, $re, $secs) = @_;
    my $ok = wait_for(sub { job_row($id)->{state} =~ /^(?:$re)\z/ }, $secs // 20);
    ok($ok, "job reaches $re") or diag explain job_row($id);
    return job_row($id);
}
sub repo_error {
    my ($id) = @_;
    my ($r) = $t->psql(qq{SELECT webhook_registration_error IS NULL,
        coalesce(webhook_registration_error, '') FROM config_repos WHERE id = '$id'});
    return $r->[0] eq 't' ? undef : $r->[1];
}
sub hook_posts { grep { $_->{route} eq 'create_hook' } $gh->requests }

$t->start_worker(args => ['--github-web-url', $WEB, '--github-api-url', $gh->api_url,
    '--base-url', 'https://rl.register.test/', '--pr-poll-minutes', 0]);

# --- created, with the exact payload ------------------------------------------
my $r1 = repo('acme/hooks');
$t->psql(qq{UPDATE config_repos SET webhook_registration_error = 'stale' WHERE id = '$r1'});
my $j1 = job($r1);
my $row = wait_state($j1, 'succeeded');
is($row->{last_event}, 'register_webhook_created', 'register_webhook_created');
is(repo_error($r1), undef, 'success writes NULL');
my @posts = hook_posts();
is(scalar @posts, 1, 'one create');
is($posts[0]{path}, '/repos/acme/hooks/hooks', 'POST /repos/{o}/{r}/hooks');
is_deeply(JSON::PP->new->decode($posts[0]{body}),
    {name => 'web', active => JSON::PP::true, events => ['pull_request'],
     config => {url => $HOOK_URL, content_type => 'json', secret => $SECRET, insecure_ssl => '0'}},
    'the exact payload, the trimmed secret');
my ($list) = grep { $_->{route} eq 'list_hooks' } $gh->requests;
is($list->{raw_query}, 'per_page=100', 'GET hooks?per_page=100 first');

# --- already there → no second hook ------------------------------------------
my $j2 = job($r1);
$row = wait_state($j2, 'succeeded');
is($row->{last_event}, 'register_webhook_exists', 'register_webhook_exists');
is(scalar(hook_posts()), 1, 'no second hook');

# --- failures ----------------------------------------------------------------------
my %fail = (
    404 => 'GitHub returned 404 — PAT lacks admin:repo_hook scope or the configured repo doesn\'t exist.',
    422 => 'GitHub returned 422 — webhook payload was rejected. Inspect the hook config (URL reachable from GitHub?).',
    401 => 'GitHub returned 401 creating webhook.',
);
for my $status (sort keys %fail) {
    my $r = repo("acme/fail-$status");
    $gh->script(create_hook => {status => $status, body => {message => 'nope'}});
    my $row = wait_state(job($r), 'failed');
    is($row->{last_error}, $fail{$status}, "create → $status: last_error");
    is(repo_error($r), $fail{$status}, "create → $status: webhook_registration_error");
    is($row->{attempts}, 1, "create → $status: not retried");
}
{
    my $r = repo('acme/list-403');
    $gh->script(list_hooks => {status => 403, body => {message => 'Must have admin rights'}});
    my $row = wait_state(job($r), 'failed');
    is(repo_error($r), 'GitHub returned 403 listing webhooks — check PAT scope (admin:repo_hook required).',
        'list → 403');
}
{
    my $r = repo('acme/list-junk');
    $gh->script(list_hooks => {status => 200, raw => '<html>'});
    wait_state(job($r), 'failed');
    is(repo_error($r), 'GitHub returned non-JSON response listing webhooks.', 'list → not JSON');
}
{
    my $r = repo('acme/no-secret', secret_ref => 'reg-missing');
    wait_state(job($r), 'failed');
    is(repo_error($r), 'Webhook secret not configured: ' . $t->dir
        . '/secrets/reg-missing is missing or empty.', 'secret file missing');
}
{
    my $r = repo('acme/no-ref', secret_ref => undef);
    my $row = wait_state(job($r), 'succeeded');
    is($row->{last_event}, 'register_webhook_skipped', 'no webhook_secret_ref: skipped');
}

# --- 5xx: retried at +1, +5, +15 min, then failed -------------------------------
{
    my $r = repo('acme/flaky');
    my $msg = 'GitHub returned 502 — transient. Re-enqueue the job manually after GitHub\'s status recovers.';
    $gh->script(create_hook => ({status => 502, body => {message => 'Bad Gateway'}}) x 12);
    my $j = job($r);
    my @expect = ([1, 'after1'], [2, 'after5'], [3, 'after15']);
    for my $e (@expect) {
        my ($attempt, $key) = @$e;
        ok(wait_for(sub { my $x = job_row($j); $x->{state} eq 'queued' && $x->{attempts} == $attempt }, 30),
            "attempt $attempt → queued again");
        my $x = job_row($j);
        is($x->{$key}, 't', "attempt $attempt: run_after is later by the schedule");
        is($x->{last_error}, $msg, "attempt $attempt: the message") if $attempt == 1;
        is(repo_error($r), $msg, "attempt $attempt: webhook_registration_error") if $attempt == 1;
        $t->psql(qq{UPDATE webhook_jobs SET run_after = now() WHERE id = '$j'});
    }
    my $x = wait_state($j, 'failed', 30);
    is($x->{attempts}, 4, 'failed after the fourth run');
    is(scalar(hook_posts()), 1 + 3 + 12, 'every attempt was a create (the client retried each 3 times)');
}

$t->stop_worker;

# --- no webhook URL (no --webhook-url, no --base-url) ---------------------------
$t->start_worker(args => ['--github-web-url', $WEB, '--github-api-url', $gh->api_url,
    '--pr-poll-minutes', 0]);
{
    my $r = repo('acme/no-url');
    wait_state(job($r), 'failed');
    is(repo_error($r), 'RELYLOOP_BASE_URL is not configured; GitHub cannot reach this install. '
        . 'Set --webhook-url or --base-url and re-register.', 'no webhook URL');
}
$t->stop_worker;

# --- the secret appears nowhere but in the create call's body -------------------
my $log = $t->worker_log;
unlike($log, qr/\Q$SECRET\E/, 'not in the worker log');
unlike($log, qr/\Q$PAT\E/, 'the PAT neither');
my $rows = $t->psql_raw(q{SELECT row_to_json(j)::text FROM webhook_jobs j UNION ALL
    SELECT row_to_json(r)::text FROM config_repos r});
unlike($rows, qr/\Q$SECRET\E/, 'not in a job or config repo row');
my @with = grep { ($_->{body} // '') =~ /\Q$SECRET\E/ || JSON::PP->new->encode($_->{headers}) =~ /\Q$SECRET\E/ }
    $gh->requests;
is_deeply([sort { $a cmp $b } map { $_->{route} } @with], [('create_hook') x scalar(hook_posts())],
    'GitHub saw it only in create bodies');

$t->done;
