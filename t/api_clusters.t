#!/usr/bin/perl
# POST/GET /api/v1/clusters, GET/PATCH /api/v1/clusters/{id} (docs/api.md, docs/security.md):
# shapes (health_check object, no deleted_at), soft delete, binding a config
# repo and config_path through PATCH, every error code.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use RelyLoop::Test;
use RelyLoop::Fixtures;

my $t = setup();

my @CLUSTER_FIELDS = qw(id name engine_type environment base_url auth_kind credentials_ref
    config_repo_id config_path engine_config notes created_at health_check);

my $repo = create_repo($t);
my $repo2 = create_repo($t);

my %base = (name => 'products-es', engine_type => 'elasticsearch', environment => 'prod',
    base_url => 'https://es.example.com:9200', auth_kind => 'es_apikey',
    credentials_ref => 'es-prod-key');

sub post { api($t, POST => '/api/v1/clusters', json => {@_}) }
sub patch { my $id = shift; api($t, PATCH => "/api/v1/clusters/$id", json => {@_}) }
sub health_ok {
    my ($c, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is_deeply($c->{health_check}, {status => 'unknown', checked_at => undef, version => undef,
        error => undef}, "$name: health_check {status: unknown, rest null}");
    ok(!exists $c->{deleted_at}, "$name: no deleted_at");
}

# --- create ---------------------------------------------------------------------

my $r = post(%base);
is($r->{status}, 201, 'create → 201') or diag($r->{body});
my $c = $r->{json} || {};
has_keys($c, \@CLUSTER_FIELDS, 'Cluster');
uuid7_ok($c->{id}, 'id');
is($c->{$_}, $base{$_}, "$_ as sent") for sort keys %base;
ok(exists $c->{$_} && !defined $c->{$_}, "$_ null") for qw(config_repo_id config_path engine_config notes);
ts_ok($c->{created_at}, 'created_at');
health_ok($c, 'create');

my $engine_config = {index => 'products', analyzers => ['standard', 'english'], shards => 3,
    nested => {ok => JSON::PP::true}};
$r = post(name => 'bound-os', engine_type => 'opensearch', environment => 'staging',
    base_url => 'https://os.example.com', auth_kind => 'opensearch_basic',
    credentials_ref => 'aws-role', config_repo_id => $repo->{id},
    config_path => 'relevance/configs', engine_config => $engine_config, notes => 'n' x 2000);
is($r->{status}, 201, 'create with every optional field → 201') or diag($r->{body});
my $bound = $r->{json} || {};
is($bound->{config_repo_id}, $repo->{id}, 'config_repo_id kept');
is($bound->{config_path}, 'relevance/configs', 'config_path kept');
is_deeply($bound->{engine_config}, $engine_config, 'engine_config kept');
is(length($bound->{notes} // ''), 2000, 'notes of 2000 characters kept');
health_ok($bound, 'create with options');

for my $combo (['opensearch', 'dev', 'opensearch_basic'], ['elasticsearch', 'staging', 'es_basic']) {
    $r = post(%base, name => uniq_name('combo'), engine_type => $combo->[0],
        environment => $combo->[1], auth_kind => $combo->[2]);
    is($r->{status}, 201, "create @$combo → 201") or diag($r->{body});
}

# --- detail and list --------------------------------------------------------------

for my $i (1 .. 4) {
    $r = api($t, GET => "/api/v1/clusters/$c->{id}");
    is($r->{status}, 200, "detail → 200 (#$i)");
    is_deeply($r->{json}, $c, "detail equals the create response (#$i)");
}
$r = api($t, GET => "/api/v1/clusters/$bound->{id}");
is_deeply($r->{json}, $bound, 'detail of the bound cluster');

my $count = $t->psql('SELECT count(*) FROM clusters WHERE deleted_at IS NULL');
$r = api($t, GET => '/api/v1/clusters');
my @rows = list_ok($r, 'list', total => $count);
is(scalar @rows, $count, 'every cluster listed');
my ($row) = grep { ($_->{id} // '') eq $c->{id} } @rows;
is_deeply($row, $c, 'list row equals the detail');
health_ok($row // {}, 'list row');

# --- create errors ----------------------------------------------------------------

$r = post(%base);
error_ok($r, 409, 'CLUSTER_NAME_TAKEN', 'duplicate name');
$r = post(%base, name => 'unknown-repo', config_repo_id => uuid7());
error_ok($r, 404, 'CONFIG_REPO_NOT_FOUND', 'unknown config_repo_id');
$r = post(%base, name => 'unknown-repo-2', config_repo_id => 'not-an-id');
error_ok($r, 404, 'CONFIG_REPO_NOT_FOUND', 'malformed config_repo_id is opaque: 404');

my @races = $t->parallel(6, sub {
    my $x = $t->http(POST => '/api/v1/clusters', json => {%base, name => 'racing-cluster'});
    return {status => $x->{status}, code => $x->{json}{detail}{error_code} // ''};
});
is(scalar(grep { $_->{status} == 201 } @races), 1, 'racing creates: one 201');
is(scalar(grep { $_->{status} == 409 && $_->{code} eq 'CLUSTER_NAME_TAKEN' } @races), 5,
    'racing creates: the rest 409 CLUSTER_NAME_TAKEN') or diag(json_encode(\@races));

for my $case (
    [name => ''], [name => 'n' x 129], [name => 5],
    [engine_type => undef], [engine_type => ''], [engine_type => 5],
    [environment => 'production'], [environment => ''],
    [auth_kind => ''], [auth_kind => []],
    [base_url => 5], [credentials_ref => []],
    [notes => 'n' x 2001], [notes => 5],
    [engine_config => []], [engine_config => 'x'], [engine_config => 5],
    [config_repo_id => 5], [config_path => '../etc'], [config_path => '/abs/path'],
    [config_path => 'a/../b'], [config_path => 'a b'], [config_path => ''],
    [config_path => '..'], [config_path => 'a\\b'],
    [deleted_at => '2026-01-01T00:00:00.000000+00:00'], [health_check => {}], [id => uuid7()],
    [unexpected => 1],
    )
{
    my ($field, $value) = @$case;
    $r = api($t, POST => '/api/v1/clusters', json => {%base, name => uniq_name('bad'),
        $field => $value});
    validation_ok($r, $field, "create $field = " . substr(json_encode($value), 0, 30));
}
# Known types, unknown values: 400s (t/api_cluster_lifecycle.t has their order).
for my $case ([engine_type => 'Elasticsearch', 'ENGINE_NOT_SUPPORTED'],
    [engine_type => 'vespa', 'ENGINE_NOT_SUPPORTED'], [auth_kind => 'basic', 'AUTH_KIND_NOT_SUPPORTED'],
    [auth_kind => 'opensearch_apikey', 'AUTH_KIND_NOT_SUPPORTED'],
    [auth_kind => 'opensearch_sigv4', 'AUTH_KIND_NOT_SUPPORTED'])
{
    my ($field, $value, $code) = @$case;
    $r = api($t, POST => '/api/v1/clusters', json => {%base, name => uniq_name('bad'),
        $field => $value});
    error_ok($r, 400, $code, "create $field = $value");
}
for my $field (sort keys %base) {
    my %b = %base;
    delete $b{$field};
    $b{name} = uniq_name('missing') unless $field eq 'name';
    $r = api($t, POST => '/api/v1/clusters', json => \%b);
    validation_ok($r, $field, "create without $field");
}

# --- PATCH ------------------------------------------------------------------------

my $id = $c->{id};
$r = patch($id, config_repo_id => $repo->{id});
is($r->{status}, 200, 'PATCH config_repo_id → 200') or diag($r->{body});
is($r->{json}{config_repo_id}, $repo->{id}, 'bound to the repo');
is($r->{json}{name}, $c->{name}, 'name unchanged');
health_ok($r->{json} || {}, 'PATCH response');

$r = patch($id, config_path => 'search/relevance');
is($r->{status}, 200, 'PATCH config_path → 200');
is($r->{json}{config_path}, 'search/relevance', 'config_path set');
is($r->{json}{config_repo_id}, $repo->{id}, 'config_repo_id untouched by a PATCH without it');

$r = patch($id, notes => 'tuned weekly');
is($r->{json}{notes}, 'tuned weekly', 'PATCH notes');
is($r->{json}{config_path}, 'search/relevance', 'config_path untouched');

$r = patch($id, config_repo_id => $repo2->{id}, config_path => 'x.y/z_1-2/w..v', notes => 'both');
is($r->{status}, 200, 'PATCH all three → 200') or diag($r->{body});
is($r->{json}{config_repo_id}, $repo2->{id}, 'rebound to the second repo');
is($r->{json}{config_path}, 'x.y/z_1-2/w..v', '".." inside a segment name is allowed');

$r = api($t, GET => "/api/v1/clusters/$id");
is($r->{json}{config_repo_id}, $repo2->{id}, 'PATCH persisted (config_repo_id)');
is($r->{json}{notes}, 'both', 'PATCH persisted (notes)');
is($t->psql("SELECT config_path FROM clusters WHERE id = '$id'"), 'x.y/z_1-2/w..v',
    'PATCH persisted in the database');

$r = patch($id);
is($r->{status}, 200, 'PATCH {} → 200');
is($r->{json}{config_repo_id}, $repo2->{id}, 'PATCH {} changes nothing');

$r = patch($id, config_repo_id => undef);
is($r->{status}, 200, 'PATCH config_repo_id null → 200');
ok(exists $r->{json}{config_repo_id} && !defined $r->{json}{config_repo_id},
    'null clears config_repo_id');
is($r->{json}{config_path}, 'x.y/z_1-2/w..v', 'config_path kept');
$r = patch($id, config_path => undef);
ok($r->{status} == 200 && !defined $r->{json}{config_path}, 'null clears config_path');
is($t->psql("SELECT coalesce(config_repo_id, 'NULL') || coalesce(config_path, 'NULL') "
    . "FROM clusters WHERE id = '$id'"), 'NULLNULL', 'cleared in the database');

for my $case (
    [config_path => ''], [config_repo_id => ''], [config_path => '../x'], [config_path => '/abs'],
    [config_path => 'a/../b'], [config_path => '..'], [config_path => 'a/..'],
    [config_path => 'a b'], [config_path => "a\nb"], [config_path => 'a;b'], [config_path => 5],
    [config_repo_id => 5], [notes => 5], [notes => 'n' x 2001], [name => 'renamed'],
    [base_url => 'https://x'], [engine_type => 'opensearch'], [unknown => 1],
    )
{
    my ($field, $value) = @$case;
    $r = patch($id, $field => $value);
    validation_ok($r, $field, "PATCH $field = " . substr(json_encode($value), 0, 30));
}
for my $body ('{', '[]', 'null', '"x"') {
    $r = api($t, PATCH => "/api/v1/clusters/$id", body => $body,
        headers => {'Content-Type' => 'application/json'});
    validation_ok($r, undef, "PATCH body $body");
}
$r = api($t, GET => "/api/v1/clusters/$id");
ok(!defined $r->{json}{config_path} && !defined $r->{json}{config_repo_id},
    'rejected PATCHes changed nothing');

$r = patch($id, config_repo_id => uuid7());
error_ok($r, 404, 'CONFIG_REPO_NOT_FOUND', 'PATCH with an unknown config_repo_id');
$r = patch($id, config_repo_id => 'garbage-id');
error_ok($r, 404, 'CONFIG_REPO_NOT_FOUND', 'PATCH with a malformed config_repo_id');
$r = patch(uuid7(), notes => 'x');
error_ok($r, 404, 'CLUSTER_NOT_FOUND', 'PATCH of an unknown cluster');
$r = patch('x' x 300, notes => 'x');
error_ok($r, 404, 'CLUSTER_NOT_FOUND', 'PATCH of a 300-character id');

for my $cid (uuid7(), 'not-a-uuid', 'x' x 300, esc("'; DROP TABLE clusters; --"), 'abc%2Fdef') {
    $r = api($t, GET => "/api/v1/clusters/$cid");
    error_ok($r, 404, 'CLUSTER_NOT_FOUND', 'detail of ' . substr($cid, 0, 40));
}

# --- soft delete ------------------------------------------------------------------

my $gone = create_cluster($t);
$t->psql("UPDATE clusters SET deleted_at = now() WHERE id = '$gone->{id}'");
$r = api($t, GET => "/api/v1/clusters/$gone->{id}");
error_ok($r, 404, 'CLUSTER_NOT_FOUND', 'a soft-deleted cluster is invisible (detail)');
$r = patch($gone->{id}, notes => 'x');
error_ok($r, 404, 'CLUSTER_NOT_FOUND', 'a soft-deleted cluster is invisible (PATCH)');
is($t->psql("SELECT coalesce(notes, 'NULL') FROM clusters WHERE id = '$gone->{id}'"), 'NULL',
    'and the PATCH did not write');
$count = $t->psql('SELECT count(*) FROM clusters WHERE deleted_at IS NULL');
$r = api($t, GET => '/api/v1/clusters?limit=200');
@rows = list_ok($r, 'list after a soft delete', total => $count);
ok(!grep({ ($_->{id} // '') eq $gone->{id} } @rows), 'a soft-deleted cluster is not listed');
is(scalar @rows, $count, 'X-Total-Count and rows exclude it');

$r = api($t, POST => '/api/v1/proposals', json => {cluster_id => $gone->{id},
    template_id => create_template($t)->{id}, config_diff => {'title.boost' => {to => 2}}});
error_ok($r, 404, 'CLUSTER_NOT_FOUND', 'a manual proposal on a soft-deleted cluster');

responses_ok();
$t->done;
