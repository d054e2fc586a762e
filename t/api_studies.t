#!/usr/bin/perl
# GET /api/v1/studies (filters), /studies/{id}, /studies/{id}/trials (sorts,
# cursor over the chosen order), POST /studies/{id}/cancel, GET
# /studies/{id}/digest (docs/api.md). Rows are inserted with psql: the API has
# no study create.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use RelyLoop::Test;
use RelyLoop::Fixtures;

my $t = setup();

my @STUDY_FIELDS = qw(id name cluster_id target template_id query_set_id judgment_list_id
    search_space objective config status failed_reason optuna_study_name parent_study_id
    baseline_metric baseline_trial_id best_metric best_trial_id created_at started_at completed_at
    trials_summary confidence convergence);
my @TRIAL_FIELDS = qw(id study_id optuna_trial_number params primary_metric metrics duration_ms
    status error started_at ended_at is_baseline);
my @DIGEST_FIELDS = qw(id study_id narrative parameter_importance recommended_config
    suggested_followups generated_by generated_at);

my $base = base_rows($t);
my $other = base_rows($t);

# --- a study with trials ---------------------------------------------------------------

my $search_space = {'title.boost' => {type => 'float', low => 0.1, high => 10}};
my $objective = {metric => 'ndcg@10', direction => 'maximize'};
my $config = {n_trials => 20, sampler => 'tpe'};
my $sid = insert_study($t, $base, name => 'tuning-products', status => 'running',
    search_space => $search_space, objective => $objective, config => $config,
    baseline_metric => 0.4, created_at => '2026-03-01 10:00:00.5+00',
    started_at => '2026-03-01 12:00:01.123456+02');

my @metrics = (0.5, 0.7, 0.7, undef, 0.1, undef, 0.3, (0.2, 0.4, 0.6) x 4, 0.7);
my @status = ('complete', 'complete', 'complete', 'failed', 'complete', 'pruned', 'pruned',
    ('complete') x 13);
my %trial_ids;
for my $n (0 .. $#metrics) {
    $trial_ids{$n} = insert_trial($t, $sid, optuna_trial_number => $n,
        params => {'title.boost' => 0.5 + $n / 4, op => ($n % 2 ? 'AND' : 'OR')},
        primary_metric => $metrics[$n],
        metrics => defined $metrics[$n] ? {'ndcg@10' => $metrics[$n], map => 0.1} : {},
        duration_ms => 100 + $n, status => $status[$n],
        error => $status[$n] eq 'failed' ? 'search cluster timeout' : undef,
        started_at => sprintf('2026-03-01 10:%02d:00+00', $n),
        ended_at => "2026-03-01 11:" . sprintf('%02d', $n) . ':30.25+00');
}
my $ntrials = scalar @metrics;
$t->psql("UPDATE studies SET best_trial_id = '$trial_ids{1}', best_metric = 0.7 WHERE id = '$sid'");
# a trial of another study must never show up
my $sid2 = insert_study($t, $base, status => 'completed', created_at => '2026-03-02 00:00:00+00');
insert_trial($t, $sid2, optuna_trial_number => 0, primary_metric => 0.99);

# --- detail ---------------------------------------------------------------------------

my $r;
for my $i (1 .. 3) {
    $r = api($t, GET => "/api/v1/studies/$sid");
    is($r->{status}, 200, "detail → 200 (#$i)") or diag($r->{body});
}
my $s = $r->{json} || {};
has_keys($s, \@STUDY_FIELDS, 'Study');
is($s->{id}, $sid, 'id');
is($s->{name}, 'tuning-products', 'name');
is($s->{status}, 'running', 'status');
is($s->{$_}, $base->{$_}, $_) for qw(cluster_id template_id query_set_id judgment_list_id);
is($s->{target}, 'products', 'target');
is_deeply($s->{search_space}, $search_space, 'search_space');
is_deeply($s->{objective}, $objective, 'objective');
is_deeply($s->{config}, $config, 'config');
is($s->{optuna_study_name}, "optuna-$sid", 'optuna_study_name');
num_is($s->{baseline_metric}, 0.4, 'baseline_metric');
num_is($s->{best_metric}, 0.7, 'best_metric');
is($s->{best_trial_id}, $trial_ids{1}, 'best_trial_id');
ok(exists $s->{$_} && !defined $s->{$_}, "$_ null") for qw(failed_reason parent_study_id completed_at);
is($s->{created_at}, '2026-03-01T10:00:00.500000+00:00', 'created_at: UTC, six digits');
is($s->{started_at}, '2026-03-01T10:00:01.123456+00:00', 'started_at converted to UTC');
is_deeply($s->{trials_summary}, {total => $ntrials, complete => 17, failed => 1, pruned => 2,
    best_primary_metric => 0.7}, 'trials_summary counts');

for my $id (uuid7(), 'nope', 'x' x 300, 'abc%2Fdef') {
    $r = api($t, GET => "/api/v1/studies/$id");
    error_ok($r, 404, 'STUDY_NOT_FOUND', 'detail of ' . substr($id, 0, 40));
}

# --- trials -----------------------------------------------------------------------------

$r = api($t, GET => "/api/v1/studies/$sid/trials?limit=200");
my @all = list_ok($r, 'trials', total => $ntrials);
is(scalar @all, $ntrials, 'every trial of the study, none of the other');
my ($t1) = grep { ($_->{id} // '') eq $trial_ids{1} } @all;
has_keys($t1, \@TRIAL_FIELDS, 'Trial');
is($t1->{study_id}, $sid, 'trial study_id');
is($t1->{optuna_trial_number}, 1, 'optuna_trial_number');
is_deeply($t1->{params}, {'title.boost' => 0.75, op => 'AND'}, 'params');
num_is($t1->{primary_metric}, 0.7, 'primary_metric');
is_deeply($t1->{metrics}, {'ndcg@10' => 0.7, map => 0.1}, 'metrics');
is($t1->{duration_ms}, 101, 'duration_ms');
is($t1->{status}, 'complete', 'status');
ok(exists $t1->{error} && !defined $t1->{error}, 'error null');
is($t1->{started_at}, '2026-03-01T10:01:00.000000+00:00', 'started_at');
is($t1->{ended_at}, '2026-03-01T11:01:30.250000+00:00', 'ended_at');
my ($failed) = grep { ($_->{id} // '') eq $trial_ids{3} } @all;
is($failed->{error}, 'search cluster timeout', 'failed trial carries its error');
ok(!defined $failed->{primary_metric}, 'failed trial: primary_metric null');

sub metric_order_ok {
    my ($rows, $dir, $name) = @_;
    my @m = map { $_->{primary_metric} } @$rows;
    my $first_null = (grep { !defined $m[$_] } 0 .. $#m)[0];
    my @nonnull = grep { defined } @m;
    my $sorted = join(',', @nonnull) eq join(',', sort { $dir eq 'desc' ? $b <=> $a : $a <=> $b } @nonnull);
    ok($sorted, "$name: primary_metric $dir") or diag(json_encode(\@m));
    if ($dir eq 'desc') {
        ok(!defined $first_null || !grep({ defined } @m[$first_null .. $#m]), "$name: nulls last")
            or diag(json_encode(\@m));
    } else {
        # docs/api.md fixes nulls last only for the descending index; here nulls
        # must at least stay together
        my $nulls = join '', map { defined $_ ? 'v' : 'n' } @m;
        like($nulls, qr/^(n*v*|v*n*)$/, "$name: nulls together") or diag($nulls);
    }
}

my %orders;
for my $sort ('', 'primary_metric_desc', 'primary_metric_asc', 'optuna_trial_number_asc') {
    my $q = "/api/v1/studies/$sid/trials" . ($sort ? "?sort=$sort" : '');
    my $name = $sort || 'default sort';
    my $one = api($t, GET => $q . ($sort ? '&' : '?') . 'limit=200');
    my @page = list_ok($one, "$name: one page", total => $ntrials);
    for my $limit (1, 3, 7) {
        my $w = walk_pages($t, $q, $limit);
        ok(!$w->{error}, "$name, limit=$limit: walk completes") or diag($w->{error});
        is_deeply($w->{ids}, [map { $_->{id} } @page],
            "$name, limit=$limit: every trial exactly once, in the one-page order");
        is(scalar(grep { ($_->{total} // '') eq $ntrials } @{$w->{pages}}), scalar @{$w->{pages}},
            "$name, limit=$limit: X-Total-Count on every page");
    }
    $orders{$sort} = [map { $_->{id} } @page];
    if ($sort eq 'optuna_trial_number_asc') {
        is_deeply([map { $_->{optuna_trial_number} } @page], [0 .. $ntrials - 1],
            "$name: by trial number");
    } else {
        metric_order_ok(\@page, $sort eq 'primary_metric_asc' ? 'asc' : 'desc', $name);
    }
}
is_deeply($orders{''}, $orders{primary_metric_desc}, 'the default sort is primary_metric_desc');

for my $bad ('bogus', 'primary_metric', 'PRIMARY_METRIC_DESC', 'created_at') {
    $r = api($t, GET => "/api/v1/studies/$sid/trials?sort=$bad");
    error_ok($r, 422, 'VALIDATION_ERROR', "trials sort=$bad");
}
$r = api($t, GET => "/api/v1/studies/$sid/trials?limit=2");
my $cursor = $r->{json}{next_cursor} // '';
for my $other_sort ('primary_metric_asc', 'optuna_trial_number_asc') {
    $r = api($t, GET => "/api/v1/studies/$sid/trials?limit=2&sort=$other_sort&cursor=" . esc($cursor));
    error_ok($r, 422, 'VALIDATION_ERROR', "a primary_metric_desc cursor used with $other_sort",
        message => qr/invalid cursor/);
}
$r = api($t, GET => "/api/v1/studies/$sid/trials?limit=2&sort=optuna_trial_number_asc");
$cursor = $r->{json}{next_cursor} // '';
$r = api($t, GET => "/api/v1/studies/$sid/trials?limit=2&cursor=" . esc($cursor));
error_ok($r, 422, 'VALIDATION_ERROR', 'an optuna_trial_number_asc cursor used with the default',
    message => qr/invalid cursor/);

for my $id (uuid7(), 'nope', 'x' x 300) {
    $r = api($t, GET => "/api/v1/studies/$id/trials");
    error_ok($r, 404, 'STUDY_NOT_FOUND', 'trials of ' . substr($id, 0, 40));
}
my $empty = insert_study($t, $base, status => 'queued');
$r = api($t, GET => "/api/v1/studies/$empty/trials");
my @none = list_ok($r, 'trials of a study without trials', total => 0);
is(scalar @none, 0, 'empty page');
$r = api($t, GET => "/api/v1/studies/$empty");
is_deeply($r->{json}{trials_summary}, {total => 0, complete => 0, failed => 0, pruned => 0,
    best_primary_metric => undef}, 'trials_summary of a study without trials');

# --- list and filters ---------------------------------------------------------------------

my %by_status;
for my $st (qw(queued running completed cancelled failed)) {
    for my $k (1 .. 2) {
        push @{$by_status{$st}}, insert_study($t, $k == 1 ? $base : $other, status => $st,
            $st eq 'failed' ? (failed_reason => 'judgments missing') : (),
            created_at => "2026-04-0$k 00:00:00+00");
    }
}
my $total = $t->psql('SELECT count(*) FROM studies');
$r = api($t, GET => '/api/v1/studies?limit=200');
my @rows = list_ok($r, 'studies list', total => $total);
is(scalar @rows, $total, 'every study listed');
my ($row) = grep { ($_->{id} // '') eq $sid } @rows;
my %extra = map { $_ => delete $row->{$_} } qw(trial_count direction convergence_verdict);
is_deeply($row, $s, 'list row equals the detail (with trials_summary)');
is_deeply(\%extra, {trial_count => $ntrials, direction => 'maximize', convergence_verdict => undef},
    'list row: trial_count, direction, convergence_verdict');
is_deeply([map { $_->{id} } @rows],
    [map { $_->[0] } $t->psql('SELECT id FROM studies ORDER BY created_at DESC, id DESC')],
    'ordered created_at DESC, id DESC');

for my $st (qw(queued running completed cancelled failed)) {
    my $n = $t->psql("SELECT count(*) FROM studies WHERE status = '$st'");
    $r = api($t, GET => "/api/v1/studies?status=$st");
    my @got = list_ok($r, "status=$st", total => $n);
    is(scalar(grep { ($_->{status} // '') eq $st } @got), $n, "status=$st: only $st studies");
}
my $n_other = $t->psql("SELECT count(*) FROM studies WHERE cluster_id = '$other->{cluster_id}'");
$r = api($t, GET => "/api/v1/studies?cluster_id=$other->{cluster_id}");
my @got = list_ok($r, 'cluster_id filter', total => $n_other);
is(scalar(grep { ($_->{cluster_id} // '') eq $other->{cluster_id} } @got), $n_other,
    'only that cluster');
$r = api($t, GET => "/api/v1/studies?cluster_id=$other->{cluster_id}&status=failed");
@got = list_ok($r, 'cluster_id + status', total => 1);
is($got[0]{failed_reason}, 'judgments missing', 'failed_reason in the row') if @got;
$r = api($t, GET => '/api/v1/studies?cluster_id=' . uuid7());
@got = list_ok($r, 'an unknown cluster_id filters to nothing', total => 0);
is(scalar @got, 0, 'no rows');

my $n_since = $t->psql("SELECT count(*) FROM studies WHERE created_at >= '2026-04-02 00:00:00+00'");
for my $ts ('2026-04-02T00:00:00.000000+00:00', '2026-04-02T00:00:00Z',
    '2026-04-02T02:00:00.000000+02:00')
{
    $r = api($t, GET => '/api/v1/studies?since=' . esc($ts));
    @got = list_ok($r, "since=$ts (at or after)", total => $n_since);
    is(scalar @got, $n_since, "since=$ts: rows");
}
$r = api($t, GET => '/api/v1/studies?since=' . esc('2026-04-02T00:00:00.000000+00:00')
    . '&status=completed&cluster_id=' . $other->{cluster_id});
list_ok($r, 'since + status + cluster_id', total => 1);

for my $q ('status=bogus', 'status=COMPLETED', 'since=yesterday', 'since=2026-13-01T00:00:00Z',
    'since=1712000000', 'limit=0', 'limit=201', 'limit=x')
{
    $r = api($t, GET => "/api/v1/studies?$q");
    error_ok($r, 422, 'VALIDATION_ERROR', "studies?$q");
}

# --- cancel -----------------------------------------------------------------------------------

for my $st (qw(queued running)) {
    my $id = $by_status{$st}[0];
    $r = api($t, POST => "/api/v1/studies/$id/cancel");
    is($r->{status}, 200, "cancel a $st study → 200") or diag($r->{body});
    has_keys($r->{json}, \@STUDY_FIELDS, 'cancel returns a Study');
    is($r->{json}{status}, 'cancelled', "$st → cancelled");
    ts_ok($r->{json}{completed_at}, 'completed_at');
    is($t->psql("SELECT status || ':' || (completed_at IS NOT NULL) || ':' "
        . "|| (completed_at > now() - interval '1 minute') FROM studies WHERE id = '$id'"),
        'cancelled:true:true', "$st: the row is cancelled with completed_at = now");
    $r = api($t, POST => "/api/v1/studies/$id/cancel");
    error_ok($r, 409, 'INVALID_STATE_TRANSITION', "cancel the $st study again");
}
$r = api($t, POST => "/api/v1/studies/$by_status{queued}[1]/cancel", json => {});
is($r->{status}, 200, 'cancel with a {} body → 200');
for my $st (qw(completed cancelled failed)) {
    my $id = $by_status{$st}[0];
    $r = api($t, POST => "/api/v1/studies/$id/cancel");
    error_ok($r, 409, 'INVALID_STATE_TRANSITION', "cancel a $st study");
    is($t->psql("SELECT status FROM studies WHERE id = '$id'"), $st, "$st: unchanged");
}
for my $id (uuid7(), 'nope', 'x' x 300) {
    $r = api($t, POST => "/api/v1/studies/$id/cancel");
    error_ok($r, 404, 'STUDY_NOT_FOUND', 'cancel ' . substr($id, 0, 40));
}
my $racy = insert_study($t, $base, status => 'running');
my @res = $t->parallel(6, sub {
    my $x = $t->http(POST => "/api/v1/studies/$racy/cancel");
    return {status => $x->{status}, code => $x->{json}{detail}{error_code} // ''};
});
is(scalar(grep { $_->{status} == 200 } @res), 1, 'racing cancels: exactly one 200');
is(scalar(grep { $_->{status} == 409 && $_->{code} eq 'INVALID_STATE_TRANSITION' } @res), 5,
    'racing cancels: the rest 409') or diag(json_encode(\@res));

# --- digest ----------------------------------------------------------------------------------

my $did = uuid7();
$t->psql("INSERT INTO digests (id, study_id, narrative, parameter_importance, recommended_config, "
    . "suggested_followups, generated_by, generated_at) VALUES ('$did', '$sid2', "
    . "'Boosting titles helps.', '{\"title.boost\": 0.8, \"op\": 0.2}', "
    . "'{\"title.boost\": 2.5, \"op\": \"AND\"}', "
    . "'[{\"kind\": \"text\", \"rationale\": \"try fuzziness\", \"search_space\": null}, \"widen the range\"]', "
    . "'llm:test', '2026-03-03 04:05:06.7+00')");
for my $i (1 .. 2) {
    $r = api($t, GET => "/api/v1/studies/$sid2/digest");
    is($r->{status}, 200, "digest → 200 (#$i)") or diag($r->{body});
}
my $d = $r->{json} || {};
has_keys($d, \@DIGEST_FIELDS, 'Digest');
is($d->{id}, $did, 'id');
is($d->{study_id}, $sid2, 'study_id');
is($d->{narrative}, 'Boosting titles helps.', 'narrative');
is_deeply($d->{parameter_importance}, {'title.boost' => 0.8, op => 0.2}, 'parameter_importance');
is_deeply($d->{recommended_config}, {'title.boost' => 2.5, op => 'AND'}, 'recommended_config');
is_deeply($d->{suggested_followups},
    [{kind => 'text', rationale => 'try fuzziness', search_space => undef},
     {kind => 'text', rationale => 'widen the range', search_space => undef}],
    'suggested_followups: FollowupItems (a legacy string wrapped as text)');
is($d->{generated_by}, 'llm:test', 'generated_by');
is($d->{generated_at}, '2026-03-03T04:05:06.700000+00:00', 'generated_at');

$r = api($t, GET => "/api/v1/studies/$sid/digest");
error_ok($r, 404, 'DIGEST_NOT_READY', 'a study without a digest', retryable => 1);
for my $id (uuid7(), 'nope', 'x' x 300) {
    $r = api($t, GET => "/api/v1/studies/$id/digest");
    error_ok($r, 404, 'STUDY_NOT_FOUND', 'digest of ' . substr($id, 0, 40));
}

responses_ok();
$t->done;
