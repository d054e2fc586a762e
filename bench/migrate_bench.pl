#!/usr/bin/env perl
# Step 2 "converge with upstream 0023" (docs/upstream-schema.md) on a busy own
# database: the released version-1 schema (t/fixtures/relyloop-pr-v1.sql) with
# 10,000 proposals (and 1,000 studies, 10,000 trials, 1,000 digests with two
# TEXT[] follow-ups each), then `relyloop-worker migrate`, timed. Also times
# migrate on an empty database and on an upstream one, for reference.
# RELYLOOP_BENCH_PROPOSALS changes the size.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../t/lib";

use Time::HiRes qw(time);
use RelyLoop::Test;

my $n = $ENV{RELYLOOP_BENCH_PROPOSALS} || 10_000;
my $studies = int($n / 10) || 1;
my $t = RelyLoop::Test->new;
$t->start_pg;
my $root = $t->root;
my $port = $t->pg_port;

sub load {
    my ($file) = @_;
    my $out = qx{psql -X -q -o /dev/null -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $port -U postgres -d relyloop -f $file 2>&1};
    die "loading $file: $out" if $? != 0;
}

sub timed_migrate {
    my $t0 = time;
    my $out = qx{$t->{worker_bin} migrate --pg-conninfo 'host=127.0.0.1 port=$port user=postgres dbname=relyloop' 2>&1};
    my $dt = time - $t0;
    die "migrate failed: $out" if $? != 0;
    return ($dt, $out);
}

load("$root/t/fixtures/relyloop-pr-v1.sql");
my $t0 = time;
$t->psql(qq{
INSERT INTO config_repos (id, name, provider, repo_url, auth_ref)
  SELECT 'r' || i, 'repo-' || i, 'github', 'https://github.com/o/r' || i, 'pat'
  FROM generate_series(1, 10) i;
INSERT INTO clusters (id, name, engine_type, environment, base_url, auth_kind, credentials_ref,
                      config_repo_id, config_path)
  SELECT 'c' || i, 'cluster-' || i, 'elasticsearch', 'prod', 'http://es' || i, 'es_basic', 'cred',
         'r' || (1 + i % 10), 'cfg'
  FROM generate_series(1, 20) i;
INSERT INTO query_templates (id, name, engine_type, body, declared_params)
  SELECT 't' || i, 'tpl-' || i, 'elasticsearch', '{}', '{"boost": "float"}'
  FROM generate_series(1, 5) i;
INSERT INTO query_sets (id, name, cluster_id) VALUES ('qs1', 'qs', 'c1');
INSERT INTO judgment_lists (id, name, query_set_id, cluster_id, target, status)
  VALUES ('jl1', 'jl', 'qs1', 'c1', 'products', 'complete');
INSERT INTO studies (id, name, cluster_id, target, template_id, query_set_id, judgment_list_id,
                     status, optuna_study_name, search_space, objective, config)
  SELECT 's' || i, 'study ' || i, 'c' || (1 + i % 20), 'products', 't' || (1 + i % 5), 'qs1',
         'jl1', 'completed', 'o' || i, '{"boost": {"type": "float"}}', '{"metric": "ndcg@10"}', '{}'
  FROM generate_series(1, $studies) i;
INSERT INTO trials (id, study_id, optuna_trial_number, params, primary_metric, metrics, status)
  SELECT 'tr' || s || '-' || k, 's' || s, k, '{"boost": 1.5}', random(), '{"ndcg@10": 0.4}',
         'complete'
  FROM generate_series(1, $studies) s, generate_series(0, 9) k;
INSERT INTO digests (id, study_id, narrative, parameter_importance, recommended_config,
                     suggested_followups, generated_by)
  SELECT 'd' || i, 's' || i, 'narrative', '{"boost": 1.0}', '{"boost": 2.5}',
         ARRAY['Widen boost', 'Try a larger query set'], 'llm'
  FROM generate_series(1, $studies) i;
INSERT INTO proposals (id, study_id, study_trial_id, cluster_id, template_id, config_diff,
                       metric_delta, status, pr_url, pr_state, pr_merged_at, created_at)
  SELECT 'p' || i, 's' || (1 + i % $studies), 'tr' || (1 + i % $studies) || '-0',
         'c' || (1 + i % 20), 't' || (1 + i % 5), '{"boost": {"from": 1.0, "to": 2.5}}',
         '{"ndcg\@10": {"baseline": 0.4, "achieved": 0.45, "delta_pct": 12.5}}',
         CASE WHEN i % 3 = 0 THEN 'pr_merged' ELSE 'pending' END,
         CASE WHEN i % 3 = 0 THEN 'https://github.com/o/r/pull/' || i END,
         CASE WHEN i % 3 = 0 THEN 'merged' END,
         CASE WHEN i % 3 = 0 THEN now() - i * interval '1 minute' END,
         now() - i * interval '1 second'
  FROM generate_series(1, $n) i;
ANALYZE;
});
printf "loaded version 1 with %d proposals, %d studies, %d trials, %d digests in %.1f s\n",
    $n, $studies, $studies * 10, $studies, time - $t0;

my ($dt, $out) = timed_migrate();
print $out;
printf "step 2 on %d proposals: migrate took %.3f s\n", $n, $dt;
my $check = $t->psql(q{SELECT count(*) FILTER (WHERE jsonb_array_length(suggested_followups) = 2)
  FROM digests});
my $merged = $t->psql(q{SELECT count(*) FROM config_repos WHERE last_merged_proposal_id IS NOT NULL});
print "digests with two wrapped follow-ups: $check; config repos with a last merged proposal: $merged\n";

($dt) = timed_migrate();
printf "second migrate (nothing to do): %.3f s\n", $dt;

$t->psql('DROP SCHEMA public CASCADE; CREATE SCHEMA public;');
($dt) = timed_migrate();
printf "migrate on an empty database (steps 1 and 2): %.3f s\n", $dt;
$t->psql('DROP SCHEMA public CASCADE; CREATE SCHEMA public;');
load("$root/t/fixtures/relyloop-0023.sql");
($dt) = timed_migrate();
printf "migrate on an empty upstream 0023 database (own objects): %.3f s\n", $dt;
$t->stop_all;
