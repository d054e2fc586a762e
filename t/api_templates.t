#!/usr/bin/perl
# POST/GET /api/v1/query-templates, GET /api/v1/query-templates/{id}
# (docs/api.md): shape, versions, TEMPLATE_NAME_TAKEN on (name, version),
# the engine_type filter, declared_params hints, validation.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use RelyLoop::Test;
use RelyLoop::Fixtures;

my $t = setup();

my @FIELDS = qw(id name engine_type body declared_params version parent_id created_at);
my $params = {
    'title.boost' => 'float',
    'size' => 'int',
    'fuzzy' => 'bool',
    'analyzer' => 'string',
    'mode' => 'categorical',
    'tie_breaker' => {type => 'float', min => 0, max => 1},
    'operator' => {type => 'categorical', values => ['AND', 'OR']},
    'min_should' => {type => 'int', min => 1, max => 5},
};
my $body = '{"query": {"multi_match": {"query": "{{q}}", "fields": ["title^{{title.boost}}"], '
    . '"tie_breaker": {{tie_breaker}}, "operator": "{{operator}}"}}, "size": {{size}}}';

sub post { api($t, POST => '/api/v1/query-templates', json => {@_}) }

my $r = post(name => 'products_search', engine_type => 'elasticsearch', body => $body,
    declared_params => $params);
is($r->{status}, 201, 'create → 201') or diag($r->{body});
my $v1 = $r->{json} || {};
has_keys($v1, \@FIELDS, 'Template');
uuid7_ok($v1->{id}, 'id');
is($v1->{name}, 'products_search', 'name');
is($v1->{engine_type}, 'elasticsearch', 'engine_type');
is($v1->{body}, $body, 'body kept byte for byte');
is_deeply($v1->{declared_params}, $params, 'declared_params kept');
is($v1->{version}, 1, 'version defaults to 1');
ok(exists $v1->{parent_id} && !defined $v1->{parent_id}, 'parent_id null');
ts_ok($v1->{created_at}, 'created_at');

$r = post(name => 'products_search', engine_type => 'elasticsearch', body => $body,
    declared_params => $params, version => 2, parent_id => $v1->{id});
is($r->{status}, 201, 'version 2 of the same name → 201') or diag($r->{body});
my $v2 = $r->{json} || {};
is($v2->{version}, 2, 'version 2');
is($v2->{parent_id}, $v1->{id}, 'parent_id kept');

$r = post(name => 'Os.Template-1_x', engine_type => 'opensearch', body => '{}',
    declared_params => {});
is($r->{status}, 201, 'opensearch template, name with . _ - and capitals, no params → 201')
    or diag($r->{body});
my $os = $r->{json} || {};
is_deeply($os->{declared_params}, {}, 'empty declared_params');

$r = post(name => 'n' x 128, engine_type => 'opensearch', body => 'x', declared_params => {},
    version => 7);
is($r->{status}, 201, '128-character name, version 7') or diag($r->{body});

# --- detail, list, filter -------------------------------------------------------------

for my $i (1 .. 3) {
    for my $tpl ($v1, $v2, $os) {
        $r = api($t, GET => "/api/v1/query-templates/$tpl->{id}");
        is($r->{status}, 200, "detail → 200 (#$i)");
        is_deeply($r->{json}, $tpl, "detail equals the create response (#$i)");
    }
}

$r = api($t, GET => '/api/v1/query-templates');
my @rows = list_ok($r, 'list', total => 4);
is(scalar @rows, 4, 'all four listed');
is_deeply([map { $_->{id} } @rows],
    [map { $_->{id} } sort { $b->{created_at} cmp $a->{created_at} || $b->{id} cmp $a->{id} } @rows],
    'ordered created_at DESC, id DESC');
my ($row) = grep { ($_->{id} // '') eq $v2->{id} } @rows;
is_deeply($row, $v2, 'list row equals the detail');

$r = api($t, GET => '/api/v1/query-templates?engine_type=opensearch');
@rows = list_ok($r, 'engine_type=opensearch', total => 2);
is_deeply([sort map { $_->{engine_type} } @rows], ['opensearch', 'opensearch'],
    'only opensearch templates');
$r = api($t, GET => '/api/v1/query-templates?engine_type=elasticsearch&limit=1');
@rows = list_ok($r, 'engine_type=elasticsearch&limit=1', total => 2);
is(scalar @rows, 1, 'one row');
ok($r->{json}{has_more}, 'has_more under a filter');
my $page2 = api($t, GET => '/api/v1/query-templates?engine_type=elasticsearch&limit=1&cursor='
    . esc($r->{json}{next_cursor} // ''));
my @rows2 = list_ok($page2, 'second page under a filter', total => 2);
is(scalar @rows2, 1, 'one row on page 2');
ok(!$page2->{json}{has_more}, 'no more');
is_deeply([sort map { $_->{id} } @rows, @rows2], [sort $v1->{id}, $v2->{id}],
    'both elasticsearch templates across the pages');

# solr is a known engine (upstream rows may have it): an empty page, not a 422.
$r = api($t, GET => '/api/v1/query-templates?engine_type=solr');
list_ok($r, 'engine_type filter solr', total => 0);
for my $bad ('vespa', 'ELASTICSEARCH') {
    $r = api($t, GET => '/api/v1/query-templates?engine_type=' . esc($bad));
    error_ok($r, 422, 'VALIDATION_ERROR', "engine_type filter '$bad'");
}

for my $id (uuid7(), 'missing', 'x' x 300, esc('../x'), 'abc%2Fdef') {
    $r = api($t, GET => "/api/v1/query-templates/$id");
    error_ok($r, 404, 'TEMPLATE_NOT_FOUND', 'detail of ' . substr($id, 0, 40));
}

# --- TEMPLATE_NAME_TAKEN ----------------------------------------------------------------

$r = post(name => 'products_search', engine_type => 'elasticsearch', body => 'x',
    declared_params => {});
error_ok($r, 409, 'TEMPLATE_NAME_TAKEN', 'name + version 1 again');
$r = post(name => 'products_search', engine_type => 'opensearch', body => 'x',
    declared_params => {}, version => 2);
error_ok($r, 409, 'TEMPLATE_NAME_TAKEN', 'name + version 2 again (other engine)');
$r = post(name => 'products_search', engine_type => 'elasticsearch', body => 'x',
    declared_params => {}, version => 3);
is($r->{status}, 201, 'name + a new version → 201');

my @races = $t->parallel(6, sub {
    my $x = $t->http(POST => '/api/v1/query-templates', json => {name => 'racing',
        engine_type => 'elasticsearch', body => 'x', declared_params => {}});
    return {status => $x->{status}, code => $x->{json}{detail}{error_code} // ''};
});
is(scalar(grep { $_->{status} == 201 } @races), 1, 'racing creates: one 201');
is(scalar(grep { $_->{status} == 409 && $_->{code} eq 'TEMPLATE_NAME_TAKEN' } @races), 5,
    'racing creates: the rest 409') or diag(json_encode(\@races));

# --- validation -----------------------------------------------------------------------------

my %ok = (name => 'valid', engine_type => 'elasticsearch', body => 'x', declared_params => {});
for my $case (
    [name => ''], [name => ' lead'], [name => '.hidden'], [name => '../x'], [name => 'a/b'],
    [name => '-lead'], [name => '_lead'], [name => 'n' x 257], [name => 5], [name => "a\tb"],
    [engine_type => 'solr'], [engine_type => undef],
    [body => 5], [body => {query => {}}], [body => undef],
    [version => 0], [version => -1], [version => 1.5], [version => '2'], [version => JSON::PP::true],
    [declared_params => []], [declared_params => 'float'], [declared_params => undef],
    [declared_params => {p => 'complex'}], [declared_params => {p => 5}],
    [declared_params => {p => {type => 'weird'}}], [declared_params => {p => {min => 1}}],
    [declared_params => {p => {type => 'float', min => 'low'}}],
    [declared_params => {p => {type => 'categorical', values => 'AND'}}],
    [declared_params => {p => ['float']}],
    [parent_id => 5], [id => uuid7()], [created_at => '2026-01-01T00:00:00.000000+00:00'],
    [extra => 1],
    )
{
    my ($field, $value) = @$case;
    $r = api($t, POST => '/api/v1/query-templates',
        body => json_encode({%ok, $field => $value}),
        headers => {'Content-Type' => 'application/json'});
    validation_ok($r, $field, "$field = " . substr(json_encode($value), 0, 40));
}
# Names with spaces, up to 256 characters (upstream HEAD's UI sends them).
for my $name ('has space', 'Products Search v2.1', 'n' x 256) {
    $r = api($t, POST => '/api/v1/query-templates', json => {%ok, name => $name, parent_id => undef});
    is($r->{status}, 201, "name '" . substr($name, 0, 30) . "' → 201") or diag($r->{body});
    is($r->{json}{name}, $name, '... kept');
}
# A NUL is valid JSON, but refusing it as a body error is fine too.
$r = api($t, POST => '/api/v1/query-templates', json => {%ok, name => "a\x00b"});
validation_ok($r, [qr/body(\.name)?:/], 'name with a NUL character');
for my $field (qw(name engine_type body declared_params)) {
    my %b = %ok;
    delete $b{$field};
    $r = api($t, POST => '/api/v1/query-templates', json => \%b);
    validation_ok($r, $field, "without $field");
}
is($t->psql("SELECT count(*) FROM query_templates WHERE name = 'valid'"), 0,
    'no template created by an invalid request');

responses_ok();
$t->done;
