#!/usr/bin/perl
# POST /api/v1/_test/studies/seed-completed (docs/api.md, the values of
# upstream RelyLoop's HEAD seed): 201 in development
# with every row it creates readable through the API; 404 RESOURCE_NOT_FOUND
# in staging, production and by default, checked before anything else.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use RelyLoop::Test;
use RelyLoop::Fixtures;

my $t = setup(environment => 'development');
my $SEED = '/api/v1/_test/studies/seed-completed';

my $cluster = create_cluster($t);
my $template = create_template($t);

# --- development: 201 and the rows --------------------------------------------------------

my $r = seed_completed($t, cluster_id => $cluster->{id}, template_id => $template->{id});
is($r->{status}, 201, 'seed → 201') or diag($r->{body});
my $seed = $r->{json} || {};
is_deeply([sort keys %$seed], [qw(digest_id proposal_id study_id)], 'body {study_id, digest_id, proposal_id}');
ok(defined $seed->{$_} && length $seed->{$_}, "$_ set") for qw(study_id digest_id proposal_id);
my ($sid, $did, $pid) = @{$seed}{qw(study_id digest_id proposal_id)};
$_ //= 'missing' for $sid, $did, $pid;

$r = api($t, GET => "/api/v1/studies/$sid");
is($r->{status}, 200, 'study detail → 200') or diag($r->{body});
my $s = $r->{json} || {};
is($s->{status}, 'completed', 'study completed');
like($s->{name} // '', qr/^e2e-seed-[0-9A-Za-z-]{8}$/, 'name e2e-seed-<8 chars>');
num_is($s->{best_metric}, 0.487, 'best_metric 0.487');
is($s->{cluster_id}, $cluster->{id}, 'cluster_id');
is($s->{template_id}, $template->{id}, 'template_id');
ok(defined $s->{query_set_id} && defined $s->{judgment_list_id},
    'placeholder query set and judgment list');
ts_ok($s->{completed_at}, 'completed_at');
is_deeply($s->{trials_summary}, {total => 2, complete => 2, failed => 0, pruned => 0,
    best_primary_metric => 0.487}, 'trials_summary: two complete trials');
is_deeply($s->{search_space}, {params => {boost => {type => 'float', low => 0.5, high => 5.0,
    log => JSON::PP::false}}}, 'search_space');
is_deeply($s->{objective}, {metric => 'ndcg', k => 10, direction => 'maximize'}, 'objective');
is_deeply($s->{config}, {max_trials => 2, sampler => 'tpe', pruner => 'none'}, 'config');
is($s->{optuna_study_name}, $sid, 'optuna_study_name is the id');
ok(!defined $s->{baseline_metric} && !defined $s->{baseline_trial_id}, 'no baseline');

for my $sort ('', '?sort=primary_metric_desc') {
    $r = api($t, GET => "/api/v1/studies/$sid/trials$sort");
    my @trials = list_ok($r, "trials$sort", total => 2);
    is(scalar @trials, 2, 'two trials');
    num_is($trials[0]{primary_metric}, 0.487, 'winner first');
    num_is($trials[1]{primary_metric}, 0.412, 'then the runner-up');
    is_deeply($trials[0]{params}, {boost => 2.5}, 'winner params');
    is_deeply($trials[1]{params}, {boost => 0.8}, 'runner-up params');
    is($trials[0]{optuna_trial_number}, 0, 'winner is trial #0');
    is($trials[0]{duration_ms}, 1200, 'winner duration');
    is($trials[0]{is_baseline}, JSON::PP::false, 'not a baseline');
    is($trials[0]{id}, $s->{best_trial_id}, 'best_trial_id is the winner');
    for my $tr (@trials) {
        is_deeply([sort keys %{$tr->{metrics} || {}}], ['map', 'ndcg@10', 'precision@10'],
            'metrics ndcg@10, map, precision@10');
        is($tr->{status}, 'complete', 'complete');
        is($tr->{study_id}, $sid, 'study_id');
    }
}
$r = api($t, GET => "/api/v1/studies/$sid/trials?sort=primary_metric_asc");
my @asc = list_ok($r, 'trials ascending');
num_is($asc[0]{primary_metric}, 0.412, 'ascending: 0.412 first');

$r = api($t, GET => "/api/v1/studies/$sid/digest");
is($r->{status}, 200, 'digest → 200') or diag($r->{body});
my $d = $r->{json} || {};
is($d->{id}, $did, 'digest id is digest_id');
is($d->{study_id}, $sid, 'digest study_id');
is_deeply($d->{parameter_importance}, {boost => 1.0}, 'parameter_importance');
is_deeply($d->{recommended_config}, {boost => 2.5}, 'recommended_config');
is_deeply($d->{suggested_followups}, [
    {kind => 'text', rationale => 'Try varying `description.boost` next.', search_space => undef},
    {kind => 'text', rationale => 'Run with a larger query set to confirm the lift holds.',
        search_space => undef}], 'the two default follow-ups');
is($d->{narrative}, 'Seeded digest narrative for E2E coverage. Tuning `boost` from 1.0 to 2.5 '
    . 'lifted ndcg@10 from 0.412 (baseline) to 0.487 (+18.2%). The winning configuration is '
    . 'recommended for production rollout.', 'narrative');
is($d->{generated_by}, 'local:e2e_seed', 'generated_by');
ok(defined $d->{narrative} && !ref $d->{narrative}, 'narrative is a string');
ts_ok($d->{generated_at}, 'generated_at');

$r = api($t, GET => "/api/v1/proposals/$pid");
is($r->{status}, 200, 'proposal detail → 200') or diag($r->{body});
my $p = $r->{json} || {};
is($p->{status}, 'pending', 'pending proposal');
is($p->{study_id}, $sid, 'study_id');
is_deeply($p->{config_diff}, {boost => {from => 1.0, to => 2.5}}, 'config_diff');
is_deeply($p->{metric_delta}, {'ndcg@10' => {baseline => 0.412, achieved => 0.487,
    delta_pct => 18.2}}, 'metric_delta');
is_deeply($p->{study_summary}, {id => $sid, name => $s->{name}, status => 'completed',
    best_metric => 0.487, best_trial_id => $s->{best_trial_id},
    query_set => {id => $s->{query_set_id}, name => "e2e-seed-qs-$s->{query_set_id}", query_count => 0},
    judgment_list => {id => $s->{judgment_list_id}, name => "e2e-seed-jl-$s->{judgment_list_id}",
        status => 'complete'}},
    'study_summary with its query set and judgment list');
is($p->{study_trial_id}, $s->{best_trial_id}, 'study_trial_id is trial #0');
is($p->{is_currently_live}, JSON::PP::false, 'not live');
is(ref $p->{digest}, 'HASH', 'digest embedded');
is($p->{digest}{id}, $did, 'embedded digest id');
is_deeply($p->{digest}{recommended_config}, {boost => 2.5}, 'embedded digest content');
is($p->{cluster}{id}, $cluster->{id}, 'cluster');
is($p->{template}{id}, $template->{id}, 'template');
ok(!defined $p->{pr_job}, 'no pr_job yet');

$r = api($t, GET => "/api/v1/proposals?study_id=$sid");
my @props = list_ok($r, 'proposals of the study', total => 1);
is($props[0]{id}, $pid, 'the seeded proposal') if @props;
$r = api($t, GET => '/api/v1/studies?status=completed');
ok(grep({ ($_->{id} // '') eq $sid } list_ok($r, 'completed studies')), 'listed as completed');

# --- options --------------------------------------------------------------------------------

$r = seed_completed($t, cluster_id => $cluster->{id}, template_id => $template->{id},
    with_pending_proposal => JSON::PP::false, query_set_id => $s->{query_set_id},
    judgment_list_id => $s->{judgment_list_id});
is($r->{status}, 201, 'seed with with_pending_proposal false and given ids → 201') or diag($r->{body});
my $seed2 = $r->{json} || {};
ok(exists $seed2->{proposal_id} && !defined $seed2->{proposal_id}, 'proposal_id null');
my $sid2 = $seed2->{study_id} // 'missing';
isnt($sid2, $sid, 'a new study');
$r = api($t, GET => "/api/v1/studies/$sid2");
is($r->{json}{query_set_id}, $s->{query_set_id}, 'the given query_set_id');
is($r->{json}{judgment_list_id}, $s->{judgment_list_id}, 'the given judgment_list_id');
$r = api($t, GET => "/api/v1/proposals?study_id=$sid2");
list_ok($r, 'no proposal for it', total => 0);
$r = api($t, GET => "/api/v1/studies/$sid2/digest");
is($r->{status}, 200, 'its digest is readable');

# HEAD's optional fields: per-query metrics, follow-ups, extra trials.
my $items = [{kind => 'narrow', rationale => 'Winner sits mid-range',
    search_space => {params => {boost => {type => 'float', low => 1.5, high => 3}}}}];
$r = seed_completed($t, cluster_id => $cluster->{id}, template_id => $template->{id},
    winner_per_query => {q1 => {'ndcg@10' => 0.5}}, runner_up_per_query => {q1 => {'ndcg@10' => 0.4}},
    suggested_followups => $items, extra_trial_metrics => [0.3, 0.45]);
is($r->{status}, 201, 'seed with HEAD\'s optional fields → 201') or diag($r->{body});
my $sid3 = $r->{json}{study_id} // 'missing';
is_deeply([$t->psql("SELECT x.optuna_trial_number, x.params::text, x.primary_metric, "
    . "x.metrics::text, x.per_query_metrics::text, x.duration_ms, "
    . "extract(epoch from x.started_at - s.started_at) * 1000 "
    . "FROM trials x JOIN studies s ON s.id = x.study_id WHERE x.study_id = '$sid3' "
    . "ORDER BY x.optuna_trial_number")], [
    [0, '{"boost": 2.5}', 0.487, '{"map": 0.412, "ndcg@10": 0.487, "precision@10": 0.5}',
        '{"q1": {"ndcg@10": 0.5}}', 1200, '0.000000'],
    [1, '{"boost": 0.8}', 0.412, '{"map": 0.351, "ndcg@10": 0.412, "precision@10": 0.4}',
        '{"q1": {"ndcg@10": 0.4}}', 1100, '1300.000000'],
    [2, '{"boost": 1.5}', 0.3, '{"ndcg@10": 0.3}', '', 1100, '2500.000000'],
    [3, '{"boost": 1.6}', 0.45, '{"ndcg@10": 0.45}', '', 1100, '3700.000000']],
    'trials #0..#3 as HEAD seeds them');
$r = api($t, GET => "/api/v1/studies/$sid3/digest");
is_deeply($r->{json}{suggested_followups}, [{kind => 'narrow', rationale => 'Winner sits mid-range',
    search_space => {params => {boost => {type => 'float', low => 1.5, high => 3.0,
    log => JSON::PP::false}}}}], 'the given follow-ups, normalised on read');
for my $bad ([extra_trial_metrics => [0.487]], [extra_trial_metrics => [0.5]],
    [extra_trial_metrics => ['x']], [winner_per_query => {q1 => 1}], [suggested_followups => ['s']])
{
    $r = seed_completed($t, cluster_id => $cluster->{id}, template_id => $template->{id}, @$bad);
    validation_ok($r, $bad->[0], "seed with $bad->[0] = " . json_encode($bad->[1]));
}

for my $i (1 .. 3) {
    $r = seed_completed($t, cluster_id => $cluster->{id}, template_id => $template->{id},
        with_pending_proposal => JSON::PP::true);
    is($r->{status}, 201, "repeated seed #$i → 201");
}
is($t->psql('SELECT count(DISTINCT optuna_study_name) FROM studies'),
    $t->psql('SELECT count(*) FROM studies'), 'each seed a distinct optuna_study_name');

for my $case ([surprise => 1], [with_pending_proposal => 'yes'], [cluster_id => 5],
    [study_id => uuid7()])
{
    my ($f, $v) = @$case;
    $r = seed_completed($t, cluster_id => $cluster->{id}, template_id => $template->{id}, $f => $v);
    validation_ok($r, $f, "seed with $f = " . json_encode($v));
}
$r = seed_completed($t, template_id => $template->{id});
validation_ok($r, 'cluster_id', 'seed without cluster_id');
$r = seed_completed($t, cluster_id => $cluster->{id});
validation_ok($r, 'template_id', 'seed without template_id');
$r = api($t, POST => $SEED, body => '{', headers => {'Content-Type' => 'application/json'});
validation_ok($r, undef, 'seed with a malformed body');

$r = api($t, GET => $SEED);
error_ok($r, 405, 'METHOD_NOT_ALLOWED', 'GET on the seed route in development');
like($r->{headers}{allow} // '', qr/\bPOST\b/, 'Allow: POST');

# --- staging, production, default: the route does not exist ----------------------------------

my $studies = $t->psql('SELECT count(*) FROM studies');
for my $env ('staging', 'production', undef) {
    my $name = $env // 'default (no relyloop_environment)';
    $t->stop_nginx;
    $t->start_nginx(defined $env ? (environment => $env)
        : (directives => {relyloop_environment => undef}));
    for my $i (1 .. 2) {
        $r = seed_completed($t, cluster_id => $cluster->{id}, template_id => $template->{id});
        error_ok($r, 404, 'RESOURCE_NOT_FOUND', "$name: seed → 404 (#$i)");
    }
    $r = seed_completed($t, surprise => 1);
    error_ok($r, 404, 'RESOURCE_NOT_FOUND', "$name: seed with unknown fields → 404, not 422");
    $r = api($t, POST => $SEED, body => '{', headers => {'Content-Type' => 'application/json'});
    error_ok($r, 404, 'RESOURCE_NOT_FOUND', "$name: seed with a malformed body → 404");
    $r = api($t, GET => $SEED);
    error_ok($r, 404, 'RESOURCE_NOT_FOUND', "$name: GET seed → 404, not 405");
    $r = api($t, POST => '/api/v1/_test/anything');
    error_ok($r, 404, 'RESOURCE_NOT_FOUND', "$name: other _test routes → 404");
    $r = api($t, GET => "/api/v1/studies/$sid");
    is($r->{status}, 200, "$name: the API itself works");
}
is($t->psql('SELECT count(*) FROM studies'), $studies, 'no study created outside development');

responses_ok();
$t->done;
