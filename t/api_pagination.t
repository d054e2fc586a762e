#!/usr/bin/perl
# Lists (docs/api.md): limit 1..200 (default 50), keyset cursors over
# created_at DESC, id DESC (ties broken by id), has_more at limit=200,
# X-Total-Count, since=, tampered cursors → 422 "invalid cursor" on every list.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use RelyLoop::Test;
use RelyLoop::Fixtures;

my $t = setup();

# 400 repos, five per created_at (so ids break the ties), ids in random order
# relative to insertion.
my $ID = "substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-7' || substr(h, 14, 3) || '-8' "
    . "|| substr(h, 18, 3) || '-' || substr(h, 21, 12)";
sub insert_repos {
    my ($from, $to, $ts) = @_;
    $t->psql("INSERT INTO config_repos (id, name, provider, repo_url, auth_ref, created_at) "
        . "SELECT $ID, 'bulk-' || i, 'github', 'https://github.com/bulk/r' || i, 'pat', $ts "
        . "FROM (SELECT i, md5('repo' || i) AS h FROM generate_series($from, $to) AS i) s");
}
insert_repos(1, 400, "'2026-01-01 00:00:00+00'::timestamptz + (i / 5) * interval '1 second'");
sub expected {
    my ($where) = @_;
    return [map { $_->[0] } $t->psql('SELECT id FROM config_repos ' . ($where // '')
        . ' ORDER BY created_at DESC, id DESC')];
}
my $exp = expected();
is(scalar @$exp, 400, '400 rows inserted');

sub walk_ok {
    my ($path, $limit, $want, $name, %o) = @_;
    my $w = walk_pages($t, $path, $limit);
    ok(!$w->{error}, "$name: the walk completes") or diag($w->{error});
    is_deeply($w->{ids}, $want, "$name: every row exactly once, in order")
        or diag('got ' . scalar(@{$w->{ids}}) . ' ids, want ' . scalar(@$want));
    my @bad_total = grep { ($_->{total} // '') ne scalar(@$want) } @{$w->{pages}};
    ok(!@bad_total, "$name: X-Total-Count " . scalar(@$want) . ' on every page');
    if ($o{pages}) {
        is_deeply([map { $_->{n} } @{$w->{pages}}], $o{pages}, "$name: page sizes");
        is_deeply([map { $_->{has_more} } @{$w->{pages}}],
            [(1) x (@{$o{pages}} - 1), 0], "$name: has_more on all pages but the last");
        ok(!defined $w->{pages}[-1]{cursor}, "$name: next_cursor null on the last page");
    }
    return $w;
}

walk_ok('/api/v1/config-repos', 200, $exp, 'exactly 400 rows, limit=200', pages => [200, 200]);
walk_ok('/api/v1/config-repos', 5, $exp, 'limit=5 (pages end on tie groups)');
walk_ok('/api/v1/config-repos', 7, $exp, 'limit=7 (pages split tie groups)');
my $w = walk_ok('/api/v1/config-repos', 1, $exp, 'limit=1');
is(scalar @{$w->{pages}}, 400, 'limit=1: 400 pages');

insert_repos(401, 401, "'2025-12-31 23:59:59+00'::timestamptz");
$exp = expected();
walk_ok('/api/v1/config-repos', 200, $exp, '401 rows, limit=200', pages => [200, 200, 1]);
insert_repos(402, 403, "'2026-01-01 00:00:40+00'::timestamptz");   # into an existing tie group
$exp = expected();
walk_ok('/api/v1/config-repos', 199, $exp, '403 rows, limit=199', pages => [199, 199, 5]);
walk_ok('/api/v1/config-repos', 1, $exp, '403 rows, limit=1');

my $r = api($t, GET => '/api/v1/config-repos');
my @rows = list_ok($r, 'no limit', total => 403);
is(scalar @rows, 50, 'the default limit is 50');
is_deeply([map { $_->{id} } @rows], [@$exp[0 .. 49]], 'the first 50');
ok($r->{json}{has_more}, 'has_more');

# The cursor is base64url of [created_at, id] of the page's last row.
$r = api($t, GET => '/api/v1/config-repos?limit=3');
my $cur = $r->{json}{next_cursor} // '';
unlike($cur, qr/[+\/=]/, 'the cursor is base64url without padding');
my $decoded = json_decode(b64url_decode($cur));
ok(ref $decoded eq 'ARRAY' && @$decoded == 2, 'the cursor decodes to a two-element array')
    or diag(b64url_decode($cur));
is($decoded->[1], $exp->[2], 'its id is the last row of the page') if ref $decoded eq 'ARRAY';

# --- keyset: rows inserted or deleted between pages ---------------------------------------------

$r = api($t, GET => '/api/v1/config-repos?limit=200');
$cur = $r->{json}{next_cursor};
my @page1 = map { $_->{id} } @{$r->{json}{data} || []};
insert_repos(500, 502, 'now()');
$r = api($t, GET => '/api/v1/config-repos?limit=200&cursor=' . esc($cur // ''));
is_deeply([map { $_->{id} } @{$r->{json}{data} || []}], [@$exp[200 .. 399]],
    'rows created after page 1 do not shift page 2');
$t->psql("DELETE FROM config_repos WHERE id = '$page1[-1]'");
$r = api($t, GET => '/api/v1/config-repos?limit=200&cursor=' . esc($cur // ''));
is_deeply([map { $_->{id} } @{$r->{json}{data} || []}], [@$exp[200 .. 399]],
    'the cursor row deleted: page 2 is unchanged');
$exp = expected();

# --- since --------------------------------------------------------------------------------------

my $since = '2026-01-01T00:01:00.000000+00:00';
my $want = expected("WHERE created_at >= '$since'");
ok(@$want > 10, 'some rows at or after since');
walk_ok('/api/v1/config-repos?since=' . esc($since), 3, $want, 'since= with limit=3');
walk_ok('/api/v1/config-repos?since=' . esc('2026-01-01T01:01:00+01:00'), 200, $want,
    'since= with another offset');

# --- limit validation ---------------------------------------------------------------------------

my $study = insert_study($t, base_rows($t), status => 'completed');
insert_trial($t, $study, optuna_trial_number => $_, primary_metric => $_ / 10) for 0 .. 4;
my @lists = ('/api/v1/config-repos', '/api/v1/clusters', '/api/v1/query-templates',
    '/api/v1/studies', '/api/v1/proposals', "/api/v1/studies/$study/trials");
for my $list (@lists) {
    for my $limit ('0', '201', '-1', 'abc', '1.5', '99999999999999999999', '1e2', '0x10') {
        $r = api($t, GET => "$list?limit=" . esc($limit));
        error_ok($r, 422, 'VALIDATION_ERROR', "$list?limit=$limit", message => qr/limit/);
    }
    for my $limit (1, 200) {
        $r = api($t, GET => "$list?limit=$limit");
        list_ok($r, "$list?limit=$limit");
    }
}

# --- tampered cursors -----------------------------------------------------------------------------

my @bad = (
    ['garbage' => 'not a cursor!!'],
    ['percent signs' => '%%%'],
    ['base64 of non-JSON' => b64url('hello world')],
    ['base64 of binary' => b64url("\xff\xfe\x00\x01")],
    ['an object' => b64url('{"created_at":"2026-01-01T00:00:00.000000+00:00","id":"x"}')],
    ['an empty array' => b64url('[]')],
    ['one element' => b64url('["2026-01-01T00:00:00.000000+00:00"]')],
    ['three elements' => b64url('["2026-01-01T00:00:00.000000+00:00","x","y"]')],
    ['numbers' => b64url('[1,2]')],
    ['nulls' => b64url('[null,null]')],
    ['a numeric id' => b64url('["2026-01-01T00:00:00.000000+00:00",5]')],
    ['a bad timestamp' => b64url('["not-a-time","0196c0de-0000-7000-8000-000000000001"]')],
    ['an impossible date' => b64url('["2026-13-45T99:00:00.000000+00:00","x"]')],
    ['a timestamp without zone' => b64url('["2026-01-01T00:00:00","x"]') ],
    ['standard base64 with padding' => MIME::Base64::encode_base64('{{{{', '')],
    ['truncated' => substr($cur // 'abcd', 0, 7)],
    ['long' => 'A' x 4000],
);
for my $list (@lists) {
    for my $case (@bad) {
        my ($what, $c) = @$case;
        $r = api($t, GET => "$list?limit=5&cursor=" . esc($c));
        error_ok($r, 422, 'VALIDATION_ERROR', "$list: cursor $what", message => qr/invalid cursor/);
    }
}
$r = api($t, GET => "/api/v1/studies/$study/trials?limit=2");
my $trial_cursor = $r->{json}{next_cursor} // '';
ok(length $trial_cursor, 'a trials cursor');
$r = api($t, GET => '/api/v1/config-repos?limit=2&cursor=' . esc($trial_cursor));
error_ok($r, 422, 'VALIDATION_ERROR', 'a trials cursor on config-repos', message => qr/invalid cursor/);
$r = api($t, GET => '/api/v1/config-repos?limit=2');
$r = api($t, GET => "/api/v1/studies/$study/trials?limit=2&cursor=" . esc($r->{json}{next_cursor} // ''));
error_ok($r, 422, 'VALIDATION_ERROR', 'a config-repos cursor on trials (primary_metric_desc)',
    message => qr/invalid cursor/);
$r = api($t, GET => "/api/v1/studies/$study/trials?limit=2&sort=optuna_trial_number_asc&cursor="
    . esc($trial_cursor));
error_ok($r, 422, 'VALIDATION_ERROR', 'a primary_metric_desc cursor with optuna_trial_number_asc',
    message => qr/invalid cursor/);

# --- other lists: filters + exactly 200 / 201 rows ------------------------------------------------

my $ca = create_cluster($t);
my $cb = create_cluster($t);
my $tpl = create_template($t);
for my $c ([$ca, 200], [$cb, 201]) {
    $t->psql("INSERT INTO proposals (id, cluster_id, template_id, config_diff, status, created_at) "
        . "SELECT $ID, '$c->[0]{id}', '$tpl->{id}', '{\"p\": {\"to\": 1}}', "
        . "CASE WHEN i % 3 = 0 THEN 'rejected' ELSE 'pending' END, "
        . "'2026-02-01 00:00:00+00'::timestamptz + (i / 4) * interval '1 millisecond' "
        . "FROM (SELECT i, md5('$c->[0]{id}' || i) AS h FROM generate_series(1, $c->[1]) AS i) s");
}
sub expected_proposals {
    my ($where) = @_;
    return [map { $_->[0] } $t->psql("SELECT id FROM proposals WHERE $where "
        . 'ORDER BY created_at DESC, id DESC')];
}
walk_ok("/api/v1/proposals?cluster_id=$ca->{id}", 200, expected_proposals("cluster_id = '$ca->{id}'"),
    'proposals of a cluster with exactly 200', pages => [200]);
walk_ok("/api/v1/proposals?cluster_id=$cb->{id}", 200, expected_proposals("cluster_id = '$cb->{id}'"),
    'proposals of a cluster with 201', pages => [200, 1]);
walk_ok("/api/v1/proposals?cluster_id=$cb->{id}&status=pending", 9,
    expected_proposals("cluster_id = '$cb->{id}' AND status = 'pending'"),
    'proposals filtered by cluster and status, limit=9');
walk_ok('/api/v1/proposals', 200, expected_proposals('true'), 'all proposals',
    pages => [200, 200, 1]);
walk_ok('/api/v1/proposals', 1, expected_proposals('true'), 'all proposals, limit=1');

my $base = base_rows($t, cluster => $ca, template => $tpl);
$t->psql("INSERT INTO studies (id, name, cluster_id, target, template_id, query_set_id, "
    . "judgment_list_id, status, optuna_study_name, created_at, search_space, objective, config) "
    . "SELECT $ID, 's' || i, '$ca->{id}', 't', '$tpl->{id}', '$base->{query_set_id}', "
    . "'$base->{judgment_list_id}', CASE WHEN i % 2 = 0 THEN 'completed' ELSE 'failed' END, "
    . "'opt-' || i, '2026-03-01 00:00:00+00'::timestamptz + (i / 3) * interval '1 microsecond', "
    . "'{}', '{}', '{}' FROM (SELECT i, md5('study' || i) AS h FROM generate_series(1, 230) AS i) s");
my $studies = [map { $_->[0] } $t->psql('SELECT id FROM studies ORDER BY created_at DESC, id DESC')];
walk_ok('/api/v1/studies', 200, $studies, 'studies, ties a microsecond apart',
    pages => [200, scalar(@$studies) - 200]);
walk_ok('/api/v1/studies', 1, $studies, 'studies, limit=1');
walk_ok('/api/v1/studies?status=failed', 13, [map { $_->[0] } $t->psql("SELECT id FROM studies "
    . "WHERE status = 'failed' ORDER BY created_at DESC, id DESC")], 'failed studies, limit=13');

responses_ok();
$t->done;
