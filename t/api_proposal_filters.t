#!/usr/bin/perl
# GET /api/v1/proposals filters and sorts (docs/api.md, "Proposals"):
# status incl. superseded, include_superseded, source, is_last_merged, sort
# with sort-bound cursors, the boolean spellings, exact has_more at limit=200,
# unknown parameters refused; POST /proposals/{id}/reinstate (superseded →
# pending in one conditional update); a manual proposal's flat metric_delta.
#
# 250 proposals inserted by SQL: five statuses, four pr_states (NULL among
# them), study-backed and manual, two clusters, created_at shared by pairs
# (the id breaks the tie), one of them the live merge of a config repo. The
# expected pages are computed here from the rows, not by SQL.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::MD5 ();
use Test::More;
use RelyLoop::Test;
use RelyLoop::Fixtures;

my $t = setup();

my $base = base_rows($t);
my $c2 = create_cluster($t);
my $repo = create_repo($t);
my $study = insert_study($t, $base, status => 'completed');

my @STATUS = qw(pending pr_opened pr_merged rejected superseded);
$t->psql("INSERT INTO proposals (id, study_id, cluster_id, template_id, config_diff, status, "
    . "pr_state, created_at) SELECT md5('p' || i)::uuid::text, "
    . "CASE WHEN i % 3 = 0 THEN NULL ELSE " . sql_quote($study) . " END, "
    . "CASE WHEN i % 2 = 0 THEN " . sql_quote($base->{cluster_id}) . " ELSE "
    . sql_quote($c2->{id}) . " END, " . sql_quote($base->{template_id}) . ", "
    . "'{\"a\": {\"to\": 1}}'::jsonb, (ARRAY['pending', 'pr_opened', 'pr_merged', 'rejected', "
    . "'superseded'])[i % 5 + 1], (ARRAY[NULL, 'open', 'closed', 'merged'])[i % 4 + 1], "
    . "'2026-01-01 00:00:00+00'::timestamptz + (i / 2) * interval '1 second' "
    . "FROM generate_series(1, 250) AS i");
my $live = $t->psql("SELECT md5('p' || 7)::uuid::text");    # 7 % 5 = 2: pr_merged
$t->psql("UPDATE config_repos SET last_merged_proposal_id = " . sql_quote($live)
    . " WHERE id = " . sql_quote($repo->{id}));

sub md5_uuid {
    my $h = Digest::MD5::md5_hex($_[0]);
    return join '-', substr($h, 0, 8), substr($h, 8, 4), substr($h, 12, 4), substr($h, 16, 4),
        substr($h, 20, 12);
}
is($live, md5_uuid('p7'), 'ids computed as PostgreSQL does');
my @ROWS;
for my $i (1 .. 250) {
    my $id = md5_uuid("p$i");
    push @ROWS, {id => $id, status => $STATUS[$i % 5], pr_state => (undef, 'open', 'closed',
        'merged')[$i % 4], manual => $i % 3 == 0, cluster => $i % 2 == 0 ? $base->{cluster_id}
        : $c2->{id}, t => int($i / 2), live => $id eq $live};
}
is(scalar @ROWS, 250, '250 rows');

# The expected ids of a query: filter, then the order (key ASC NULLS FIRST or
# DESC NULLS LAST, then id DESC).
sub expect {
    my (%q) = @_;
    my @r = @ROWS;
    if (defined $q{status}) {
        @r = grep { $_->{status} eq $q{status} } @r;
    } elsif (!$q{include_superseded}) {
        @r = grep { $_->{status} ne 'superseded' } @r;
    }
    @r = grep { $_->{manual} == ($q{source} eq 'manual' ? 1 : 0) } @r if defined $q{source};
    @r = grep { $_->{live} == $q{is_last_merged} } @r if defined $q{is_last_merged};
    @r = grep { $_->{cluster} eq $q{cluster_id} } @r if defined $q{cluster_id};
    my ($key, $dir) = split /:/, $q{sort} // 'created_at:desc';
    my $k = $key eq 'created_at' ? 't' : $key;
    my $cmp = sub {
        my ($x, $y) = @_;
        my ($a1, $b1) = ($x->{$k}, $y->{$k});
        my $c;
        if (!defined $a1 || !defined $b1) {
            $c = defined $a1 ? 1 : defined $b1 ? -1 : 0;    # NULL is smallest: first asc, last desc
        } else {
            $c = $k eq 't' ? $a1 <=> $b1 : $a1 cmp $b1;
        }
        $c = -$c if $dir eq 'desc';
        return $c || $y->{id} cmp $x->{id};
    };
    return [map { $_->{id} } sort { $cmp->($a, $b) } @r];
}

sub query_string {
    my (%q) = @_;
    my %p = %q;
    $p{include_superseded} = $q{include_superseded} ? 'true' : 'false'
        if exists $q{include_superseded};
    $p{is_last_merged} = $q{is_last_merged} ? 'true' : 'false' if exists $q{is_last_merged};
    return join '&', map { "$_=" . esc($p{$_}) } sort keys %p;
}

sub walk_ok {
    my ($q, $limit) = @_;
    my $qs = query_string(%$q);
    my $want = expect(%$q);
    my $w = walk_pages($t, "/api/v1/proposals?$qs", $limit);
    my $name = "?$qs (limit $limit)";
    ok(!$w->{error}, "$name: the walk completes") or diag($w->{error});
    my %seen;
    my @dup = grep { $seen{$_}++ } @{$w->{ids}};
    ok(!@dup, "$name: no row twice") or diag("@dup[0 .. ($#dup > 4 ? 4 : $#dup)]");
    is_deeply($w->{ids}, $want, "$name: every matching row once, in order (" . scalar(@$want)
        . ')') or diag("got " . scalar(@{$w->{ids}}) . " ids");
    my @bad_total = grep { ($_->{total} // '') ne scalar @$want } @{$w->{pages}};
    ok(!@bad_total, "$name: X-Total-Count " . scalar(@$want) . ' on every page')
        or diag('got ' . ($bad_total[0]{total} // 'none'));
}

# --- filters alone and combined ----------------------------------------------------

my @cases = (
    {},
    {status => 'superseded'},
    {status => 'pending'},
    {status => 'pending', include_superseded => 1},
    {include_superseded => 1},
    {include_superseded => 0},
    {source => 'study'},
    {source => 'manual'},
    {is_last_merged => 1},
    {is_last_merged => 0},
    {cluster_id => $c2->{id}},
    {source => 'manual', include_superseded => 1, cluster_id => $base->{cluster_id}},
    {status => 'superseded', source => 'study'},
    {status => 'pr_merged', is_last_merged => 1},
    {status => 'pr_merged', is_last_merged => 0, source => 'manual'},
);
for my $sort (qw(created_at:asc created_at:desc status:asc status:desc pr_state:asc pr_state:desc)) {
    push @cases, {sort => $sort}, {sort => $sort, include_superseded => 1},
        {sort => $sort, source => 'manual', include_superseded => 1, cluster_id => $c2->{id}};
}
walk_ok($_, 13) for @cases;
walk_ok({sort => 'pr_state:asc', include_superseded => 1}, 1);
walk_ok({sort => 'status:desc'}, 200);

# --- has_more at limit=200 ------------------------------------------------------------

my $r = api($t, GET => '/api/v1/proposals?limit=200');
my @rows = list_ok($r, 'limit=200 over exactly 200 rows', total => 200);
is(scalar @rows, 200, '200 rows');
ok(!$r->{json}{has_more} && !defined $r->{json}{next_cursor}, 'has_more false at exactly 200');
$r = api($t, GET => '/api/v1/proposals?limit=200&include_superseded=true');
@rows = list_ok($r, 'limit=200 over 250 rows', total => 250);
ok($r->{json}{has_more} && defined $r->{json}{next_cursor}, 'has_more true over 200');
$r = api($t, GET => '/api/v1/proposals?limit=200&include_superseded=true&sort=status:asc');
list_ok($r, 'sorted, limit=200 over 250 rows', total => 250);
ok($r->{json}{has_more}, 'sorted: has_more true over 200');

# --- the boolean spellings ------------------------------------------------------------------

for my $v (qw(true TRUE 1 yes Yes on t Y)) {
    $r = api($t, GET => "/api/v1/proposals?include_superseded=$v&limit=1");
    list_ok($r, "include_superseded=$v", total => 250);
    $r = api($t, GET => "/api/v1/proposals?is_last_merged=$v");
    my @l = list_ok($r, "is_last_merged=$v", total => 1);
    is($l[0]{id}, $live, "is_last_merged=$v: the live proposal");
    ok($l[0]{is_currently_live}, "is_last_merged=$v: is_currently_live");
}
for my $v (qw(false False 0 no off f N)) {
    $r = api($t, GET => "/api/v1/proposals?include_superseded=$v&limit=1");
    list_ok($r, "include_superseded=$v", total => 200);
    $r = api($t, GET => "/api/v1/proposals?is_last_merged=$v&include_superseded=1&limit=1");
    list_ok($r, "is_last_merged=$v", total => 249);
}

# --- bad values: 422 naming the parameter -----------------------------------------------

for my $case (
    [status => 'bogus'], [status => 'Pending'], [source => 'upstream'], [source => 'STUDY'],
    [include_superseded => 'maybe'], [include_superseded => '2'], [is_last_merged => 'truth'],
    [sort => 'status'], [sort => 'id:asc'], [sort => 'status:up'], [sort => 'created_at:DESC'],
    [limit => 201], [limit => 0], [since => 'yesterday'], [bogus => 1], [q => 'search'],
    [order => 'asc'],
    )
{
    my ($p, $v) = @$case;
    $r = api($t, GET => "/api/v1/proposals?$p=" . esc($v));
    validation_ok($r, qr/\Qquery.$p\E:/, "?$p=$v");
}
$r = api($t, GET => '/api/v1/proposals?include_superseded=maybe');
like($r->{json}{detail}{message} // '', qr/query\.include_superseded: Input should be a valid boolean/,
    'boolean message');

# --- cursors are bound to their sort --------------------------------------------------------

my %cursor;
for my $sort ('', 'status:asc', 'pr_state:desc', 'created_at:asc') {
    $r = api($t, GET => '/api/v1/proposals?limit=3' . ($sort ? "&sort=$sort" : ''));
    $cursor{$sort} = $r->{json}{next_cursor};
    ok(defined $cursor{$sort}, "a cursor for sort '$sort'");
}
for my $case (
    ['status:asc', 'pr_state:desc', 'status:asc'], ['', 'status:asc', 'created_at:desc'],
    ['status:asc', '', 'status:asc'], ['created_at:asc', 'created_at:desc', 'created_at:asc'],
    ['', 'created_at:asc', 'created_at:desc'],
    )
{
    my ($from, $to, $issued) = @$case;
    $r = api($t, GET => '/api/v1/proposals?limit=3&cursor=' . esc($cursor{$from})
        . ($to ? "&sort=$to" : ''));
    error_ok($r, 422, 'VALIDATION_ERROR', "cursor of '$from' used with '$to'",
        message => qr/query\.cursor: invalid cursor: issued for sort \Q$issued\E/);
}
# created_at:desc is the plain order: its cursors are the plain ones.
$r = api($t, GET => '/api/v1/proposals?limit=3&sort=created_at:desc&cursor=' . esc($cursor{''}));
list_ok($r, 'plain cursor with sort=created_at:desc');
for my $bad (b64url('[null, "x"]'), b64url('["open", 5, "pr_state:desc"]'),
    b64url('["not a time", "x", "created_at:asc"]'), 'garbage!')
{
    $r = api($t, GET => "/api/v1/proposals?sort=pr_state:desc&cursor=" . esc($bad));
    validation_ok($r, qr/query\.cursor: invalid cursor/, "tampered sorted cursor $bad");
}

# --- reinstate ------------------------------------------------------------------------------

my @superseded = grep { $_->{status} eq 'superseded' } @ROWS;
my $sid = $superseded[0]{id};
$t->psql("UPDATE proposals SET pr_open_error = 'kept', rejected_reason = 'kept too' WHERE id = "
    . sql_quote($sid));
my $before = api($t, GET => "/api/v1/proposals/$sid")->{json};
is($before->{status}, 'superseded', 'GET serves status superseded');
$r = api($t, POST => "/api/v1/proposals/$sid/reinstate", json => {});
is($r->{status}, 200, 'reinstate superseded → 200') or diag($r->{body});
is($r->{json}{status}, 'pending', 'now pending');
is($r->{json}{$_}, $before->{$_}, "$_ untouched")
    for qw(pr_open_error rejected_reason pr_state pr_url created_at metric_delta);
is($t->psql('SELECT status FROM proposals WHERE id = ' . sql_quote($sid)), 'pending',
    'pending in the database');
like($t->nginx_error_log, qr/chain_proposal_reinstated \{"proposal_id":"\Q$sid\E","study_id":[^,]+,"prior_status":"superseded"\}/,
    'chain_proposal_reinstated logged');
$r = api($t, POST => "/api/v1/proposals/$sid/reinstate");
error_ok($r, 409, 'INVALID_STATE_TRANSITION', 'reinstate pending → 409',
    message => qr/^proposal \Q$sid\E is in status 'pending'; only 'superseded' proposals can be reinstated$/);
my ($merged) = grep { $_->{status} eq 'pr_merged' } @ROWS;
$r = api($t, POST => "/api/v1/proposals/$merged->{id}/reinstate", json => {any => 'thing'});
error_ok($r, 409, 'INVALID_STATE_TRANSITION', 'reinstate pr_merged → 409',
    message => qr/in status 'pr_merged'/);
$r = api($t, POST => '/api/v1/proposals/' . uuid7() . '/reinstate');
error_ok($r, 404, 'PROPOSAL_NOT_FOUND', 'reinstate unknown → 404', message => qr/^proposal \S+ not found$/);
$r = api($t, POST => "/api/v1/proposals/$superseded[1]{id}/reinstate", body => '[1]',
    headers => {'Content-Type' => 'application/json'});
validation_ok($r, undef, 'reinstate with a non-object body');

for my $round (1 .. 3) {
    my $id = $superseded[1 + $round]{id};
    my @res = $t->parallel(6, sub {
        my $x = $t->http(POST => "/api/v1/proposals/$id/reinstate", json => {});
        return {status => $x->{status}, code => $x->{json}{detail}{error_code} // ''};
    });
    is(scalar(grep { $_->{status} == 200 } @res), 1, "concurrent reinstates (#$round): one 200");
    is(scalar(grep { $_->{status} == 409 && $_->{code} eq 'INVALID_STATE_TRANSITION' } @res), 5,
        "concurrent reinstates (#$round): the rest 409") or diag(json_encode(\@res));
}

# open_pr and reject refuse superseded rows.
$r = api($t, POST => "/api/v1/proposals/$superseded[10]{id}/open_pr");
error_ok($r, 409, 'INVALID_STATE_TRANSITION', 'open_pr on superseded → 409');
$r = api($t, POST => "/api/v1/proposals/$superseded[10]{id}/reject", json => {});
error_ok($r, 409, 'INVALID_STATE_TRANSITION', 'reject on superseded → 409');

# --- manual proposal with the flat metric_delta ------------------------------------------

for my $delta ({metric => 'ndcg@10', baseline => 0.412, achieved => 0.487, delta_pct => 18.2},
    {'ndcg@10' => {baseline => 0.412, achieved => 0.487, delta_pct => 18.2}},
    {anything => [1, {x => undef}], note => 'free form'}, {})
{
    $r = api($t, POST => '/api/v1/proposals', json => {cluster_id => $base->{cluster_id},
        template_id => $base->{template_id}, config_diff => {'title.boost' => {to => 2}},
        metric_delta => $delta});
    is($r->{status}, 201, 'manual proposal with metric_delta ' . json_encode($delta) . ' → 201')
        or diag($r->{body});
    is_deeply($r->{json}{metric_delta}, $delta, '... served back unchanged');
    my $g = api($t, GET => "/api/v1/proposals/$r->{json}{id}");
    is_deeply($g->{json}{metric_delta}, $delta, '... and on GET');
}
for my $bad (5, 'x', [1]) {
    $r = api($t, POST => '/api/v1/proposals', json => {cluster_id => $base->{cluster_id},
        template_id => $base->{template_id}, config_diff => {'a' => {to => 2}},
        metric_delta => $bad});
    validation_ok($r, 'metric_delta', 'metric_delta ' . json_encode($bad));
}

responses_ok();
$t->done;
