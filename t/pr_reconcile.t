#!/usr/bin/perl
# The PR state reconciler (docs/worker.md, "PR state reconciler") against the
# fake GitHub: merged, closed, reopened, unchanged, a 404, the last-merged
# pointer; two workers → one tick per slot; the conditional list (ETag → 304)
# on the next slot; a 429 that stops the tick; the GitHub call count of one
# tick over 200 open PRs in 5 repositories. One wait for a slot boundary.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);

use RelyLoop::Test qw(json_decode);
sub wait_for { &RelyLoop::Test::wait_for(@_) }
use RelyLoop::FakeGithub;
use RelyLoop::WorkerTest;

RelyLoop::Test->timeout(300);

my $t = RelyLoop::Test->new;
$t->start_pg->migrate;
my $wt = RelyLoop::WorkerTest->new($t);
my $PAT = 'ghp_RECONCILE' . ('Q7' x 14);
my $WEB = 'https://github.reconcile.test';
my $gh = RelyLoop::FakeGithub->start(dir => $t->dir, token => $PAT, web_url => $WEB);
$t->write_secret('rec-pat', "$PAT\n");
my $prev_stop = $t->{on_stop};
$t->{on_stop} = sub { $prev_stop->() if $prev_stop; $gh->stop };

my %repo_id;
sub repo {
    my ($full) = @_;
    my $id = $wt->uuid;
    (my $name = "rec-$full") =~ s{[^a-z0-9]+}{-}g;
    $t->psql(qq{INSERT INTO config_repos (id, name, provider, repo_url, auth_ref)
        VALUES ('$id', '$name', 'github', '$WEB/$full', 'rec-pat')});
    return $repo_id{$full} = $id;
}
my %cluster_of;
sub cluster_of { $cluster_of{$_[0]} //= $wt->cluster($repo_id{$_[0]}) }

# A pr_opened proposal for PR $n of $full in state $state here; the PR on
# the fake as `open` unless gh_state says otherwise.
sub pr {
    my ($full, $n, $state, %o) = @_;
    my $id = $wt->proposal(cluster_of($full));
    $t->psql(qq{UPDATE proposals SET status = 'pr_opened', pr_url = '$WEB/$full/pull/$n',
        pr_state = '$state' WHERE id = '$id'});
    $gh->set_pull(repo => $full, number => $n, state => 'open') unless $o{no_pull};
    return $id;
}
sub row {
    my ($id) = @_;
    my ($r) = $t->psql(qq{SELECT status, coalesce(pr_state, ''),
        coalesce(to_char(pr_merged_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), ''),
        last_polled_at IS NOT NULL FROM proposals WHERE id = '$id'});
    return {status => $r->[0], pr_state => $r->[1], merged_at => $r->[2], polled => $r->[3]};
}
sub events {
    my ($name, $event) = @_;
    return grep { ($_->{event} // '') eq $event }
        map { json_decode($_) // () } split /\n/, $t->worker_log($name);
}
sub start {
    my ($name, @extra) = @_;
    $t->start_worker(name => $name, socket => $t->dir . "/$name.sock",
        args => ['--github-web-url', $WEB, '--github-api-url', $gh->api_url,
            '--pr-poll-minutes', 1, @extra]);
}
sub last_slot { scalar $t->psql(q{SELECT last_slot FROM worker_ticks WHERE name = 'reconcile_pr_state'}) }
sub gh_calls { my %f = @_; scalar grep { $_->{route} =~ /pulls/ } $gh->requests(%f) }

repo('acme/alpha');
repo('acme/beta');
repo('acme/gamma');
my %p;
$p{merged} = pr('acme/alpha', 1, 'open');
$p{closed} = pr('acme/alpha', 2, 'open');
$p{reopened} = pr('acme/alpha', 3, 'closed');
$p{unchanged} = pr('acme/alpha', 4, 'open');
$p{late_merge} = pr('acme/alpha', 5, 'closed');
$p{gone} = pr('acme/alpha', 6, 'open', no_pull => 1);
$p{b_open} = pr('acme/beta', 1, 'open');
$p{b_closed} = pr('acme/beta', 2, 'closed');
$p{c_open} = pr('acme/gamma', 1, 'open');
$gh->set_pull(repo => 'acme/alpha', number => 5, state => 'closed', merged => 1,
    merged_at => '2026-01-01T10:00:00Z');
$gh->set_pull(repo => 'acme/alpha', number => 1, state => 'closed', merged => 1,
    merged_at => '2026-01-02T10:00:00Z');
$gh->set_pull(repo => 'acme/alpha', number => 2, state => 'closed');
$gh->set_pull(repo => 'acme/beta', number => 2, state => 'closed');
$gh->reset(requests => 1);
# Replay-cache rows: one expired (pruned by the tick), one live.
for my $x (['a' x 64, "now() - interval '1 minute'"], ['b' x 64, "now() + interval '1 day'"]) {
    $t->psql(qq{INSERT INTO webhook_deliveries (body_sha256, event, action, expires_at)
        VALUES ('$x->[0]', 'ping', 'ping', $x->[1])});
}

# Both workers start inside one minute, so both go for the same slot.
my $into = time - 60 * int(time / 60);
sleep(61 - $into) if $into > 45;
start('w1');
start('w2');
ok(wait_for(sub { events('w1', 'pr_reconcile_tick_complete') + events('w2', 'pr_reconcile_tick_complete') }, 20),
    'a tick ran');
sleep 1;    # the other worker has had its go at the slot by now
my @ticks = (events('w1', 'pr_reconcile_tick_complete'), events('w2', 'pr_reconcile_tick_complete'));
is(scalar @ticks, 1, 'two workers: one tick for the slot');
my $winner = events('w1', 'pr_reconcile_tick_complete') ? 'w1' : 'w2';
my $loser = $winner eq 'w1' ? 'w2' : 'w1';
my $s = $ticks[0];
is(last_slot(), $s->{slot}, 'worker_ticks.last_slot is the slot');
is(int(time / 60) - $s->{slot} <= 1, 1, 'the slot is the current minute');
is_deeply([@$s{qw(candidates reconciled unchanged errored rate_limited)}], [9, 4, 4, 1, 0],
    'summary: candidates, reconciled, unchanged, errored, rate_limited');
my $summary = json_decode(scalar $t->psql(
    q{SELECT last_summary::text FROM worker_ticks WHERE name = 'reconcile_pr_state'}));
is($summary->{reconciled}, 4, 'the summary is stored in worker_ticks.last_summary');

is_deeply(row($p{merged}), {status => 'pr_merged', pr_state => 'merged',
    merged_at => '2026-01-02T10:00:00Z', polled => 'f'}, 'merged');
is_deeply(row($p{closed}), {status => 'pr_opened', pr_state => 'closed', merged_at => '',
    polled => 'f'}, 'closed (not stamped in the tick that closed it)');
is(row($p{reopened})->{pr_state}, 'open', 'a missed reopen is repaired');
is_deeply(row($p{unchanged}), {status => 'pr_opened', pr_state => 'open', merged_at => '',
    polled => 'f'}, 'unchanged');
is(row($p{late_merge})->{status}, 'pr_merged', 'a merge seen after a close is completed');
is(scalar(events($winner, 'pr_reconcile_recovered_eventual_consistency')), 1,
    'pr_reconcile_recovered_eventual_consistency');
is(row($p{gone})->{status}, 'pr_opened', '404: nothing changes');
my ($e404) = events($winner, 'pr_reconcile_terminal_error');
is($e404->{status_code}, 404, 'pr_reconcile_terminal_error {status_code: 404}');
is(row($p{b_closed})->{polled}, 't', 'a closed candidate still closed is stamped');
is(scalar $t->psql("SELECT last_merged_proposal_id FROM config_repos WHERE id = '$repo_id{'acme/alpha'}'"),
    $p{merged}, 'the last-merged pointer names the newer merge');

is_deeply([map { $_->[0] } $t->psql('SELECT body_sha256 FROM webhook_deliveries')], ['b' x 64],
    'expired webhook_deliveries rows pruned, live ones kept');

# GitHub calls: one list per repository, one GET for the PR the list lacked.
my @req = $gh->requests;
is(scalar(grep { $_->{route} eq 'list_pulls' } @req), 3, 'one list per repository');
is_deeply([map { $_->{path} } grep { $_->{route} eq 'get_pull' } @req],
    ['/repos/acme/alpha/pulls/6'], 'a single GET only for the PR the list did not show');
my ($l) = grep { $_->{route} eq 'list_pulls' } @req;
is_deeply([@{$l->{query}}{qw(state sort direction per_page)}], [qw(all updated desc 100)],
    'the list: state=all, sort=updated, direction=desc, per_page=100');
is($s->{github_calls}, 4, 'github_calls in the summary');

# --- the next slot: one worker; 304 for an unchanged repository -------------
$t->stop_worker($loser);
$t->psql("DELETE FROM proposals WHERE id = '$p{gone}'");
$gh->set_pull(repo => 'acme/beta', number => 1, state => 'closed');
$gh->reset(requests => 1);
my $slot1 = $s->{slot};
ok(wait_for(sub { grep { $_->{slot} > $slot1 } events($winner, 'pr_reconcile_tick_complete') }, 75),
    'the next slot ticked');
my ($s2) = grep { $_->{slot} > $slot1 } events($winner, 'pr_reconcile_tick_complete');
@req = $gh->requests;
my %by_repo = map { ($_->{path} =~ m{/repos/acme/(\w+)/}) => $_ } grep { $_->{route} eq 'list_pulls' } @req;
is(scalar @req, 3, 'one request per repository, nothing else');
is($by_repo{alpha}{status}, 304, 'unchanged repository: 304');
ok(length($by_repo{alpha}{headers}{'if-none-match'} // ''), 'sent with If-None-Match');
is($by_repo{beta}{status}, 200, 'changed repository: 200');
is(row($p{b_open})->{pr_state}, 'closed', 'the change is applied');
is($s2->{reconciled}, 1, 'one reconciled');
is($s2->{not_modified}, 2, 'two 304s (alpha, gamma)');

# --- 429 mid-tick stops the tick --------------------------------------------
$t->stop_worker($winner);
$t->psql(q{UPDATE worker_ticks SET last_slot = -1});
$t->psql(qq{UPDATE proposals SET pr_state = 'open' WHERE id = '$p{b_open}'});
$gh->reset(requests => 1);
$gh->script(list_pulls => {passthrough => 1},
    ({status => 429, body => {message => 'API rate limit exceeded'},
      headers => {'Retry-After' => 0, 'x-ratelimit-reset' => 1999999999}}) x 3);
start('w3');
ok(wait_for(sub { events('w3', 'pr_reconcile_tick_complete') }, 20), 'tick with a 429');
my ($s3) = events('w3', 'pr_reconcile_tick_complete');
is($s3->{rate_limited}, 1, 'rate_limited: 1');
my ($rl) = events('w3', 'pr_reconcile_rate_limited');
is($rl->{x_ratelimit_reset}, '1999999999', 'pr_reconcile_rate_limited {x_ratelimit_reset}');
@req = $gh->requests;
is(scalar(grep { $_->{path} =~ m{/acme/beta/} } @req), 3, 'beta: three attempts (the client retries)');
is(scalar(grep { $_->{path} =~ m{/acme/gamma/} } @req), 0, 'the tick stopped: gamma not asked');
is(row($p{b_open})->{pr_state}, 'open', 'beta untouched');
$t->stop_worker('w3');

# --- a 403 with x-ratelimit-remaining: 0 stops it too ------------------------
$t->psql(q{UPDATE worker_ticks SET last_slot = -1});
$gh->reset(requests => 1);
$gh->script(list_pulls => ({status => 403, body => {message => 'API rate limit exceeded'},
    headers => {'x-ratelimit-remaining' => 0, 'x-ratelimit-reset' => 1000000000}}) x 3);
start('w5');
ok(wait_for(sub { events('w5', 'pr_reconcile_tick_complete') }, 30), 'tick with a rate-limit 403');
is((events('w5', 'pr_reconcile_tick_complete'))[0]{rate_limited}, 1, '403 + remaining 0: rate_limited');
is(scalar(() = $gh->requests), 3, 'the tick stopped at the first repository');
$t->stop_worker('w5');

# --- 200 open PRs over 5 repositories: one call per repository ---------------
$t->psql('DELETE FROM proposals');
$gh->reset(pulls => 1, requests => 1, script => 1);
my @big;
for my $r (1 .. 5) {
    my $full = "bulk/r$r";
    repo($full);
    for my $n (1 .. 40) {
        push @big, pr($full, $n, 'open');
    }
}
$gh->set_pull(repo => 'bulk/r2', number => 7, state => 'closed');
$gh->set_pull(repo => 'bulk/r4', number => 40, state => 'closed', merged => 1,
    merged_at => '2026-02-01T00:00:00Z');
$gh->reset(requests => 1);
$t->psql(q{UPDATE worker_ticks SET last_slot = -1});
start('w4');
ok(wait_for(sub { events('w4', 'pr_reconcile_tick_complete') }, 30), '200-PR tick');
my ($s4) = events('w4', 'pr_reconcile_tick_complete');
my $calls = () = $gh->requests;
cmp_ok($calls, '<=', 5 + 2, 'GitHub calls <= repositories + changes');
is($calls, 5, 'in fact one list per repository');
is_deeply([@$s4{qw(candidates reconciled unchanged errored)}], [200, 2, 198, 0], 'the summary');
$t->stop_worker('w4');

like($t->worker_log($_), qr/./, "$_ logged") for qw(w1 w3);
unlike(join('', map { $t->worker_log($_) } qw(w1 w2 w3 w4 w5)), qr/\Q$PAT\E/, 'the PAT is in no log');

$t->done;
