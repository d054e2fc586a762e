#!/usr/bin/perl
# The served OpenAPI document (GET /api/v1/openapi.json), checked offline
# with Debian's libjson-validator-perl: valid against the OpenAPI 3.0 schema
# it ships, security declared (nginx enforces it per deployment), every tag
# described, every operation with a 4xx response, and real responses of the
# module valid against the document. ./build.sh lint adds Redocly's
# recommended ruleset (network).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use JSON::Validator::Schema::OpenAPIv3;

use RelyLoop::Test qw(json_decode);
use RelyLoop::Fixtures qw(api);

BEGIN { alarm 180 }

my $t = RelyLoop::Test->new;
$t->start_pg->migrate->start_worker->start_nginx;

my $r = $t->http(GET => '/api/v1/openapi.json');
is($r->{status}, 200, 'openapi.json → 200');
my $doc = json_decode($r->{body});
ok(ref $doc eq 'HASH', 'a JSON object');

# --- the OpenAPI 3.0 schema ---------------------------------------------------

my $schema = JSON::Validator::Schema::OpenAPIv3->new($doc);
is_deeply([map {"$_"} @{$schema->errors}], [], 'valid against the OpenAPI 3.0 schema (offline)');

# the validator catches what it should (so the check above means something)
{
    my $bad = json_decode($r->{body});
    $bad->{paths}{'/api/v1/health'}{get}{responses}{200}{content}{'application/json'}{schema} =
        {type => 'bogus'};
    ok(@{JSON::Validator::Schema::OpenAPIv3->new($bad)->errors}, 'a broken copy is rejected');
}

# --- security -----------------------------------------------------------------

is_deeply($doc->{security}, [{}, {basicAuth => []}],
    'root security: none or HTTP Basic, as the deployment decides');
my $scheme = $doc->{components}{securitySchemes}{basicAuth} || {};
is($scheme->{type}, 'http', 'basicAuth is an http scheme');
is($scheme->{scheme}, 'basic', '... basic');
like($scheme->{description} // '', qr/nginx/, '... described as nginx-enforced');

# --- tags and operations --------------------------------------------------------

my %tags = map { $_->{name} => $_ } @{$doc->{tags} || []};
ok(%tags, 'tags declared');
for my $name (sort keys %tags) {
    ok(length($tags{$name}{description} // ''), "tag $name is described");
}
my (%op_ids, $ops);
for my $path (sort keys %{$doc->{paths}}) {
    for my $method (sort keys %{$doc->{paths}{$path}}) {
        next unless $method =~ /^(get|put|post|delete|patch|head|options)$/;
        my $op = $doc->{paths}{$path}{$method};
        $ops++;
        my @codes = keys %{$op->{responses} || {}};
        ok((grep { /^4\d\d$/ } @codes), "$method $path has a 4xx response");
        ok(!(grep { !$tags{$_} } @{$op->{tags} || []}) && @{$op->{tags} || []},
            "$method $path: its tags are declared");
        ok($op->{operationId} && !$op_ids{$op->{operationId}}++, "$method $path: a unique operationId");
    }
}
cmp_ok($ops, '>=', 20, "$ops operations");

# --- real responses against the document ------------------------------------------

# This validator version does not follow a response's $ref to
# components/responses: inline those (the schemas' $refs it follows).
my $inlined = json_decode($r->{body});
for my $item (values %{$inlined->{paths}}) {
    for my $op (values %$item) {
        for my $resp (values %{$op->{responses} || {}}) {
            my $ref = $resp->{'$ref'} or next;
            $ref =~ s{^#/components/responses/}{} or next;
            %$resp = %{$inlined->{components}{responses}{$ref}};
        }
    }
}
my $responses = JSON::Validator::Schema::OpenAPIv3->new($inlined);

sub response_ok {
    my ($method, $path, $tmpl, $name) = @_;
    my $res = $t->http(uc $method => $path);
    my $body = json_decode($res->{body});
    ok(exists $doc->{paths}{$tmpl}{$method}{responses}{$res->{status}},
        "$name: $res->{status} is documented");
    my @errors = $responses->validate_response([$method, $tmpl, $res->{status}], {
        body => sub { {exists => 1, value => $body, content_type => 'application/json'} },
        header => sub { {exists => 0} },
    });
    is_deeply([map {"$_"} @errors], [], "$name: $res->{status} matches the document")
        or diag($res->{body});
}

response_ok(get => '/api/v1/health', '/api/v1/health', 'health');
response_ok(get => '/api/v1/clusters', '/api/v1/clusters', 'cluster list');
response_ok(get => '/api/v1/clusters/nope', '/api/v1/clusters/{id}', 'unknown cluster');
response_ok(get => '/api/v1/clusters?limit=0', '/api/v1/clusters', 'bad limit');
response_ok(get => '/api/v1/proposals/nope', '/api/v1/proposals/{id}', 'unknown proposal');
response_ok(get => '/api/v1/openapi.json', '/api/v1/openapi.json', 'this document');
{
    # a body that does not match must be reported (the checks above mean something)
    my @errors = $responses->validate_response([get => '/api/v1/clusters/{id}', 404],
        {body => sub { {exists => 1, value => {oops => 1}, content_type => 'application/json'} }});
    ok(@errors, 'a wrong error body is reported');
}

$t->done;
