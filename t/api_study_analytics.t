#!/usr/bin/perl
# The study analytics on the API (docs/analytics.md): GET /studies/{id}
# carries `confidence` and `convergence`, list rows `convergence_verdict`;
# baseline trials and NULL metrics stay out; running studies have no verdict.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use RelyLoop::Test;
use RelyLoop::Fixtures;

alarm 300;

my $t = setup();
my $base = base_rows($t);

# The example study: trials 0…11, the winner #10, the runner-up #11.
my @series = (0.40, 0.42, 0.45, 0.44, 0.47, 0.46, 0.48, 0.47, 0.481, 0.485, 0.487, 0.486);
my $sid = insert_study($t, $base, status => 'completed',
    objective => {metric => 'ndcg', k => 10, direction => 'maximize'}, best_metric => 0.487);
my @winner = (0.6, 0.5, 0.4, 0.55, 0.38);
my @runner = (0.5, 0.5, 0.45, 0.55, 0.30);
my %ids;
for my $n (0 .. $#series) {
    my %pq;
    if ($n == 10 || $n == 11) {
        my @v = $n == 10 ? @winner : @runner;
        %pq = (per_query_metrics => {map { ('q' . ($_ + 1) => {'ndcg@10' => $v[$_]}) } 0 .. 4});
    }
    $ids{$n} = insert_trial($t, $sid, optuna_trial_number => $n, primary_metric => $series[$n], %pq);
}
# Noise that must not count: a NULL-metric complete trial, a failed one, and
# an upstream baseline trial with a high metric and no per-query data.
insert_trial($t, $sid, optuna_trial_number => 12);
insert_trial($t, $sid, optuna_trial_number => 13, status => 'failed', primary_metric => 0.99);
my $baseline = insert_trial($t, $sid, optuna_trial_number => 14, primary_metric => 0.95,
    is_baseline => 'true');
$t->psql("UPDATE studies SET best_trial_id = '$ids{10}', baseline_trial_id = '$baseline' WHERE id = '$sid'");
$t->psql("INSERT INTO queries (id, query_set_id, query_text) VALUES ('q3', '$base->{query_set_id}', 'red shoes')");

my $res = api($t, GET => "/api/v1/studies/$sid");
is($res->{status}, 200, 'study detail');
my $s = $res->{json};
my $c = $s->{confidence};
is_deeply($c->{headline}, {metric => 'ndcg', value => 0.487, k => 10, n_queries => 5}, 'headline');
is_deeply($c->{ci_95}, {low => 0.41600000000000004, high => 0.56, method => 'bootstrap_n1000',
    n_samples => 5}, 'ci_95 as numpy computes it');
like($res->{body}, qr/"ci_95":\{"low":0\.41600000000000004,"high":0\.56,/, 'CI spelled as Python does');
is($c->{runner_up_gap}{classification}, 'sharp_peak', 'runner-up gap');
num_is($c->{runner_up_gap}{runner_up_metric}, 0.486, 'runner-up metric from the series');
is($c->{late_trial_stddev}{window_size}, 5, 'late-trial window');
is_deeply($c->{convergence}, {best_at_trial => 10, total_trials => 12, regime => 'late_rising'},
    'convergence regime');
my $pq = $c->{per_query_outcomes};
is_deeply([@{$pq}{qw(improved unchanged regressed comparison_against)}], [2, 2, 1, 'runner_up'],
    'outcomes against the runner-up (the baseline has no per-query data)');
is_deeply([map { $_->{query_text} } @{$pq->{top_regressors}}], ['red shoes'], 'the regressor named');
is_deeply($pq->{top_improvers}, [], 'improvers without queries rows are not listed');
like($res->{body}, qr/"confidence":\{"headline":.*"ci_95":.*"runner_up_gap":.*"late_trial_stddev":.*"convergence":\{"best_at_trial".*"per_query_outcomes":/,
    'confidence keys in order');

my $v = $s->{convergence};
is($v->{verdict}, 'too_few_trials', 'verdict: 12 usable trials');
is($v->{total_complete_trials}, 12, 'usable trials only');
is($v->{window_size}, 5, 'window');
is(scalar @{$v->{best_so_far_curve}}, 12, 'curve over usable trials');
is_deeply($v->{best_so_far_curve}[-1], {trial_number => 11, best_so_far => 0.487}, 'curve end');
like($res->{body}, qr/"convergence":\{"verdict":"too_few_trials","direction":"maximize","window_size":5,"epsilon":0\.005,"warmup_floor":50,/,
    'convergence keys in order');

# --- a long study: converged, on the list too -------------------------------------------

my $long = insert_study($t, $base, status => 'completed',
    objective => {metric => 'ndcg', k => 10, direction => 'minimize'});
$t->psql(qq{INSERT INTO trials (id, study_id, optuna_trial_number, params, metrics, status, primary_metric)
    SELECT gen_random_uuid()::text, '$long', n, '{}', '{}', 'complete', 10.0 / (n + 1)
    FROM generate_series(0, 59) n});
$res = api($t, GET => "/api/v1/studies/$long");
is($res->{json}{convergence}{verdict}, 'still_improving', 'minimize: still improving');
is($res->{json}{convergence}{direction}, 'minimize', 'direction minimize');
is($res->{json}{confidence}, undef, 'no best trial: confidence null');

my $running = insert_study($t, $base, status => 'running', objective => {metric => 'ndcg', k => 10});
insert_trial($t, $running, optuna_trial_number => $_, primary_metric => 0.5) for 0 .. 5;
is(api($t, GET => "/api/v1/studies/$running")->{json}{convergence}, undef, 'running: no verdict');

my $odd = insert_study($t, $base, status => 'completed', objective => {direction => 'sideways'});
insert_trial($t, $odd, optuna_trial_number => $_, primary_metric => 0.5) for 0 .. 5;
is(api($t, GET => "/api/v1/studies/$odd")->{json}{convergence}, undef, 'unknown direction: null');
like($t->nginx_error_log, qr/\[warn\].*convergence_invalid_direction: study \Q$odd\E/,
    'convergence_invalid_direction logged');
unlike($t->nginx_error_log, qr/convergence_invalid_direction: study \Q$sid\E/, 'not for a usable direction');

$res = api($t, GET => '/api/v1/studies?limit=100');
is($res->{status}, 200, 'list');
my %verdict = map { $_->{id} => $_->{convergence_verdict} } @{$res->{json}{data}};
is($verdict{$sid}, 'too_few_trials', 'list verdict of the example study');
is($verdict{$long}, 'still_improving', 'list verdict of the long study');
ok(exists $verdict{$running} && !defined $verdict{$running}, 'list verdict null for running');
my ($row) = grep { $_->{id} eq $sid } @{$res->{json}{data}};
is($row->{confidence}, undef, 'list rows: confidence not computed');
is($row->{convergence}{verdict}, 'too_few_trials', 'list rows: convergence as on the detail');

# Cancel answers the Study shape with the analytics.
my $q = insert_study($t, $base, status => 'queued');
$res = api($t, POST => "/api/v1/studies/$q/cancel");
is($res->{status}, 200, 'cancel');
ok(exists $res->{json}{confidence} && exists $res->{json}{convergence}, 'cancel body has the analytics keys');

$t->done;
