#!/usr/bin/perl

# relyloop-worker migrate on the kinds of database of docs/upstream-schema.md:
# step 2 converges an own database on upstream RelyLoop's 0023 shape (the
# catalog of the ten shared tables is the same for the upstream schema, a fresh
# migrate and a version-1 database with rows migrated, own indexes aside; the
# rows survive); on an upstream database migrate adds only its own objects,
# twice is a no-op; an upstream database behind 0023 or an unknown one is
# refused without a write.

use strict;
use warnings;

use Test::More;

use RelyLoop::Test;
use RelyLoop::WorkerTest;

my $t = RelyLoop::Test->new;
$t->start_pg;    # databases made below
my $w = RelyLoop::WorkerTest->new($t);
my $root = $t->root;
my $port = $t->pg_port;

my @SHARED = qw(config_repos clusters query_templates query_sets queries judgment_lists studies
    trials digests proposals);
my %OWN_INDEX = map { $_ => 1 } qw(config_repos_created_idx clusters_created_idx
    query_templates_created_idx studies_created_idx proposals_created_idx proposals_status_idx
    proposals_cluster_idx proposals_study_idx);

sub psql_db {
    my ($db, $sql, @opt) = @_;
    my $file = $t->dir . "/q-$db.sql";
    open my $fh, '>', $file or die;
    print $fh $sql;
    close $fh;
    my $out = qx{psql -X -q -v ON_ERROR_STOP=1 -At @opt -h 127.0.0.1 -p $port -U postgres -d $db -f $file 2>&1};
    die "psql $db failed: $out\n$sql" if $? != 0;
    return $out;
}

sub new_db {
    my ($db, $fixture) = @_;
    system('createdb', '-h', '127.0.0.1', '-p', $port, '-U', 'postgres', $db) == 0 or die;
    if ($fixture) {
        my $out = qx{psql -X -q -o /dev/null -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $port -U postgres -d $db -f $root/t/fixtures/$fixture 2>&1};
        die "loading $fixture: $out" if $? != 0;
    }
}

sub migrate_db {
    my ($db) = @_;
    return $w->run_cli('--pg-conninfo', "host=127.0.0.1 port=$port user=postgres dbname=$db",
        'migrate');
}

# The catalog of the shared tables, one line per column, constraint, index,
# trigger (ordinal positions left out); own indexes in the second list.
sub catalog {
    my ($db) = @_;
    my $in = join(',', map {"'$_'"} @SHARED);
    my $out = psql_db($db, qq{
SELECT 'col', table_name, column_name, data_type, coalesce(character_maximum_length::text, ''),
       is_nullable, coalesce(column_default, ''), is_generated, coalesce(generation_expression, '')
  FROM information_schema.columns WHERE table_schema = 'public' AND table_name IN ($in);
SELECT 'con', conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
   AND conrelid::regclass::text IN ($in);
SELECT 'idx', tablename, indexname, indexdef FROM pg_indexes
 WHERE schemaname = 'public' AND tablename IN ($in);
SELECT 'trg', tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger
 WHERE NOT tgisinternal AND tgrelid::regclass::text IN ($in);
});
    my (@shared, @own);
    for my $line (sort split /\n/, $out) {
        my @f = split /\|/, $line;
        push @{($f[0] eq 'idx' && $OWN_INDEX{$f[2]}) ? \@own : \@shared}, $line;
    }
    return (\@shared, \@own);
}

# pg_dump --schema-only of everything but this project's own objects.
sub upstream_dump {
    my ($db) = @_;
    my $dump = qx{pg_dump --schema-only --no-owner -T pr_jobs -T schema_migrations -T webhook_deliveries -T webhook_jobs -T worker_ticks -h 127.0.0.1 -p $port -U postgres $db};
    die "pg_dump $db" if $? != 0;
    $dump =~ s/^\\(un)?restrict .*\n//mg;
    # the own functions of docs/webhooks.md are own objects too (pg_dump
    # prints these SETs after the last function, wherever that is)
    $dump =~ s/^SET default_(?:tablespace|table_access_method) = .*\n\n//mg;
    my @blocks = split /(?=^--\n-- Name: )/m, $dump;
    return join '', grep { (!/^--\n-- Name: (\w+);/ || !$OWN_INDEX{$1})
        && !/^--\n-- Name: relyloop_\w+\(/ } @blocks;
}

sub full_dump {
    my ($db) = @_;
    my $dump = qx{pg_dump --no-owner -h 127.0.0.1 -p $port -U postgres $db};
    die "pg_dump $db" if $? != 0;
    $dump =~ s/^\\(un)?restrict .*\n//mg;
    return $dump;
}

# --- (A) upstream 0023, (B) migrate on an empty database ------------------------
new_db('a', 'relyloop-0023.sql');
new_db('b');
my ($rc, $out) = migrate_db('b');
is($rc, 0, 'migrate on an empty database: exit 0') or diag $out;
like($out, qr/^applied migration 1: initial schema\napplied migration 2: converge with upstream 0023\napplied migration 3: pr lifecycle tables\nschema migrated to version 3\n\z/,
    'empty: prints the three steps') or diag $out;
note "migrate on an empty database printed:\n$out";
my ($cat_a, $own_a) = catalog('a');
my ($cat_b, $own_b) = catalog('b');
is_deeply($cat_b, $cat_a, '(B) = (A): the shared tables have upstream 0023\'s catalog');
is(scalar @$own_b, scalar keys %OWN_INDEX, '(B) has every own index');
is(scalar @$own_a, 0, '(A) has none');

# --- (C) released version 1 with rows, then migrate ----------------------------
new_db('c', 'relyloop-pr-v1.sql');
psql_db('c', q{
INSERT INTO config_repos (id, name, provider, repo_url, auth_ref)
  VALUES ('r1', 'repo-one', 'github', 'https://github.com/o/r', 'pat');
INSERT INTO clusters (id, name, engine_type, environment, base_url, auth_kind, credentials_ref,
                      config_repo_id, config_path)
  VALUES ('c1', 'prod-es', 'elasticsearch', 'prod', 'http://es', 'es_basic', 'cred', 'r1', 'cfg');
INSERT INTO query_templates (id, name, engine_type, body) VALUES ('t1', 'bm25', 'elasticsearch', '{}');
INSERT INTO query_sets (id, name, cluster_id) VALUES ('qs1', 'qs', 'c1');
INSERT INTO judgment_lists (id, name, query_set_id, cluster_id, target, status)
  VALUES ('jl1', 'jl', 'qs1', 'c1', 'products', 'complete');
INSERT INTO studies (id, name, cluster_id, target, template_id, query_set_id, judgment_list_id,
                     status, optuna_study_name)
  VALUES ('s1', 'study one', 'c1', 'products', 't1', 'qs1', 'jl1', 'completed', 'o1'),
         ('s2', 'study two', 'c1', 'products', 't1', 'qs1', 'jl1', 'completed', 'o2');
INSERT INTO trials (id, study_id, optuna_trial_number, primary_metric, status)
  VALUES ('tr1', 's1', 0, 0.5, 'complete'), ('tr2', 's1', 1, NULL, 'failed');
INSERT INTO digests (id, study_id, narrative, suggested_followups, generated_by)
  VALUES ('d1', 's1', 'n', ARRAY['Widen "boost"', 'second, with a comma'], 'llm'),
         ('d2', 's2', 'n', '{}', 'llm');
INSERT INTO proposals (id, study_id, cluster_id, template_id, config_diff, status, pr_url, pr_state,
                       pr_merged_at, created_at)
  VALUES ('p1', 's1', 'c1', 't1', '{}', 'pr_merged', 'https://github.com/o/r/pull/1', 'merged',
          '2026-01-01 00:00:00+00', '2025-12-01 00:00:00+00'),
         ('p2', 's1', 'c1', 't1', '{}', 'pr_merged', 'https://github.com/o/r/pull/2', 'merged',
          '2026-02-01 00:00:00+00', '2025-12-02 00:00:00+00'),
         ('p3', NULL, 'c1', 't1', '{}', 'pending', NULL, NULL, NULL, now());
INSERT INTO pr_jobs (id, proposal_id, state) VALUES ('j1', 'p3', 'queued');
});
my $counts_sql = join(' UNION ALL ', map { "SELECT '$_', count(*) FROM $_" }
    grep { $_ ne 'queries' } @SHARED, 'pr_jobs');
my $before = psql_db('c', "$counts_sql;");
($rc, $out) = migrate_db('c');
is($rc, 0, 'migrate on a version-1 database with rows: exit 0') or diag $out;
like($out, qr/^applied migration 2: converge with upstream 0023\napplied migration 3: pr lifecycle tables\nschema migrated to version 3\n\z/,
    'version 1: prints steps 2 and 3') or diag $out;
my ($cat_c, $own_c) = catalog('c');
is_deeply($cat_c, $cat_a, '(C) = (A): the shared tables have upstream 0023\'s catalog');
is_deeply($own_c, $own_b, '(C) has the own indexes of (B)');
is(psql_db('c', "$counts_sql;"), $before, 'row counts unchanged');
is(psql_db('c', "SELECT suggested_followups::text FROM digests ORDER BY id;"),
    qq{[{"kind": "text", "rationale": "Widen \\"boost\\"", "search_space": null}, }
    . qq{{"kind": "text", "rationale": "second, with a comma", "search_space": null}]\n[]\n},
    'follow-ups wrapped as text items, an empty array as []');
is(psql_db('c', "SELECT rubric FROM judgment_lists;"), "\n", 'a NULL rubric became empty');
is(psql_db('c', "SELECT last_merged_proposal_id FROM config_repos;"), "p2\n",
    'last_merged_proposal_id backfilled with the latest merge');
is(psql_db('c', "SELECT count(*) FROM trials WHERE is_baseline;"), "0\n", 'no baseline trials');
is(psql_db('c', "SELECT version FROM schema_migrations ORDER BY 1;"), "1\n2\n3\n", 'steps 1, 2 and 3 recorded');
is(psql_db('c', "SELECT to_regclass('alembic_version') IS NULL;"), "t\n", 'no alembic_version');

# --- (A) + migrate: own objects only, twice -----------------------------------
my $dump0 = upstream_dump('a');
($rc, $out) = migrate_db('a');
is($rc, 0, 'migrate on upstream 0023: exit 0') or diag $out;
note "migrate on an upstream database printed:\n$out";
like($out, qr/^upstream RelyLoop database at alembic revision 0023: adding only this worker's own objects\n/,
    'says what it found');
for my $own (qw(pr_jobs webhook_deliveries webhook_jobs worker_ticks)) {
    like($out, qr/^created own table $own$/m, "creates $own");
}
is(psql_db('a', "SELECT name, last_slot FROM worker_ticks;"), "reconcile_pr_state|0\n",
    'the reconciler tick row is seeded');
is(scalar(() = $out =~ /^created own index /mg), scalar keys %OWN_INDEX, 'creates each own index');
is(upstream_dump('a'), $dump0, 'nothing upstream-owned changed (pg_dump --schema-only)');
my ($cat_a2, $own_a2) = catalog('a');
is_deeply($cat_a2, $cat_a, 'shared catalog unchanged');
is_deeply($own_a2, $own_b, 'own indexes as on an own database');
($rc, $out) = migrate_db('a');
is($rc, 0, 'second migrate: exit 0');
is($out, "upstream RelyLoop database at alembic revision 0023: adding only this worker's own objects\n"
    . "own objects are in place\n", 'second migrate: nothing to do') or diag $out;
is(upstream_dump('a'), $dump0, 'still nothing upstream-owned changed');
is(psql_db('a', 'SELECT version_num FROM alembic_version;'), "0023\n", 'alembic_version still 0023');
is(psql_db('a', 'SELECT count(*) FROM schema_migrations;'), "0\n", 'no own step recorded');
is(psql_db('a', "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    . "WHERE NOT i.indisvalid;"), "0\n", 'no INVALID index');

# An own index left INVALID (a crashed concurrent build) is rebuilt.
psql_db('a', "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'proposals_study_idx'::regclass;");
($rc, $out) = migrate_db('a');
like($out, qr/^rebuilt invalid own index proposals_study_idx$/m, 'an INVALID own index is rebuilt')
    or diag $out;
is(psql_db('a', "SELECT indisvalid FROM pg_index WHERE indexrelid = 'proposals_study_idx'::regclass;"),
    "t\n", 'and valid again');

my @common = ('--secrets-dir', $t->dir . '/secrets', '--clone-root', $t->dir . '/clones',
    '--socket', $t->dir . '/check.sock', '--git-author-email', 'bot@test.invalid');
($rc, $out) = $w->run_cli('--pg-conninfo', "host=127.0.0.1 port=$port user=postgres dbname=a",
    @common, 'check');
is($rc, 0, 'check passes on the migrated upstream database') or diag $out;
like($out, qr/^ok\s+schema\s+upstream RelyLoop database at alembic revision 0023/m, 'and says so');

# --- refusals: nothing written -----------------------------------------------
new_db('behind', 'relyloop-0023.sql');
psql_db('behind', "UPDATE alembic_version SET version_num = '0019';");
my $full = full_dump('behind');
($rc, $out) = migrate_db('behind');
is($rc, 1, 'upstream at 0019: exit 1');
is($out, qq{relyloop-worker migrate: upstream RelyLoop database at alembic revision 0019; this worker needs 0023: run upstream's "alembic upgrade head" first\n},
    'the exact refusal') or diag $out;
is(full_dump('behind'), $full, 'nothing written');
($rc, $out) = $w->run_cli('--pg-conninfo', "host=127.0.0.1 port=$port user=postgres dbname=behind",
    @common, 'check');
like($out, qr/FAIL\s+schema\s+upstream RelyLoop database at alembic revision 0019/, 'check fails too');

new_db('unknown', 'relyloop-0023.sql');
psql_db('unknown', 'DROP TABLE alembic_version;');
$full = full_dump('unknown');
($rc, $out) = migrate_db('unknown');
is($rc, 1, 'RelyLoop tables without a marker: exit 1');
is($out, "relyloop-worker migrate: refusing: the database has RelyLoop tables but neither "
    . "alembic_version nor schema_migrations\n", 'the exact refusal') or diag $out;
is(full_dump('unknown'), $full, 'nothing written');

# An alembic revision this worker does not know: the columns decide.
new_db('newer', 'relyloop-0023.sql');
psql_db('newer', "UPDATE alembic_version SET version_num = '0024';");
($rc, $out) = migrate_db('newer');
is($rc, 0, 'upstream at 0024 with every column: exit 0') or diag $out;
like($out, qr/^note: upstream alembic revision 0024 is not 0023; checking the columns this worker needs\n/,
    'with a note');
new_db('lacking', 'relyloop-0023.sql');
psql_db('lacking', "UPDATE alembic_version SET version_num = 'abc'; "
    . "ALTER TABLE trials DROP COLUMN is_baseline; ALTER TABLE clusters DROP COLUMN target_filter;");
$full = full_dump('lacking');
($rc, $out) = migrate_db('lacking');
is($rc, 1, 'upstream at an unknown revision lacking columns: exit 1');
like($out, qr/^relyloop-worker migrate: upstream database lacks clusters\.target_filter, trials\.is_baseline: run upstream's "alembic upgrade head"$/m,
    'names the columns') or diag $out;
is(full_dump('lacking'), $full, 'nothing written');

$t->done;
