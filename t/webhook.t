#!/usr/bin/perl
# POST /webhooks/github (docs/webhooks.md): signed GitHub-shaped deliveries
# (t/fixtures/webhooks/*.json, placeholders filled in here) against real nginx
# and PostgreSQL: the rows each event changes, one 403 for every verification
# failure with nothing recorded, the replay cache, a stale delivery, the
# last-merged pointer under two concurrent merges (ordering forced by a row
# lock held from psql), the body limit, and a database outage.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(hmac_sha256_hex sha256_hex);
use IO::Socket::INET;
use Test::More;
use RelyLoop::Test;
use RelyLoop::Fixtures;

my $SECRET = "whsec-0123456789abcdefghijklmnopqrstuvwxyz";

my $t = setup(worker => {args => ['--github-web-url', 'https://ghe.invalid',
    '--github-api-url', 'http://127.0.0.1:9']},
    directives => {relyloop_pg_pool_size => 4},
    server => "        location = /webhooks/github {\n"
        . "            relyloop_webhook;\n"
        . "            relyloop_webhook_max_body 16k;\n"
        . "        }\n");

$t->write_secret('wh-secret', "  $SECRET\n");
$t->write_secret('wh-other', "another-secret\n");

sub fixture {
    my ($name) = @_;
    open my $fh, '<', "$FindBin::Bin/fixtures/webhooks/$name.json" or die "$name: $!";
    local $/;
    return scalar <$fh>;
}

# A payload from a fixture, placeholders filled.
sub payload {
    my ($name, %v) = @_;
    my $s = fixture($name);
    my ($owner, $repo) = split m{/}, $v{full_name} // 'acme/none';
    $repo //= '';
    my %fill = (
        __FULL_NAME__ => $v{full_name} // "$owner/$repo",
        __OWNER__ => $owner, __REPO__ => $repo,
        __NUMBER__ => $v{number} // 1,
        __HTML_URL__ => $v{html_url} // "https://github.com/$owner/$repo/pull/1",
        __UPDATED_AT__ => $v{updated_at} // '2099-01-01T00:00:00Z',
        __MERGED_AT__ => $v{merged_at} // '2026-01-12T10:00:00Z',
    );
    $s =~ s/(__[A-Z_]+__)/exists $fill{$1} ? $fill{$1} : $1/ge;
    return $s;
}

my $SEQ = 0;
sub deliver {
    my ($body, %o) = @_;
    my %h = ('Content-Type' => 'application/json',
        'X-GitHub-Event' => $o{event} // 'pull_request',
        'X-GitHub-Delivery' => $o{delivery} // sprintf('d%06d-%d', ++$SEQ, $$));
    $h{'X-Hub-Signature-256'} = $o{signature}
        // 'sha256=' . hmac_sha256_hex($body, $o{secret} // $SECRET);
    delete $h{'X-Hub-Signature-256'} if $o{no_signature};
    delete $h{'X-GitHub-Delivery'} if $o{no_delivery};
    return $t->http(POST => '/webhooks/github', body => $body, headers => \%h);
}

# --- rows: a repo with a webhook secret, a cluster bound to it, PRs ------------
my $repo = create_repo($t, repo_url => 'https://github.com/Acme/Search-Config.git',
    webhook_secret_ref => 'wh-secret');
my $cluster = create_cluster($t, config_repo_id => $repo->{id}, config_path => 'cfg/params.json');
my $template = create_template($t);
my $FULL = 'acme/search-config';

my $n = 0;
sub opened_pr {
    my (%c) = @_;
    $n++;
    my $url = "https://github.com/Acme/Search-Config/pull/$n";
    my $id = insert_proposal($t, cluster_id => $cluster->{id}, template_id => $template->{id},
        status => 'pr_opened', pr_url => $url, pr_state => 'open', %c);
    return ($id, $url, $n);
}

sub row {
    my ($id) = @_;
    my @r = $t->psql("SELECT status, coalesce(pr_state, ''), "
        . "coalesce(to_char(pr_merged_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'), '') "
        . "FROM proposals WHERE id = " . sql_quote($id));
    return join '|', @{$r[0] || []};
}
sub pointer { $t->psql("SELECT coalesce(last_merged_proposal_id, '') FROM config_repos WHERE id = "
    . sql_quote($repo->{id})) // '' }
sub deliveries { $t->psql('SELECT count(*) FROM webhook_deliveries') }

sub ok_action {
    my ($r, $action, $what, %o) = @_;
    is($r->{status}, 200, "$what: 200") or diag $r->{body};
    is_deeply($r->{json}, {status => 'ok', action => $action, $o{replayed} ? (replayed => JSON::PP::true) : ()},
        "$what: action $action" . ($o{replayed} ? ', replayed' : ''));
    ok($r->{headers}{'x-request-id'}, "$what: X-Request-ID");
}

# --- the event table -------------------------------------------------------------
my ($p1, $u1, $n1) = opened_pr();
my $r = deliver(payload('closed_merged', full_name => 'Acme/Search-Config', html_url => $u1,
    number => $n1, merged_at => '2026-01-12T10:00:00Z'));
ok_action($r, 'applied', 'merged');
is(row($p1), 'pr_merged|merged|2026-01-12T10:00:00', 'merged: status, pr_state, pr_merged_at');
is(pointer(), $p1, 'merged: the pointer moved to it');
like($t->nginx_error_log, qr/config_repo_last_merged_pointer_updated \{[^\n]*"new_proposal_id":"\Q$p1\E"/,
    'pointer update logged');

my ($p2, $u2, $n2) = opened_pr();
$r = deliver(payload('closed', full_name => $FULL, html_url => $u2, number => $n2));
ok_action($r, 'applied', 'closed unmerged');
is(row($p2), 'pr_opened|closed|', 'closed: pr_state closed, status stays pr_opened');

$r = deliver(payload('reopened', full_name => $FULL, html_url => $u2, number => $n2));
ok_action($r, 'applied', 'reopened');
is(row($p2), 'pr_opened|open|', 'reopened: pr_state open');

# merged: true but merged_at null → closed only (the reconciler completes it)
my ($p3, $u3, $n3) = opened_pr();
my $body = payload('closed_merged', full_name => $FULL, html_url => $u3, number => $n3);
$body =~ s/"merged_at": "[^"]*"/"merged_at": null/;
$r = deliver($body);
ok_action($r, 'applied', 'merged without merged_at');
is(row($p3), 'pr_opened|closed|', 'merged without merged_at: only closed');
# a merge seen after that close completes it (from pr_state closed)
$r = deliver(payload('closed_merged', full_name => $FULL, html_url => $u3, number => $n3,
    merged_at => '2026-01-01T00:00:00Z', updated_at => '2099-01-02T00:00:00Z'));
ok_action($r, 'applied', 'merge after a close');
is(row($p3), 'pr_merged|merged|2026-01-01T00:00:00', 'merged from pr_state closed');
is(pointer(), $p1, 'an older merge does not move the pointer');
like($t->nginx_error_log, qr/config_repo_last_merged_pointer_skipped_older/, 'skip logged');

$r = deliver(payload('ping', full_name => $FULL), event => 'ping');
ok_action($r, 'ping', 'ping');
$r = deliver(payload('labeled', full_name => $FULL, html_url => $u2, number => $n2));
ok_action($r, 'noop', 'other pull_request action');
$r = deliver(payload('closed', full_name => $FULL, html_url => $u2, number => $n2,
    updated_at => '2099-02-02T00:00:00Z'), event => 'issues');
ok_action($r, 'noop', 'other event');
$r = deliver(payload('ping', full_name => $FULL), event => 'ping');
ok_action($r, 'ping', 'the same ping body again', replayed => 1);
$r = deliver(payload('closed', full_name => $FULL,
    html_url => 'https://github.com/Acme/Search-Config/pull/999', number => 999));
ok_action($r, 'unknown_pr', 'a PR no proposal has');
is(row($p2), 'pr_opened|open|', 'labeled / other event changed nothing');

# --- 403 for every verification failure, nothing recorded -----------------------------
my ($p4, $u4, $n4) = opened_pr();
my $good = payload('closed_merged', full_name => $FULL, html_url => $u4, number => $n4,
    merged_at => '2026-03-01T00:00:00Z');
my $before = deliveries();
my @bad = (
    ['wrong secret', $good, secret => 'not-the-secret'],
    ['missing signature header', $good, no_signature => 1],
    ['bad hex', $good, signature => 'sha256=' . ('zz' x 32)],
    ['short signature', $good, signature => 'sha256=abcd'],
    ['sha1 signature', $good, signature => 'sha1=' . ('ab' x 20)],
    ['unknown repo', payload('closed_merged', full_name => 'acme/elsewhere', html_url => $u4)],
    ['unparseable repository', payload('closed_merged', full_name => 'acme', html_url => $u4)],
    ['malformed JSON', '{"action": "closed", "repository": {"full_name": "' . $FULL . '"'],
    ['non-object JSON', '["closed"]'],
    ['nesting deeper than 64', '{"repository": {"full_name": "' . $FULL . '"}, "x": '
        . ('[' x 70) . (']' x 70) . '}'],
);
for my $case (@bad) {
    my ($what, $b, %o) = @$case;
    my $res = deliver($b, %o);
    is($res->{status}, 403, "$what → 403") or diag $res->{body};
    is_deeply($res->{json}, {detail => {error_code => 'INVALID_SIGNATURE',
        message => 'Signature mismatch or unknown repository.', retryable => JSON::PP::false}},
        "$what: the one envelope");
}
is(deliveries(), $before, 'nothing recorded');
is(row($p4), 'pr_opened|open|', 'nothing changed');
like($t->nginx_error_log, qr/webhook_invalid_signature \{"delivery_id":"[^"]+","gh_event":"pull_request","reason":"$_"\}/,
    "reason $_ logged") for qw(bad_signature unknown_repo unparseable_repository malformed_payload
        non_object_payload);
unlike($t->nginx_error_log, qr/\Q$SECRET\E/, 'the secret is never logged');

# a repo whose secret file is unusable is skipped; another candidate matches
my $repo2 = create_repo($t, repo_url => 'https://github.com/acme/search-config',
    webhook_secret_ref => 'wh-missing');
$r = deliver($good, delivery => 'first-of-p4');
ok_action($r, 'applied', 'the candidate with a usable secret matches');
is(row($p4), 'pr_merged|merged|2026-03-01T00:00:00', 'applied');
is($t->psql('SELECT config_repo_id FROM webhook_deliveries WHERE delivery_id = \'first-of-p4\''),
    $repo->{id}, 'recorded with the matching repo');

# --- replay cache ---------------------------------------------------------------------
$t->psql('UPDATE proposals SET status = \'pr_opened\', pr_state = \'open\', pr_merged_at = NULL '
    . 'WHERE id = ' . sql_quote($p4));
$r = deliver($good, delivery => 'first-of-p4');
ok_action($r, 'applied', 'the same delivery again', replayed => 1);
$r = deliver($good, delivery => 'another-id');
ok_action($r, 'applied', 'the same body under a new delivery id', replayed => 1);
is(row($p4), 'pr_opened|open|', 'replays applied nothing');
my ($p5, $u5, $n5) = opened_pr();
$r = deliver(payload('closed', full_name => $FULL, html_url => $u5, number => $n5),
    delivery => 'first-of-p4');
ok_action($r, 'applied', 'another body under a seen delivery id', replayed => 1);
is(row($p5), 'pr_opened|open|', 'not applied');
like($t->nginx_error_log, qr/webhook_replayed /, 'webhook_replayed logged');
is($t->psql('SELECT count(*) FROM webhook_deliveries WHERE expires_at > now() + interval \'7 days\''),
    deliveries(), 'expires_at = now + window + 1 day');

# --- stale ----------------------------------------------------------------------------
$r = deliver(payload('closed', full_name => $FULL, html_url => $u5, number => $n5,
    updated_at => '2020-01-01T00:00:00Z'));
ok_action($r, 'noop', 'a stale delivery');
is(row($p5), 'pr_opened|open|', 'stale: not applied');
like($t->nginx_error_log, qr/webhook_stale_delivery /, 'webhook_stale_delivery logged');

# --- two concurrent merges, the newer committing first ----------------------------------
my ($old, $uo, $no) = opened_pr();
my ($new, $un, $nn) = opened_pr();
my $lock = psql_bg($t, "SET application_name = 'webhook-lock';\nBEGIN;\n"
    . "SELECT id FROM config_repos WHERE id = " . sql_quote($repo->{id}) . " FOR UPDATE;\n"
    . "SELECT pg_sleep(3600);\nCOMMIT;\n");
ok(RelyLoop::Test::wait_for(sub { $t->psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
    . "'webhook-lock' AND query LIKE '%pg_sleep%' AND state = 'active'") == 1 }, 60),
    'psql holds the config_repos row lock');
sub lock_waiters { $t->psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
    . "'relyloop-nginx' AND wait_event_type = 'Lock'") }
sub send_raw {
    my ($b) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $t->nginx_port, Timeout => 10) or die;
    RelyLoop::Test::socket_timeout($s, 120);
    print $s "POST /webhooks/github HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\nX-GitHub-Event: pull_request\r\n"
        . "X-GitHub-Delivery: raw-" . ++$SEQ . "\r\n"
        . "X-Hub-Signature-256: sha256=" . hmac_sha256_hex($b, $SECRET) . "\r\n"
        . "Content-Length: " . length($b) . "\r\n\r\n" . $b;
    return $s;
}
sub read_raw { my ($s) = @_; local $/; my $x = <$s> // ''; my ($st) = $x =~ m{^HTTP/1\.1 (\d+)}; $st // 0 }
my $s_new = send_raw(payload('closed_merged', full_name => $FULL, html_url => $un, number => $nn,
    merged_at => '2026-06-02T00:00:00Z'));
ok(RelyLoop::Test::wait_for(sub { lock_waiters() == 1 }, 60), 'the newer merge waits for the row lock');
my $s_old = send_raw(payload('closed_merged', full_name => $FULL, html_url => $uo, number => $no,
    merged_at => '2026-06-01T00:00:00Z'));
ok(RelyLoop::Test::wait_for(sub { lock_waiters() == 2 }, 60), 'then the older one, on another connection');
$t->psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'webhook-lock'");
waitpid($lock, 0);
is(read_raw($s_new), 200, 'newer: 200');
is(read_raw($s_old), 200, 'older: 200');
is(row($new), 'pr_merged|merged|2026-06-02T00:00:00', 'newer merged');
is(row($old), 'pr_merged|merged|2026-06-01T00:00:00', 'older merged');
is(pointer(), $new, 'the pointer stays on the newer merge');

# --- two identical deliveries in flight: the second waits on the unique index ---------------
my ($twin, $ut, $nt) = opened_pr();
my $twin_body = payload('closed_merged', full_name => $FULL, html_url => $ut, number => $nt,
    merged_at => '2026-07-01T00:00:00Z');
$lock = psql_bg($t, "SET application_name = 'webhook-lock';\nBEGIN;\n"
    . "SELECT id FROM config_repos WHERE id = " . sql_quote($repo->{id}) . " FOR UPDATE;\n"
    . "SELECT pg_sleep(3600);\nCOMMIT;\n");
ok(RelyLoop::Test::wait_for(sub { $t->psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
    . "'webhook-lock' AND query LIKE '%pg_sleep%' AND state = 'active'") == 1 }, 60),
    'psql holds the row lock again');
my $s1 = send_raw($twin_body);
ok(RelyLoop::Test::wait_for(sub { lock_waiters() == 1 }, 60), 'the first copy waits for the row lock');
my $s2 = send_raw($twin_body);
ok(RelyLoop::Test::wait_for(sub { lock_waiters() == 2 }, 60), 'the second waits on the first one\'s delivery row');
$t->psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'webhook-lock'");
waitpid($lock, 0);
my ($b1, $b2) = map { local $/; my $x = <$_> // ''; $x =~ s/^.*?\r\n\r\n//s; $x } $s1, $s2;
is($b1, '{"status":"ok","action":"applied"}', 'the first copy applied');
is($b2, '{"status":"ok","action":"applied","replayed":true}', 'the second conflicted: replayed');
is(row($twin), 'pr_merged|merged|2026-07-01T00:00:00', 'merged once');
is(pointer(), $twin, 'the pointer moved to the latest merge');

# --- body limit: 413 without reading the body ---------------------------------------------
{
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $t->nginx_port, Timeout => 10) or die;
    RelyLoop::Test::socket_timeout($s, 60);
    # the headers only: the answer comes without a byte of the body sent
    print $s "POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        . "X-GitHub-Event: pull_request\r\nContent-Length: " . (16 * 1024 + 1) . "\r\n\r\n";
    my $head = '';
    while ($head !~ /\r\n\r\n/) {
        my $got = sysread($s, my $buf, 4096);
        last unless $got;
        $head .= $buf;
    }
    like($head, qr{^HTTP/1\.1 413 }, 'Content-Length over relyloop_webhook_max_body → 413, body unread');
    like($head, qr/PAYLOAD_TOO_LARGE/, 'PAYLOAD_TOO_LARGE envelope') if $head =~ /\{/;
    close $s;
    my $res = $t->raw_http("POST /webhooks/github HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        . join('', map { sprintf("%x\r\n%s\r\n", 4096, 'x' x 4096) } 1 .. 5) . "0\r\n\r\n");
    is($res->{status}, 413, 'a chunked body growing past the limit → 413');
    is($res->{json}{detail}{error_code}, 'PAYLOAD_TOO_LARGE', 'PAYLOAD_TOO_LARGE') or diag $res->{raw};
}
$r = $t->http(GET => '/webhooks/github');
is($r->{status}, 405, 'GET → 405');
is($r->{headers}{allow}, 'POST', 'Allow: POST');
is($r->{json}{detail}{error_code}, 'METHOD_NOT_ALLOWED', 'METHOD_NOT_ALLOWED');

# --- registration jobs -----------------------------------------------------------------
sub jobs { $t->psql('SELECT count(*) FROM webhook_jobs WHERE config_repo_id = ' . sql_quote($_[0])) }
is(jobs($repo->{id}), 1, 'create with a webhook_secret_ref: one registration job, same transaction');
my $plain = create_repo($t);
is(jobs($plain->{id}), 0, 'create without one: no job');
# a live job (held running here, whatever a worker does meanwhile)
$t->psql("UPDATE webhook_jobs SET state = 'running', lease_until = now() + interval '1 hour', "
    . "worker_id = 'webhook.t' WHERE config_repo_id = " . sql_quote($repo->{id}));
$r = api($t, POST => "/api/v1/config-repos/$repo->{id}/register_webhook");
is($r->{status}, 202, 'register_webhook → 202') or diag $r->{body};
is_deeply($r->{json}, {config_repo_id => $repo->{id}, status => 'queued',
    message => 'Webhook registration queued'}, '202 body');
is(jobs($repo->{id}), 1, 'a live job: no second one');
$t->psql("UPDATE webhook_jobs SET state = 'succeeded', lease_until = NULL, finished_at = now() "
    . "WHERE config_repo_id = " . sql_quote($repo->{id}));
$r = api($t, POST => "/api/v1/config-repos/$repo->{id}/register_webhook", json => {});
is($r->{status}, 202, 'register_webhook with {} after the job finished → 202');
is(jobs($repo->{id}), 2, 'a new job');
$r = api($t, POST => "/api/v1/config-repos/$plain->{id}/register_webhook");
error_ok($r, 422, 'WEBHOOK_SECRET_REF_NOT_SET', 'no webhook_secret_ref');
is($r->{json}{detail}{message}, "config repo $plain->{id} has no webhook_secret_ref", '422 message');
$r = api($t, POST => '/api/v1/config-repos/' . uuid7() . '/register_webhook');
error_ok($r, 404, 'CONFIG_REPO_NOT_FOUND', 'unknown config repo');

# --- database down → 503, a redelivery later applies ------------------------------------
my ($p6, $u6, $n6) = opened_pr();
my $b6 = payload('closed', full_name => $FULL, html_url => $u6, number => $n6);
$before = deliveries();
$t->pg_ctl_stop;
$r = deliver($b6, delivery => 'during-outage');
is($r->{status}, 503, 'database down → 503') or diag $r->{body};
is($r->{json}{detail}{error_code}, 'DATABASE_UNAVAILABLE', 'DATABASE_UNAVAILABLE');
is($r->{json}{detail}{retryable}, JSON::PP::true, 'retryable');
$t->pg_ctl_start;
ok(RelyLoop::Test::wait_for(sub { $t->http(GET => '/api/v1/health')->{status} == 200 }, 60), 'the pool is back');
is(deliveries(), $before, 'nothing recorded during the outage');
$r = deliver($b6, delivery => 'during-outage');
ok_action($r, 'applied', 'the redelivery');
is(row($p6), 'pr_opened|closed|', 'applied');

responses_ok();

$t->done;
