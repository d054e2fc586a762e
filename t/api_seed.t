#!/usr/bin/perl
# POST /api/v1/_test/studies/seed-completed (SPEC §5.2): 201 in development
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
is_deeply($s->{trials_summary}, {total => 2, complete => 2, failed => 0, pruned => 0},
    'trials_summary: two complete trials');

for my $sort ('', '?sort=primary_metric_desc') {
    $r = api($t, GET => "/api/v1/studies/$sid/trials$sort");
    my @trials = list_ok($r, "trials$sort", total => 2);
    is(scalar @trials, 2, 'two trials');
    num_is($trials[0]{primary_metric}, 0.487, 'winner first');
    num_is($trials[1]{primary_metric}, 0.412, 'then the runner-up');
    is_deeply($trials[0]{params}, {'title.boost' => 2.5}, 'winner params');
    is_deeply($trials[1]{params}, {'title.boost' => 0.8}, 'runner-up params');
    is($trials[0]{id}, $s->{best_trial_id}, 'best_trial_id is the winner');
    for my $tr (@trials) {
        is_deeply([sort keys %{$tr->{metrics} || {}}], ['map', 'ndcg@10', 'p@10'],
            'metrics ndcg@10, map, p@10');
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
is_deeply($d->{parameter_importance}, {'title.boost' => 1.0}, 'parameter_importance');
is_deeply($d->{recommended_config}, {'title.boost' => 2.5}, 'recommended_config');
is(ref $d->{suggested_followups}, 'ARRAY', 'suggested_followups is an array');
is(scalar @{$d->{suggested_followups} || []}, 2, 'two follow-ups');
is($d->{generated_by}, 'local:e2e_seed', 'generated_by');
ok(defined $d->{narrative} && !ref $d->{narrative}, 'narrative is a string');
ts_ok($d->{generated_at}, 'generated_at');

$r = api($t, GET => "/api/v1/proposals/$pid");
is($r->{status}, 200, 'proposal detail → 200') or diag($r->{body});
my $p = $r->{json} || {};
is($p->{status}, 'pending', 'pending proposal');
is($p->{study_id}, $sid, 'study_id');
is_deeply($p->{config_diff}, {'title.boost' => {from => 1.0, to => 2.5}}, 'config_diff');
is_deeply($p->{metric_delta}, {'ndcg@10' => {baseline => 0.412, achieved => 0.487,
    delta_pct => 18.2}}, 'metric_delta');
is_deeply($p->{study_summary}, {id => $sid, name => $s->{name}, status => 'completed',
    best_metric => 0.487, best_trial_id => $s->{best_trial_id}},
    'study_summary {id, name, status, best_metric, best_trial_id}');
is(ref $p->{digest}, 'HASH', 'digest embedded');
is($p->{digest}{id}, $did, 'embedded digest id');
is_deeply($p->{digest}{recommended_config}, {'title.boost' => 2.5}, 'embedded digest content');
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
