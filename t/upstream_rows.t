#!/usr/bin/perl
# Rows written the way upstream RelyLoop writes them (docs/upstream-schema.md),
# inserted with psql into an upstream 0023 database: a template named
# "product search" with hint aliases, a baseline trial, JSONB follow-ups of
# every kind plus junk, a superseded proposal, a 0-byte params file — each
# served by the API and, where it matters, opened as a PR.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use RelyLoop::PipelineStack;
use RelyLoop::Fixtures qw(api uuid7 sql_quote sql_json);
use RelyLoop::Test qw(json_encode);

my $s = RelyLoop::PipelineStack->new(db_kind => 'upstream');
my $t = $s->t;
my $git = $s->git;
my $gh = $s->gh;
is($t->psql('SELECT version_num FROM alembic_version'), '0023', 'an upstream database at 0023');

my $REPO = 'acme/upstream-config';
my $repo = $s->repo($REPO, files => {
    'clusters/prod/product search.params.json' => qq({\n  "boost": 1.0,\n  "size": 10\n}\n),
    'clusters/empty/product search.params.json' => '',
});
my $cluster = $s->cluster($repo, 'clusters/prod');
my $empty_cluster = $s->cluster($repo, 'clusters/empty');

# --- the template, as upstream creates it -------------------------------------------
my $tid = uuid7();
$t->psql('INSERT INTO query_templates (id, name, engine_type, body, declared_params, version) '
    . "VALUES ('$tid', 'product search', 'elasticsearch', '{\"query\": {}}', "
    . sql_json({boost => 'number', size => {type => ' Integer '}, mode => {type => 'free form'}})
    . ', 1)');
my $r = api($t, GET => "/api/v1/query-templates/$tid");
is($r->{status}, 200, 'template with a space in its name → 200');
is($r->{json}{name}, 'product search', 'served as stored');

# --- a study from the seed endpoint, then what upstream's workers add -----------------
$r = api($t, POST => '/api/v1/_test/studies/seed-completed',
    json => {cluster_id => $cluster->{id}, template_id => $tid});
is($r->{status}, 201, 'seed on an upstream database → 201') or diag($r->{body});
my ($sid, $pid) = @{$r->{json} || {}}{qw(study_id proposal_id)};
$sid //= 'missing';
$pid //= 'missing';

my $base_tid = uuid7();
my $swap_to = uuid7();
my @stored = (
    {kind => 'text', rationale => 'Try varying `description.boost` next.', search_space => undef},
    {kind => 'narrow', rationale => 'Winner sits mid-range',
        search_space => {params => {boost => {type => 'float', low => 1.5, high => 3}}}},
    {kind => 'widen', rationale => 'Try more sizes',
        search_space => {params => {size => {type => 'int', low => 5, high => 50}}}},
    {kind => 'swap_template', rationale => 'A phrase template may do better',
        template_id => $swap_to,
        search_space => {params => {boost => {type => 'float', low => 0.5, high => 2, log => JSON::PP::true}}}},
    {kind => 'widen', rationale => 'Pick an operator',
        search_space => {params => {op => {type => 'categorical', choices => ['AND', 'OR']}}}},
    {kind => 'narrow', rationale => 'Normalise the query',
        search_space => {params => {norm => {type => 'normalizer_pipeline', steps => ['lowercase', 'trim']}}}},
    'a legacy string',
    {kind => 'narrow', rationale => 'Too wide', search_space => {params => {boost => {type => 'float',
        low => 3, high => 1}}}},
    {kind => 'text', rationale => 'extra key', search_space => undef, confidence => 0.9},
    {kind => 'narrow', rationale => '  ', search_space => {}},
    42,
    [1, 2],
);
$t->psql('UPDATE digests SET suggested_followups = ' . sql_json(\@stored) . " WHERE study_id = '$sid';\n"
    . 'INSERT INTO trials (id, study_id, optuna_trial_number, params, primary_metric, metrics, status, '
    . "is_baseline) VALUES ('$base_tid', '$sid', 2, '{\"boost\": 1.0}', 0.9, '{\"ndcg\@10\": 0.9}', "
    . "'complete', true);\n"
    . "UPDATE studies SET baseline_trial_id = '$base_tid', baseline_metric = 0.9 WHERE id = '$sid';");

$r = api($t, GET => "/api/v1/studies/$sid");
is($r->{status}, 200, 'study with a baseline trial → 200');
is($r->{json}{baseline_trial_id}, $base_tid, 'baseline_trial_id');
is_deeply($r->{json}{trials_summary}, {total => 2, complete => 2, failed => 0, pruned => 0,
    best_primary_metric => 0.487}, 'trials_summary leaves the baseline trial out');
$r = api($t, GET => "/api/v1/studies?limit=200");
my ($row) = grep { $_->{id} eq $sid } @{$r->{json}{data} || []};
is($row->{trial_count}, 2, 'list row trial_count leaves it out too');
$r = api($t, GET => "/api/v1/studies/$sid/trials?sort=optuna_trial_number_asc");
my @trials = @{$r->{json}{data} || []};
is(scalar @trials, 3, 'GET trials lists all three');
is_deeply([map { $_->{is_baseline} ? 1 : 0 } @trials], [0, 0, 1], 'the baseline one with is_baseline true');

$r = api($t, GET => "/api/v1/studies/$sid/digest");
is($r->{status}, 200, 'digest with every kind of follow-up → 200') or diag($r->{body});
my @want = (
    $stored[0],
    {kind => 'narrow', rationale => 'Winner sits mid-range',
        search_space => {params => {boost => {type => 'float', low => 1.5, high => 3.0, log => JSON::PP::false}}}},
    $stored[2], $stored[3], $stored[4], $stored[5],
    {kind => 'text', rationale => 'a legacy string', search_space => undef},
    {kind => 'text', rationale => '[validation failed: search_space.params.boost: low must be below high] Too wide',
        search_space => undef},
    {kind => 'text', rationale => "[validation failed: text: unknown field 'confidence'] extra key",
        search_space => undef},
);
is_deeply($r->{json}{suggested_followups}, \@want,
    'follow-ups: valid ones normalised, legacy wrapped, invalid downgraded, junk dropped');
like($r->{body}, qr/"low":1\.5,"high":3\.0,"log":false/, 'float bounds as floats, log filled');
my $log = $t->nginx_error_log;
is(scalar(() = $log =~ /digest_followup_validation_downgraded/g), 2, 'two downgrades logged');
is(scalar(() = $log =~ /digest_followup_dropped/g), 3, 'three drops logged');

# --- a superseded proposal (upstream's follow-up chain writes it) ----------------------
my $sup = uuid7();
$t->psql('INSERT INTO proposals (id, study_id, cluster_id, template_id, config_diff, status) VALUES ('
    . join(',', map { sql_quote($_) } $sup, $sid, $cluster->{id}, $tid) . ", "
    . sql_json({boost => {from => 1.0, to => 2.0}}) . ", 'superseded')");
$r = api($t, GET => "/api/v1/proposals/$sup");
is($r->{status}, 200, 'superseded proposal → 200');
is($r->{json}{status}, 'superseded', 'status as stored');
$r = api($t, GET => "/api/v1/proposals?study_id=$sid");
is(scalar(grep { $_->{id} eq $sup } @{$r->{json}{data} || []}), 0, 'hidden from the list by default');
$r = api($t, GET => "/api/v1/proposals?study_id=$sid&include_superseded=true");
is(scalar(grep { $_->{id} eq $sup } @{$r->{json}{data} || []}), 1, 'listed with include_superseded');
$r = $s->open_pr($sup);
is($r->{status}, 409, 'open_pr on it: 409, not a 500') or diag($r->{body});

# --- open the seed's proposal as a PR ------------------------------------------------
my $prow = $s->open_and_wait($pid);
is($prow->{status}, 'pr_opened', 'proposal opened') or diag(explain $prow);
my $branch = "relyloop/study-$sid";
is($git->git($REPO, 'diff', '--name-only', 'main', "$branch~1"),
    "clusters/prod/product search.params.json\n", 'the params file with a space in its name');
is($git->git($REPO, 'show', "$branch~1:clusters/prod/product search.params.json"),
    qq({\n  "boost": 2.5,\n  "size": 10\n}\n), 'hint "number" accepted 2.5');
my $msg = $git->git($REPO, 'log', '-1', '--format=%B', "$branch~1");
like($msg, qr/^Trial count: 2$/m, 'commit: Trial count leaves the baseline out');
my ($create) = $gh->requests(route => 'create_pull');
my $body = $create->{json}{body} // '';
my ($top) = $body =~ /### Top trials\n\n(.*?)\n\n/s;
unlike($top // '', qr/0\.9/, 'Top trials leave the baseline out') or diag($top);
my ($fu) = $body =~ /### Suggested follow-ups\n\n(.*?)\n\n/s;
is($fu, join("\n",
    '- Try varying `description.boost` next.',
    '- **narrow:** Winner sits mid-range (`boost` [1.5, 3.0])',
    '- **widen:** Try more sizes (`size` [5, 50])',
    "- **swap_template:** A phrase template may do better (template `$swap_to`; `boost` [0.5, 2.0] log)",
    '- **widen:** Pick an operator (`op` {AND, OR})',
    '- **narrow:** Normalise the query (`norm` steps {lowercase, trim})',
    '- a legacy string',
    '- [validation failed: search_space.params.boost: low must be below high] Too wide',
    "- [validation failed: text: unknown field 'confidence'] extra key"),
    'PR body: one line per follow-up item');

# --- a 0-byte params file, and hint aliases that check ----------------------------------
my $m = $s->manual($empty_cluster, {id => $tid}, {size => {to => 20}, mode => {to => 'x'}});
$prow = $s->open_and_wait($m);
is($prow->{status}, 'pr_opened', 'manual proposal on a 0-byte params file opened')
    or diag(explain $prow);
is($git->git($REPO, 'show', "relyloop/proposal-$m:clusters/empty/product search.params.json"),
    qq({"mode": "x", "size": 20}), 'the 0-byte file read as {} (free-form type unchecked)');
$m = $s->manual($cluster, {id => $tid}, {size => {to => 2.5}});
$prow = $s->open_and_wait($m);
is($prow->{status}, 'pending', '" Integer " is int: 2.5 refused');
like($prow->{pr_open_error} // '', qr/^PARAM_NOT_IN_TEMPLATE/, 'with PARAM_NOT_IN_TEMPLATE');

# --- the last merged proposal pointer (upstream's webhook writes it) -------------------
$t->psql("UPDATE config_repos SET last_merged_proposal_id = '$sup' WHERE id = '$repo->{id}'");
$r = api($t, GET => "/api/v1/config-repos/$repo->{id}");
is($r->{json}{last_merged_proposal}{id}, $sup, 'config repo detail: last_merged_proposal');
is($r->{json}{last_merged_proposal}{is_currently_live}, JSON::PP::true, 'which is live');
is($r->{json}{last_merged_proposal}{template}{name}, 'product search', 'with its template');
$r = api($t, GET => '/api/v1/config-repos');
my ($lrow) = grep { $_->{id} eq $repo->{id} } @{$r->{json}{data} || []};
ok(exists $lrow->{last_merged_proposal} && !defined $lrow->{last_merged_proposal}, 'null on list rows');
$r = api($t, GET => "/api/v1/proposals?study_id=$sid&include_superseded=1");
is_deeply({map { $_->{id} => $_->{is_currently_live} ? 1 : 0 } @{$r->{json}{data} || []}},
    {$sup => 1, $pid => 0}, 'is_currently_live on the list');

# --- solr, as upstream 0022 allows -------------------------------------------------------
my $solr = uuid7();
$t->psql('INSERT INTO clusters (id, name, engine_type, environment, base_url, auth_kind, '
    . "credentials_ref, target_filter) VALUES ('$solr', 'solr-one', 'solr', 'dev', 'http://solr', "
    . "'solr_basic', 'cred', 'products-*')");
$r = api($t, GET => "/api/v1/clusters/$solr");
is($r->{status}, 200, 'solr cluster → 200');
is_deeply([@{$r->{json} || {}}{qw(engine_type auth_kind target_filter)}],
    ['solr', 'solr_basic', 'products-*'], 'served as stored, with target_filter');

# --- a database older than the module ------------------------------------------------
$t->psql('ALTER TABLE clusters DROP COLUMN target_filter');
$r = api($t, GET => "/api/v1/clusters/$cluster->{id}");
is($r->{status}, 500, 'a column missing: 500');
is($r->{json}{detail}{error_code}, 'INTERNAL_ERROR', 'INTERNAL_ERROR');
like($t->nginx_error_log,
    qr/\[error\].*relyloop: database schema older than this module \(run relyloop-worker migrate\): 42703/,
    'the error log says the schema is older than the module');
$s->restart_worker;
like($t->worker_log, qr/"schema_outdated".*upstream database lacks clusters\.target_filter: run upstream's \\"alembic upgrade head\\"/,
    'the worker says so at start');

$s->done;
