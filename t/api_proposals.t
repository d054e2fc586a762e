#!/usr/bin/perl
# POST /api/v1/proposals (manual), GET /proposals (filters), GET
# /proposals/{id}, POST /proposals/{id}/reject, and the open_pr preflight
# answers that need no GitHub (docs/api.md).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use RelyLoop::Test;
use RelyLoop::Fixtures;

# The worker must never reach a real GitHub from this test: its web URL does
# not match the repos' URLs, so any job it runs fails fast.
my $t = setup(worker => {args => ['--github-web-url', 'https://ghe.invalid',
    '--github-api-url', 'http://127.0.0.1:9']});

my @SUMMARY = qw(id study_id cluster template status pr_state pr_url metric_delta created_at);
my @DETAIL = (@SUMMARY, qw(study_summary study_trial_id config_diff pr_merged_at pr_open_error
    rejected_reason digest pr_job));

my $cluster = create_cluster($t, engine_type => 'opensearch', environment => 'staging',
    auth_kind => 'opensearch_basic');
my $cluster2 = create_cluster($t);
my $template = create_template($t);
my $template2 = create_template($t, version => 3);

my $diff = {'title.boost' => {from => 1.5, to => 2.5}, 'operator' => {to => 'AND'},
    'fuzzy' => {from => JSON::PP::false, to => JSON::PP::true}, 'size' => {from => undef, to => 20}};
my $delta = {'ndcg@10' => {baseline => 0.412, achieved => 0.487, delta_pct => 18.2},
    'map' => {baseline => undef, achieved => 0.3, delta_pct => undef}};

sub post { api($t, POST => '/api/v1/proposals', json => {@_}) }

# --- create ------------------------------------------------------------------------------

my $r = post(cluster_id => $cluster->{id}, template_id => $template->{id}, config_diff => $diff);
is($r->{status}, 201, 'manual create → 201') or diag($r->{body});
my $p = $r->{json} || {};
has_keys($p, \@DETAIL, 'ProposalDetail');
uuid7_ok($p->{id}, 'id');
is_deeply($p->{cluster}, {id => $cluster->{id}, name => $cluster->{name},
    engine_type => 'opensearch', environment => 'staging'}, 'cluster {id, name, engine_type, environment}');
is_deeply($p->{template}, {id => $template->{id}, name => $template->{name}, version => 1,
    engine_type => 'elasticsearch'}, 'template {id, name, version, engine_type}');
is($p->{status}, 'pending', 'status pending');
is_deeply($p->{config_diff}, $diff, 'config_diff kept');
ok(exists $p->{$_} && !defined $p->{$_}, "$_ null")
    for qw(study_id pr_state pr_url metric_delta study_summary study_trial_id pr_merged_at
        pr_open_error rejected_reason digest pr_job);
ts_ok($p->{created_at}, 'created_at');

$r = post(cluster_id => $cluster2->{id}, template_id => $template2->{id},
    config_diff => {'title.boost' => {to => 3}}, metric_delta => $delta);
is($r->{status}, 201, 'create with metric_delta and a to-only diff → 201') or diag($r->{body});
my $p2 = $r->{json} || {};
is_deeply($p2->{metric_delta}, $delta, 'metric_delta kept (null baseline and delta_pct)');
is($p2->{template}{version}, 3, 'template version');

$r = post(cluster_id => $cluster->{id}, template_id => $template->{id},
    config_diff => {'title.boost' => {to => 2}}, metric_delta => undef);
is($r->{status}, 201, 'metric_delta null → 201') or diag($r->{body});
my $p3 = $r->{json} || {};

# --- create errors ------------------------------------------------------------------------

my %ok = (cluster_id => $cluster->{id}, template_id => $template->{id},
    config_diff => {'title.boost' => {to => 2}});
$r = post(%ok, cluster_id => uuid7());
error_ok($r, 404, 'CLUSTER_NOT_FOUND', 'unknown cluster');
$r = post(%ok, cluster_id => 'not-an-id');
error_ok($r, 404, 'CLUSTER_NOT_FOUND', 'malformed cluster id');
$r = post(%ok, template_id => uuid7());
error_ok($r, 404, 'TEMPLATE_NOT_FOUND', 'unknown template');
$r = post(%ok, template_id => 'not-an-id');
error_ok($r, 404, 'TEMPLATE_NOT_FOUND', 'malformed template id');

for my $case (
    [config_diff => []], [config_diff => 'x'], [config_diff => undef],
    [config_diff => {'title.boost' => 2.5}],
    [config_diff => {'title.boost' => {from => 1}}],
    [config_diff => {'title.boost' => {from => 1, to => 2, extra => 3}}],
    [config_diff => {'title.boost' => []}],
    [metric_delta => []], [metric_delta => 'x'], [metric_delta => 5],
    [cluster_id => 5], [cluster_id => undef], [template_id => []],
    [status => 'pr_opened'], [study_id => uuid7()], [id => uuid7()], [extra => 1],
    )
{
    my ($field, $value) = @$case;
    $r = api($t, POST => '/api/v1/proposals', body => json_encode({%ok, $field => $value}),
        headers => {'Content-Type' => 'application/json'});
    validation_ok($r, $field, "$field = " . substr(json_encode($value), 0, 50));
}
for my $field (qw(cluster_id template_id config_diff)) {
    my %b = %ok;
    delete $b{$field};
    $r = post(%b);
    validation_ok($r, $field, "without $field");
}
for my $body ('{', '[]', '', 'null') {
    $r = api($t, POST => '/api/v1/proposals', body => $body,
        headers => {'Content-Type' => 'application/json'});
    validation_ok($r, undef, 'body ' . json_encode($body));
}
is($t->psql('SELECT count(*) FROM proposals'), 3, 'no proposal created by a rejected request');

# --- detail ----------------------------------------------------------------------------------

for my $i (1 .. 3) {
    $r = api($t, GET => "/api/v1/proposals/$p->{id}");
    is($r->{status}, 200, "detail → 200 (#$i)");
    is_deeply($r->{json}, $p, "detail equals the create response (#$i)");
}
for my $id (uuid7(), 'nope', 'x' x 300, 'abc%2Fdef', esc("1' OR '1'='1")) {
    $r = api($t, GET => "/api/v1/proposals/$id");
    error_ok($r, 404, 'PROPOSAL_NOT_FOUND', 'detail of ' . substr($id, 0, 40));
}

# --- list and filters --------------------------------------------------------------------------

# A study-backed proposal (psql), so study_id filters have something to find.
my $base = base_rows($t, cluster => $cluster2, template => $template);
my $sid = insert_study($t, $base, status => 'completed');
my $p_study = insert_proposal($t, study_id => $sid, cluster_id => $cluster2->{id},
    template_id => $template->{id}, status => 'pr_opened', pr_state => 'open',
    pr_url => 'https://github.com/acme/cfg/pull/7');
my $p_merged = insert_proposal($t, cluster_id => $cluster->{id}, template_id => $template2->{id},
    status => 'pr_merged', pr_state => 'merged', pr_url => 'https://github.com/acme/cfg/pull/8',
    pr_merged_at => '2026-05-01 10:00:00+00');

$r = api($t, GET => '/api/v1/proposals');
my @rows = list_ok($r, 'list', total => 5);
is(scalar @rows, 5, 'all five listed');
my ($row) = grep { ($_->{id} // '') eq $p->{id} } @rows;
has_keys($row, \@SUMMARY, 'ProposalSummary');
is_deeply({map { $_ => $row->{$_} } @SUMMARY}, {map { $_ => $p->{$_} } @SUMMARY},
    'summary fields equal the detail');
($row) = grep { ($_->{id} // '') eq $p_study } @rows;
is($row->{study_id}, $sid, 'study-backed proposal: study_id');
is($row->{pr_url}, 'https://github.com/acme/cfg/pull/7', 'pr_url');
is($row->{pr_state}, 'open', 'pr_state');
is_deeply([map { $_->{id} } @rows],
    [map { $_->[0] } $t->psql('SELECT id FROM proposals ORDER BY created_at DESC, id DESC')],
    'ordered created_at DESC, id DESC');

for my $case (
    ['status=pending', 3], ['status=pr_opened', 1], ['status=pr_merged', 1], ['status=rejected', 0],
    ["cluster_id=$cluster->{id}", 3], ["cluster_id=$cluster2->{id}", 2],
    ["study_id=$sid", 1], ['study_id=' . uuid7(), 0],
    ["template_id=$template2->{id}", 2], ["template_id=$template->{id}", 3],
    ["status=pending&cluster_id=$cluster->{id}", 2],
    ["status=pending&cluster_id=$cluster->{id}&template_id=$template->{id}", 2],
    ["cluster_id=$cluster2->{id}&study_id=$sid&status=pr_opened&template_id=$template->{id}", 1],
    )
{
    my ($q, $n) = @$case;
    $r = api($t, GET => "/api/v1/proposals?$q");
    my @got = list_ok($r, "proposals?$q", total => $n);
    is(scalar @got, $n, "proposals?$q: $n rows");
}
for my $q ('status=open', 'status=PENDING', 'limit=0', 'limit=1000', 'cursor=@@@') {
    $r = api($t, GET => "/api/v1/proposals?$q");
    error_ok($r, 422, 'VALIDATION_ERROR', "proposals?$q");
}

$r = api($t, GET => "/api/v1/proposals/$p_merged");
is($r->{json}{pr_merged_at}, '2026-05-01T10:00:00.000000+00:00', 'pr_merged_at formatted');
is($r->{json}{status}, 'pr_merged', 'status pr_merged');

# --- reject -------------------------------------------------------------------------------------

$r = api($t, POST => "/api/v1/proposals/$p->{id}/reject", json => {reason => 'not convincing'});
is($r->{status}, 200, 'reject with a reason → 200') or diag($r->{body});
has_keys($r->{json}, \@DETAIL, 'reject returns a ProposalDetail');
is($r->{json}{status}, 'rejected', 'status rejected');
is($r->{json}{rejected_reason}, 'not convincing', 'rejected_reason');
is($t->psql("SELECT status || ':' || rejected_reason FROM proposals WHERE id = '$p->{id}'"),
    'rejected:not convincing', 'the row is rejected');
$r = api($t, POST => "/api/v1/proposals/$p->{id}/reject", json => {});
error_ok($r, 409, 'INVALID_STATE_TRANSITION', 'reject a rejected proposal');

$r = api($t, POST => "/api/v1/proposals/$p2->{id}/reject", json => {reason => undef});
is($r->{status}, 200, 'reject with {"reason": null} → 200') or diag($r->{body});
ok(exists $r->{json}{rejected_reason} && !defined $r->{json}{rejected_reason}, 'no reason stored');

$r = api($t, POST => "/api/v1/proposals/$p3->{id}/reject", json => {reason => 'r' x 501});
validation_ok($r, 'reason', 'reason of 501 characters');
$r = api($t, POST => "/api/v1/proposals/$p3->{id}/reject", json => {reason => 5});
validation_ok($r, 'reason', 'reason not a string');
$r = api($t, POST => "/api/v1/proposals/$p3->{id}/reject", json => {why => 'x'});
validation_ok($r, 'why', 'unknown field');
$r = api($t, POST => "/api/v1/proposals/$p3->{id}/reject", body => '{',
    headers => {'Content-Type' => 'application/json'});
validation_ok($r, undef, 'malformed body');
is($t->psql("SELECT status FROM proposals WHERE id = '$p3->{id}'"), 'pending',
    'invalid rejects left it pending');
$r = api($t, POST => "/api/v1/proposals/$p3->{id}/reject",
    body => JSON::PP->new->utf8->encode({reason => "\x{e9}" x 500}),
    headers => {'Content-Type' => 'application/json'});
is($r->{status}, 200, 'reason of 500 characters (non-ASCII, 1000 bytes) → 200') or diag($r->{body});
my $reason = $r->{json}{rejected_reason} // '';
utf8::decode($reason);
is($reason, "\x{e9}" x 500, 'stored whole');

for my $st ([$p_study, 'pr_opened'], [$p_merged, 'pr_merged']) {
    $r = api($t, POST => "/api/v1/proposals/$st->[0]/reject", json => {});
    error_ok($r, 409, 'INVALID_STATE_TRANSITION', "reject a $st->[1] proposal");
}
for my $id (uuid7(), 'nope', 'x' x 300) {
    $r = api($t, POST => "/api/v1/proposals/$id/reject", json => {});
    error_ok($r, 404, 'PROPOSAL_NOT_FOUND', 'reject ' . substr($id, 0, 40));
}

my $racy = insert_proposal($t, cluster_id => $cluster->{id}, template_id => $template->{id});
my @res = $t->parallel(6, sub {
    my $x = $t->http(POST => "/api/v1/proposals/$racy/reject", json => {reason => "r$_[0]"});
    return {status => $x->{status}, code => $x->{json}{detail}{error_code} // ''};
});
is(scalar(grep { $_->{status} == 200 } @res), 1, 'racing rejects: exactly one 200');
is(scalar(grep { $_->{status} == 409 && $_->{code} eq 'INVALID_STATE_TRANSITION' } @res), 5,
    'racing rejects: the rest 409') or diag(json_encode(\@res));

# --- open_pr preflight (docs/api.md) and its body tolerance --------------------------------------

my $nocfg = insert_proposal($t, cluster_id => $cluster->{id}, template_id => $template->{id});
for my $how (['no body', ()], ['{}', json => {}],
    ['Content-Type and an empty body', body => '', headers => {'Content-Type' => 'application/json'}])
{
    my ($name, @opts) = @$how;
    $r = api($t, POST => "/api/v1/proposals/$nocfg/open_pr", @opts);
    error_ok($r, 422, 'CLUSTER_HAS_NO_CONFIG_REPO', "open_pr with $name: the preflight, not a body error");
}
# a body must say it is JSON (docs/api.md); only a body-less POST may omit the type
$r = api($t, POST => "/api/v1/proposals/$nocfg/open_pr", body => '{}');
error_ok($r, 415, 'UNSUPPORTED_MEDIA_TYPE', 'open_pr with {} and no Content-Type');
$r = api($t, POST => '/api/v1/proposals/' . uuid7() . '/open_pr');
error_ok($r, 404, 'PROPOSAL_NOT_FOUND', 'open_pr of an unknown proposal');
$r = api($t, POST => "/api/v1/proposals/$p->{id}/open_pr", json => {});
error_ok($r, 409, 'INVALID_STATE_TRANSITION', 'open_pr of a rejected proposal');

my $empty_pat_repo = create_repo($t, auth_ref => 'blank-pat');
$t->write_secret('blank-pat', '');    # a file of whitespace passes the stat-only check
my $bound = create_cluster($t);
api($t, PATCH => "/api/v1/clusters/$bound->{id}", json => {config_repo_id => $empty_pat_repo->{id},
    config_path => 'relevance'});
my $blank = insert_proposal($t, cluster_id => $bound->{id}, template_id => $template->{id});
$r = api($t, POST => "/api/v1/proposals/$blank/open_pr");
error_ok($r, 503, 'GITHUB_NOT_CONFIGURED', 'open_pr with an empty PAT file');
unlink $t->dir . '/secrets/blank-pat';
$r = api($t, POST => "/api/v1/proposals/$blank/open_pr", json => {});
error_ok($r, 503, 'GITHUB_NOT_CONFIGURED', 'open_pr with the PAT file gone');
is($t->psql("SELECT status || ':' || coalesce(pr_open_error, 'NULL') FROM proposals "
    . "WHERE id = '$blank'"), 'pending:NULL', 'the preflight never changes the proposal row');

$t->write_secret('blank-pat', "ghp_cccccccccccccccccccccccccccccccccccccccc\n");
$r = api($t, POST => "/api/v1/proposals/$blank/open_pr");
is($r->{status}, 202, 'open_pr → 202 once the PAT is there (read fresh)') or diag($r->{body});
is_deeply($r->{json}, {proposal_id => $blank, status => 'pending',
    message => 'PR creation queued'}, '202 body');
$r = api($t, GET => "/api/v1/proposals/$blank");
has_keys($r->{json}{pr_job}, [qw(state attempts last_event last_error created_at started_at
    finished_at)], 'pr_job after open_pr');
like($r->{json}{pr_job}{state} // '', qr/^(queued|running|succeeded|failed)$/, 'pr_job state');

$t->stop_worker;
my $queued = insert_proposal($t, cluster_id => $bound->{id}, template_id => $template->{id});
$r = api($t, POST => "/api/v1/proposals/$queued/open_pr");
error_ok($r, 503, 'QUEUE_UNAVAILABLE', 'open_pr with the worker down');
is($t->psql("SELECT status || ':' || coalesce(pr_open_error, 'NULL') || ':' "
    . "|| (SELECT count(*) FROM pr_jobs WHERE proposal_id = '$queued') FROM proposals "
    . "WHERE id = '$queued'"), 'pending:NULL:0', 'no job and no change after QUEUE_UNAVAILABLE');

responses_ok();
$t->done;
