#!/usr/bin/perl
# Clusters as the HEAD UI uses them (docs/api.md, "Clusters"): the create body
# it sends (target_filter, engine_config null, notes null), solr, the 400
# codes ENGINE_NOT_SUPPORTED / AUTH_KIND_NOT_SUPPORTED in their order, base_url
# rules, revival of a soft-deleted name, DELETE → 204 and what follows it,
# POST /clusters/test-connection → 501 after full validation.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use RelyLoop::Test;
use RelyLoop::Fixtures;

my $t = setup();

sub post { api($t, POST => '/api/v1/clusters', json => {@_}) }

# --- the UI's exact bodies ------------------------------------------------------------

my %ui = (name => 'ui-null', engine_type => 'elasticsearch', environment => 'dev',
    base_url => 'http://localhost:9200', auth_kind => 'es_basic', credentials_ref => 'es-local',
    engine_config => undef, notes => undef, target_filter => undef);
my $r = post(%ui);
is($r->{status}, 201, 'UI body with nulls → 201') or diag($r->{body});
ok(exists $r->{json}{$_} && !defined $r->{json}{$_}, "$_ null") for qw(engine_config notes target_filter);

$r = post(%ui, name => 'ui-values', engine_config => {api_version => '8'}, notes => 'primary',
    target_filter => '  products-*  ');
is($r->{status}, 201, 'UI body with values → 201') or diag($r->{body});
is($r->{json}{target_filter}, 'products-*', 'target_filter stripped');
is_deeply($r->{json}{engine_config}, {api_version => '8'}, 'engine_config kept');
is($r->{json}{notes}, 'primary', 'notes kept');
my $ui_values = $r->{json};
is_deeply(api($t, GET => "/api/v1/clusters/$ui_values->{id}")->{json}, $ui_values,
    'GET serves the created cluster');

for my $solr (['solr_basic'], ['solr_apikey']) {
    $r = post(%ui, name => "solr-$solr->[0]" =~ tr/_/-/r, engine_type => 'solr',
        auth_kind => $solr->[0], base_url => 'https://solr.example.com:8983/solr');
    is($r->{status}, 201, "solr with $solr->[0] → 201") or diag($r->{body});
    is($r->{json}{engine_type}, 'solr', 'engine_type solr');
}

# --- 400s and their order ----------------------------------------------------------------

for my $case (
    [{engine_type => 'vespa'}, 'ENGINE_NOT_SUPPORTED',
        qr/^engine_type must be one of: \['elasticsearch', 'opensearch', 'solr'\] \(got: 'vespa'\)$/],
    [{engine_type => 'vespa', auth_kind => 'nope'}, 'ENGINE_NOT_SUPPORTED', qr/got: 'vespa'/],
    [{auth_kind => 'opensearch_sigv4', engine_type => 'opensearch'}, 'AUTH_KIND_NOT_SUPPORTED',
        qr/^'opensearch_sigv4' is reserved but not implemented in MVP1$/],
    [{auth_kind => 'kerberos'}, 'AUTH_KIND_NOT_SUPPORTED',
        qr/^auth_kind must be one of: \['es_apikey', 'es_basic', 'opensearch_basic', 'opensearch_sigv4', 'solr_apikey', 'solr_basic'\] \(got: 'kerberos'\)$/],
    [{engine_type => 'opensearch', auth_kind => 'es_basic'}, 'AUTH_KIND_NOT_SUPPORTED',
        qr/^auth_kind='es_basic' is not valid for engine_type='opensearch'; allowed for 'opensearch': \['opensearch_basic'\]$/],
    [{engine_type => 'solr', auth_kind => 'es_apikey'}, 'AUTH_KIND_NOT_SUPPORTED',
        qr/allowed for 'solr': \['solr_basic', 'solr_apikey'\]$/],
    [{engine_type => 'elasticsearch', auth_kind => 'solr_basic'}, 'AUTH_KIND_NOT_SUPPORTED',
        qr/allowed for 'elasticsearch': \['es_apikey', 'es_basic'\]$/],
    # 400s come before the config repo and the name.
    [{engine_type => 'vespa', config_repo_id => uuid7(), name => 'ui-null'}, 'ENGINE_NOT_SUPPORTED'],
    [{auth_kind => 'kerberos', config_repo_id => uuid7(), name => 'ui-null'}, 'AUTH_KIND_NOT_SUPPORTED'],
    )
{
    my ($over, $code, $msg) = @$case;
    $r = post(%ui, name => uniq_name('bad'), %$over);
    error_ok($r, 400, $code, "create " . json_encode($over), $msg ? (message => $msg) : ());
}
# 422s come before the 400s.
$r = post(%ui, name => 'Bad_Name', engine_type => 'vespa');
validation_ok($r, 'name', 'a bad name with a bad engine: 422 first');
$r = post(%ui, name => uniq_name('x'), engine_type => '', auth_kind => 'kerberos');
validation_ok($r, 'engine_type', 'an empty engine_type: 422');
$r = post(%ui, name => uniq_name('x'), auth_kind => 'k' x 65);
validation_ok($r, 'auth_kind', 'auth_kind over 64 characters: 422');

for my $case (
    ['ftp://h', qr/base_url: must use http or https scheme/], ['localhost:9200', qr/must use http or https/],
    ['http://', qr/must include a host/], ['https://:9200/x', qr/must include a host/],
    ['http://h:0', qr/has an invalid port/], ['http://h:65536', qr/has an invalid port/],
    ['http://h:port', qr/has an invalid port/], ['http://h:', qr/has an invalid port/],
    ['', qr/base_url/],
    )
{
    my ($url, $msg) = @$case;
    $r = post(%ui, name => uniq_name('url'), base_url => $url);
    validation_ok($r, 'base_url', "base_url '$url'");
    like($r->{json}{detail}{message} // '', $msg, "base_url '$url': the reason");
}
for my $url ('http://[::1]:9200', 'HTTPS://ES.example.com', 'http://user@h:1/p?q#f', 'http://h:65535') {
    $r = post(%ui, name => uniq_name('url'), base_url => $url);
    is($r->{status}, 201, "base_url '$url' → 201") or diag($r->{body});
}
for my $tf ('', '   ', 'x' x 257, 5) {
    $r = post(%ui, name => uniq_name('tf'), target_filter => $tf);
    validation_ok($r, 'target_filter', 'target_filter ' . json_encode($tf));
}
$r = post(%ui, name => uniq_name('tf'), target_filter => ' ' . ('x' x 256) . "\t");
is($r->{status}, 201, 'target_filter of 256 after stripping → 201');

# --- DELETE and after --------------------------------------------------------------------

my $repo = create_repo($t);
my $tmpl = create_template($t);
$r = post(%ui, name => 'doomed', config_repo_id => $repo->{id}, config_path => 'a/b');
is($r->{status}, 201, 'a bound cluster') or diag($r->{body});
my $doomed = $r->{json};
$r = api($t, POST => '/api/v1/proposals', json => {cluster_id => $doomed->{id},
    template_id => $tmpl->{id}, config_diff => {'title.boost' => {to => 2}}});
is($r->{status}, 201, 'a proposal on it');
my $pid = $r->{json}{id};

$r = api($t, DELETE => "/api/v1/clusters/$doomed->{id}");
is($r->{status}, 204, 'DELETE → 204');
is($r->{body} // '', '', '204 has no body');
ok(defined header($r, 'x-request-id'), '204 carries X-Request-ID');
like($t->psql('SELECT deleted_at IS NOT NULL FROM clusters WHERE id = ' . sql_quote($doomed->{id})),
    qr/^t/, 'deleted_at set, row kept');
error_ok(api($t, DELETE => "/api/v1/clusters/$doomed->{id}"), 404, 'CLUSTER_NOT_FOUND',
    'DELETE again → 404', message => qr/^cluster \Q$doomed->{id}\E not found$/);
error_ok(api($t, DELETE => '/api/v1/clusters/' . uuid7()), 404, 'CLUSTER_NOT_FOUND', 'DELETE unknown');
error_ok(api($t, GET => "/api/v1/clusters/$doomed->{id}"), 404, 'CLUSTER_NOT_FOUND', 'GET after DELETE');
error_ok(api($t, PATCH => "/api/v1/clusters/$doomed->{id}", json => {notes => 'x'}), 404,
    'CLUSTER_NOT_FOUND', 'PATCH after DELETE');
my @l = list_ok(api($t, GET => '/api/v1/clusters?limit=200'), 'list after DELETE');
ok(!grep({ $_->{id} eq $doomed->{id} } @l), 'the list omits it');
error_ok(api($t, POST => "/api/v1/proposals/$pid/open_pr"), 422, 'CLUSTER_HAS_NO_CONFIG_REPO',
    'open_pr after DELETE');
$r = api($t, GET => "/api/v1/proposals/$pid");
is($r->{status}, 200, 'the proposal is still served');
is_deeply($r->{json}{cluster}, {id => $doomed->{id}, name => 'doomed',
    engine_type => 'elasticsearch', environment => 'dev'}, 'its cluster embed keeps the name');
my @p = list_ok(api($t, GET => "/api/v1/proposals?cluster_id=$doomed->{id}"), 'proposal list', total => 1);
is($p[0]{cluster}{name}, 'doomed', 'list embed keeps the name');

# --- revival -----------------------------------------------------------------------------

$r = post(%ui, name => 'doomed', engine_type => 'solr', auth_kind => 'solr_apikey',
    base_url => 'https://solr.example.com', notes => 'back', target_filter => 'x*');
is($r->{status}, 201, 'create with a soft-deleted name → 201 (revived)') or diag($r->{body});
is($r->{json}{id}, $doomed->{id}, 'same id');
is($r->{json}{created_at}, $doomed->{created_at}, 'same created_at');
is($r->{json}{$_->[0]}, $_->[1], "$_->[0] from the body")
    for [engine_type => 'solr'], [auth_kind => 'solr_apikey'], [notes => 'back'], [target_filter => 'x*'];
is($r->{json}{config_repo_id}, $repo->{id}, 'config_repo_id kept when absent from the body');
is($r->{json}{config_path}, 'a/b', 'config_path kept when absent from the body');
is(api($t, GET => "/api/v1/clusters/$doomed->{id}")->{status}, 200, 'GET after revival');
is(api($t, DELETE => "/api/v1/clusters/$doomed->{id}")->{status}, 204, 'delete it again');
$r = post(%ui, name => 'doomed', config_repo_id => undef, config_path => undef);
is($r->{status}, 201, 'revived with config_repo_id/config_path null');
ok(!defined $r->{json}{config_repo_id} && !defined $r->{json}{config_path}, 'given nulls are written');
error_ok(post(%ui, name => 'doomed'), 409, 'CLUSTER_NAME_TAKEN', 'an active name → 409',
    message => qr/^name doomed is already registered$/);

my @races = $t->parallel(6, sub {
    my $x = $t->http(POST => '/api/v1/clusters', json => {%ui, name => 'racing-ui'});
    return {status => $x->{status}, code => $x->{json}{detail}{error_code} // ''};
});
is(scalar(grep { $_->{status} == 201 } @races), 1, 'racing creates: one 201');
is(scalar(grep { $_->{status} == 409 && $_->{code} eq 'CLUSTER_NAME_TAKEN' } @races), 5,
    'racing creates: the rest 409') or diag(json_encode(\@races));

# --- test-connection -----------------------------------------------------------------------

my %probe = (engine_type => 'elasticsearch', base_url => 'http://localhost:9200',
    auth_kind => 'es_basic', credentials_ref => 'es-local');
for my $body (\%probe, {%probe, engine_config => undef}, {%probe, engine_config => {a => 1}},
    {%probe, engine_type => 'solr', auth_kind => 'solr_basic'})
{
    $r = api($t, POST => '/api/v1/clusters/test-connection', json => $body);
    error_ok($r, 501, 'CLUSTER_PROBE_UNSUPPORTED', 'test-connection ' . json_encode($body),
        message => qr/^this server does not probe search clusters; register the cluster without a connection test$/);
}
error_ok(api($t, POST => '/api/v1/clusters/test-connection', json => {%probe, engine_type => 'vespa'}),
    400, 'ENGINE_NOT_SUPPORTED', 'test-connection: engine');
error_ok(api($t, POST => '/api/v1/clusters/test-connection',
    json => {%probe, auth_kind => 'opensearch_sigv4'}), 400, 'AUTH_KIND_NOT_SUPPORTED',
    'test-connection: auth kind');
validation_ok(api($t, POST => '/api/v1/clusters/test-connection', json => {%probe, name => 'x'}),
    'name', 'test-connection: no name field');
validation_ok(api($t, POST => '/api/v1/clusters/test-connection',
    json => {%probe, base_url => 'ftp://x', engine_type => 'vespa'}), 'base_url',
    'test-connection: 422 before 400');
validation_ok(api($t, POST => '/api/v1/clusters/test-connection', json => {}),
    [qw(engine_type base_url auth_kind credentials_ref)], 'test-connection: fields required');
error_ok(api($t, GET => '/api/v1/clusters/test-connection'), 404, 'CLUSTER_NOT_FOUND',
    'GET /clusters/test-connection is a cluster id');
error_ok(api($t, DELETE => '/api/v1/clusters/test-connection'), 404, 'CLUSTER_NOT_FOUND',
    'DELETE /clusters/test-connection is a cluster id');

responses_ok();
$t->done;
