#!/usr/bin/perl
# docs/api.md and docs/directives.md conventions across the API: unknown routes (404), wrong
# methods (405 + Allow), X-Request-ID, CORS, OPTIONS, request bodies and their
# limits, timestamps, health, openapi.json.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time);
use RelyLoop::Test;
use RelyLoop::Fixtures;

my $t = setup();

my $repo = create_repo($t);
my $cluster = create_cluster($t);
my $template = create_template($t);
my $base = base_rows($t, cluster => $cluster, template => $template);
my $sid = insert_study($t, $base, status => 'running');
my $pid = insert_proposal($t, cluster_id => $cluster->{id}, template_id => $template->{id});

my $UUID7 = qr/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

sub method_set {
    my ($v) = @_;
    return join ',', sort grep { $_ ne 'HEAD' && $_ ne 'OPTIONS' }
        map { uc } grep { length } split /\s*,\s*/, $v // '';
}
# envelope_ok(raw_http result, status, code, message, what): the error
# envelope as JSON with an X-Request-ID.
sub envelope_ok {
    my ($res, $status, $code, $message, $what) = @_;
    my $h = raw_headers($res->{raw});
    my $d = ref $res->{json} eq 'HASH' && ref $res->{json}{detail} eq 'HASH' ? $res->{json}{detail} : {};
    is($res->{status}, $status, "$what → $status") or diag(substr($res->{raw} // '', 0, 300));
    like($h->{'content-type'} // '', qr{^application/json}, "$what: application/json");
    is($d->{error_code}, $code, "$what: $code");
    is($d->{message}, $message, "$what: \"$message\"");
    ok(defined $h->{'x-request-id'}, "$what: X-Request-ID");
}
sub raw_headers {
    my ($raw) = @_;
    my ($head) = split /\r\n\r\n/, $raw // '', 2;
    my %h;
    for (split /\r\n/, $head // '') {
        $h{lc $1} = $2 if /^([^:]+):\s*(.*)$/;
    }
    return \%h;
}

# --- unknown routes -----------------------------------------------------------------------

for my $case (['GET', '/api/v1/nope'], ['GET', '/api/v1'], ['GET', '/api/v1/'], ['GET', '/api/'],
    ['GET', '/api/v2/health'], ['GET', '/api/v1/config-repos/x/y'],
    ['GET', "/api/v1/studies/$sid/unknown"], ['POST', "/api/v1/proposals/$pid/merge"],
    ['GET', '/api/v1/health/x'], ['GET', '/api/v1/CONFIG-REPOS'], ['GET', '/api/v1/config-reposx'],
    ['POST', '/api/v1/nope'], ['PATCH', '/api/v1/nope'], ['DELETE', '/api/v1/nope'],
    ['GET', '/api/v1/_test/studies'], ['GET', '/api/v1/openapi.yaml'])
{
    my ($m, $path) = @$case;
    for my $i (1 .. 2) {
        my $r = api($t, $m => $path);
        error_ok($r, 404, 'RESOURCE_NOT_FOUND', "$m $path (#$i)");
    }
}

# --- wrong methods --------------------------------------------------------------------------

for my $case (
    ['DELETE', '/api/v1/config-repos', 'GET,POST'],
    ['PATCH', '/api/v1/config-repos', 'GET,POST'],
    ['PUT', "/api/v1/config-repos/$repo->{id}", 'GET'],
    ['DELETE', "/api/v1/config-repos/$repo->{id}", 'GET'],
    ['PATCH', '/api/v1/clusters', 'GET,POST'],
    ['PUT', "/api/v1/clusters/$cluster->{id}", 'DELETE,GET,PATCH'],
    ['POST', "/api/v1/clusters/$cluster->{id}", 'DELETE,GET,PATCH'],
    ['GET', "/api/v1/proposals/$pid/reinstate", 'POST'],
    ['PUT', '/api/v1/clusters/test-connection', 'POST'],
    ['PUT', '/api/v1/query-templates', 'GET,POST'],
    ['PATCH', "/api/v1/query-templates/$template->{id}", 'GET'],
    ['POST', '/api/v1/studies', 'GET'],
    ['DELETE', "/api/v1/studies/$sid", 'GET'],
    ['POST', "/api/v1/studies/$sid/trials", 'GET'],
    ['GET', "/api/v1/studies/$sid/cancel", 'POST'],
    ['POST', "/api/v1/studies/$sid/digest", 'GET'],
    ['PUT', '/api/v1/proposals', 'GET,POST'],
    ['PATCH', "/api/v1/proposals/$pid", 'GET'],
    ['GET', "/api/v1/proposals/$pid/reject", 'POST'],
    ['GET', "/api/v1/proposals/$pid/open_pr", 'POST'],
    ['POST', '/api/v1/health', 'GET'],
    ['DELETE', '/api/v1/openapi.json', 'GET'],
    ['GET', "/api/v1/studies/unknown-id/cancel", 'POST'],
    )
{
    my ($m, $path, $allow) = @$case;
    my $r = api($t, $m => $path, $m =~ /^(POST|PUT|PATCH)$/ ? (json => {}) : ());
    error_ok($r, 405, 'METHOD_NOT_ALLOWED', "$m $path");
    is(method_set(header($r, 'allow')), $allow, "$m $path: Allow lists $allow")
        or diag('Allow: ' . (header($r, 'allow') // 'missing'));
}
is($t->psql("SELECT status FROM studies WHERE id = '$sid'"), 'running', 'no 405 changed a row');

# --- X-Request-ID --------------------------------------------------------------------------

for my $id ('client-req-0001', 'A1b2_C3.d4-e5', '0196c0de-0000-7000-8000-000000000001', 'a' x 128) {
    for my $path ('/api/v1/health', '/api/v1/config-repos', '/api/v1/nope') {
        my $r = api($t, GET => $path, headers => {'X-Request-ID' => $id});
        is(header($r, 'x-request-id'), $id, "safe X-Request-ID echoed on $path ($r->{status}): "
            . substr($id, 0, 20));
    }
}
my $r = api($t, POST => '/api/v1/config-repos', json => {bad => 1},
    headers => {'X-Request-ID' => 'on-a-422'});
is(header($r, 'x-request-id'), 'on-a-422', 'echoed on a 422');
$r = api($t, DELETE => '/api/v1/health', headers => {'X-Request-ID' => 'on-a-405'});
is(header($r, 'x-request-id'), 'on-a-405', 'echoed on a 405');

my %seen;
my $now_ms = int(time * 1000);
for my $case (['absent', undef], ['129 characters', 'a' x 129], ['a space', 'has space'],
    ['a quote', 'quo"te'], ['markup', '<script>alert(1)</script>'], ['empty', ''],
    ['a comma', 'a,b'])
{
    my ($what, $value) = @$case;
    for my $path ('/api/v1/health', '/api/v1/nope', "/api/v1/clusters/$cluster->{id}") {
        my $r = api($t, GET => $path, defined $value ? (headers => {'X-Request-ID' => $value}) : ());
        my $got = header($r, 'x-request-id') // '';
        like($got, $UUID7, "X-Request-ID $what → a fresh UUIDv7 ($path)");
        ok(!$seen{$got}++, 'a distinct one each time');
        if ($got =~ /^([0-9a-f]{8})-([0-9a-f]{4})/) {
            my $ms = do { no warnings "portable"; hex($1 . $2) };
            ok(abs($ms - $now_ms) < 300_000, 'its UUIDv7 timestamp is now') or diag("$ms vs $now_ms");
        }
    }
}
for my $case (['a control character', "a\x01b"], ['non-ASCII bytes', "caf\xc3\xa9"],
    ['a tab', "a\tb"])
{
    my ($what, $value) = @$case;
    my $raw = $t->raw_http("GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Request-ID: $value\r\n"
        . "Connection: close\r\n\r\n");
    my $h = raw_headers($raw->{raw});
    is($raw->{status}, 200, "X-Request-ID with $what: 200");
    like($h->{'x-request-id'} // '', $UUID7, "X-Request-ID with $what → a fresh UUIDv7");
}
my $raw = $t->raw_http("GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Request-ID: first\r\n"
    . "X-Request-ID: second\r\nConnection: close\r\n\r\n");
like(raw_headers($raw->{raw})->{'x-request-id'} // '', qr/^(first|second|[0-9a-f-]{36})$/,
    'two X-Request-ID headers: one value, never both joined');

# --- GETs with Content-Type and no body; other body tolerances ------------------------------

for my $path ('/api/v1/health', '/api/v1/config-repos', "/api/v1/config-repos/$repo->{id}",
    '/api/v1/clusters', "/api/v1/clusters/$cluster->{id}", '/api/v1/query-templates',
    "/api/v1/studies/$sid", "/api/v1/studies/$sid/trials", '/api/v1/proposals',
    "/api/v1/proposals/$pid", '/api/v1/openapi.json')
{
    for my $h ({'Content-Type' => 'application/json'},
        {'Content-Type' => 'application/json', 'Content-Length' => 0},
        {'Content-Type' => 'application/json; charset=utf-8', 'Accept' => 'application/json'})
    {
        my $r = api($t, GET => $path, headers => $h);
        is($r->{status}, 200, "GET $path with " . join(', ', map { "$_: $h->{$_}" } sort keys %$h));
    }
}

my $chunk_body = json_encode({name => 'chunked-repo', repo_url => 'https://github.com/acme/chunked',
    auth_ref => 'pat-fixture'});
my $half = int(length($chunk_body) / 2);
my $chunked = sprintf("%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", $half, substr($chunk_body, 0, $half),
    length($chunk_body) - $half, substr($chunk_body, $half));
$raw = $t->raw_http("POST /api/v1/config-repos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n$chunked");
is($raw->{status}, 201, 'a chunked request body → 201') or diag($raw->{raw});
is($raw->{json}{name}, 'chunked-repo', 'and it was read whole');

$r = api($t, POST => '/api/v1/config-repos', body => json_encode({name => 'ct-text',
    repo_url => 'https://github.com/acme/ct-text', auth_ref => 'pat-fixture'}),
    headers => {'Content-Type' => 'text/plain'});
ok($r->{status} == 201 || $r->{status} == 415 || $r->{status} == 422,
    'a JSON body sent as text/plain: created or refused with an envelope, never 5xx')
    or diag("$r->{status} $r->{body}");

$r = api($t, POST => '/api/v1/config-repos', body => "\xef\xbb\xbf" . json_encode({name => 'bom',
    repo_url => 'https://github.com/acme/bom', auth_ref => 'pat-fixture'}),
    headers => {'Content-Type' => 'application/json'});
ok($r->{status} == 201 || $r->{status} == 422, 'a BOM before the JSON: 201 or 422, never 5xx')
    or diag("$r->{status} $r->{body}");

# --- timestamps --------------------------------------------------------------------------------

my %ts = (
    '2026-05-11 22:13:43.123456+02' => '2026-05-11T20:13:43.123456+00:00',
    '2026-01-01 00:00:00+00' => '2026-01-01T00:00:00.000000+00:00',
    '1999-12-31 23:59:59.999999-08' => '2000-01-01T07:59:59.999999+00:00',
    '2026-07-04 12:00:00.1+00' => '2026-07-04T12:00:00.100000+00:00',
    '2024-02-29 23:59:59.000001+00' => '2024-02-29T23:59:59.000001+00:00',
);
my %ts_ids;
for my $in (sort keys %ts) {
    my $id = uuid7();
    $ts_ids{$in} = $id;
    $t->psql("INSERT INTO config_repos (id, name, provider, repo_url, auth_ref, created_at) VALUES "
        . "('$id', '" . uniq_name('ts') . "', 'github', 'https://github.com/a/b', 'x', '$in')");
}
sub timestamps_ok {
    my ($label) = @_;
    for my $in (sort keys %ts) {
        my $r = api($t, GET => "/api/v1/config-repos/$ts_ids{$in}");
        is($r->{json}{created_at}, $ts{$in}, "$label: $in → $ts{$in}");
    }
    my $r = api($t, GET => '/api/v1/config-repos?limit=200');
    my %by_id = map { ($_->{id} // '') => $_->{created_at} } @{$r->{json}{data} || []};
    is($by_id{$ts_ids{'2026-05-11 22:13:43.123456+02'}}, '2026-05-11T20:13:43.123456+00:00',
        "$label: the same in a list");
    my $w = walk_pages($t, '/api/v1/config-repos', 2);
    is(scalar @{$w->{ids}}, $t->psql('SELECT count(*) FROM config_repos'),
        "$label: cursors still walk every row") or diag($w->{error});
}
timestamps_ok('session time zone UTC');
for my $c (['Pacific/Chatham', "ALTER DATABASE relyloop SET timezone = 'Pacific/Chatham'"],
    ['DateStyle SQL, DMY', "ALTER DATABASE relyloop SET DateStyle = 'SQL, DMY'"])
{
    $t->psql($c->[1]);
    $t->stop_nginx;
    $t->start_nginx;
    timestamps_ok("database default $c->[0]");
}
$t->psql("ALTER DATABASE relyloop RESET ALL");
$t->stop_nginx;
$t->start_nginx;

# --- openapi.json -----------------------------------------------------------------------------

for my $i (1 .. 2) {
    $r = api($t, GET => '/api/v1/openapi.json');
    is($r->{status}, 200, "openapi.json → 200 (#$i)");
}
my $doc = $r->{json} || {};
like($doc->{openapi} // '', qr/^3\.\d+(\.\d+)?$/, 'an OpenAPI 3 document');
ok(ref $doc->{info} eq 'HASH' && defined $doc->{info}{title} && defined $doc->{info}{version},
    'info.title and info.version');
my %paths;
for my $p (keys %{$doc->{paths} || {}}) {
    (my $n = $p) =~ s/\{[^}]+\}/{}/g;
    $n =~ s{^/api/v1}{};
    $paths{$n} = {map { lc($_) => $doc->{paths}{$p}{$_} } keys %{$doc->{paths}{$p} || {}}};
}
for my $case (
    ['/config-repos', 'get:200', 'post:201'], ['/config-repos/{}', 'get:200'],
    ['/clusters', 'get:200', 'post:201'], ['/clusters/{}', 'get:200', 'patch:200'],
    ['/query-templates', 'get:200', 'post:201'], ['/query-templates/{}', 'get:200'],
    ['/studies', 'get:200'], ['/studies/{}', 'get:200'], ['/studies/{}/trials', 'get:200'],
    ['/studies/{}/cancel', 'post:200'], ['/studies/{}/digest', 'get:200'],
    ['/proposals', 'get:200', 'post:201'], ['/proposals/{}', 'get:200'],
    ['/proposals/{}/reject', 'post:200'], ['/proposals/{}/open_pr', 'post:202'],
    ['/_test/studies/seed-completed', 'post:201'], ['/health', 'get:200'],
    ['/openapi.json', 'get:200'])
{
    my ($p, @ops) = @$case;
    for my $op (@ops) {
        my ($m, $code) = split /:/, $op;
        my $o = $paths{$p} && $paths{$p}{$m};
        ok(ref $o eq 'HASH' && ref $o->{responses} eq 'HASH' && exists $o->{responses}{$code},
            "openapi: $m $p with a $code response");
    }
}
my $schemas = join ' ', sort keys %{($doc->{components} || {})->{schemas} || {}};
for my $shape (qw(ConfigRepo Cluster Study Trial Digest ProposalSummary ProposalDetail)) {
    like($schemas, qr/\b\Q$shape\E\b/i, "openapi: a $shape schema");
}
like($r->{body}, qr/VALIDATION_ERROR/, 'openapi: documents the error codes');

# --- health ------------------------------------------------------------------------------------

for my $i (1 .. 3) {
    $r = api($t, GET => '/api/v1/health');
    is($r->{status}, 200, "health → 200 (#$i)");
    is_deeply($r->{json}, {status => 'ok', database => 'ok', worker => 'ok'}, 'health body');
}
$t->stop_worker;
for my $i (1 .. 2) {
    $r = api($t, GET => '/api/v1/health');
    is($r->{status}, 503, "worker down: health → 503 (#$i)");
    my $j = $r->{json} || {};
    ok((defined $j->{worker} && $j->{worker} ne 'ok' && ($j->{database} // '') eq 'ok')
        || ($r->{body} // '') =~ /worker/i, 'the worker is named as the failing part')
        or diag($r->{body});
}
$t->start_worker;
$r = api($t, GET => '/api/v1/health');
is($r->{status}, 200, 'worker back: health → 200');

# --- OPTIONS without relyloop_cors_origins ------------------------------------------------------

for my $case (['/api/v1/config-repos', 'GET,POST'], ["/api/v1/clusters/$cluster->{id}", 'DELETE,GET,PATCH'],
    ["/api/v1/proposals/$pid/reject", 'POST'], ['/api/v1/health', 'GET'])
{
    my ($path, $allow) = @$case;
    for my $origin (undef, 'https://ui.example.com') {
        $r = api($t, OPTIONS => $path, headers => {defined $origin ? (Origin => $origin,
            'Access-Control-Request-Method' => 'POST') : ()});
        is($r->{status}, 204, "OPTIONS $path → 204" . ($origin ? ' (with an Origin)' : ''));
        is(method_set(header($r, 'allow')), $allow, "OPTIONS $path: Allow $allow")
            or diag('Allow: ' . (header($r, 'allow') // 'missing'));
        ok(!grep(/^access-control-/, keys %{$r->{headers}}), 'no CORS headers without the directive');
        is($r->{body} // '', '', 'no body');
    }
}

# --- CORS ---------------------------------------------------------------------------------------

$t->stop_nginx;
$t->start_nginx(cors => ['https://ui.example.com', 'http://localhost:5173']);
my $ORIGIN = 'https://ui.example.com';

sub cors_ok {
    my ($r, $origin, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is(header($r, 'access-control-allow-origin'), $origin, "$name: Access-Control-Allow-Origin");
    my %exp = map { lc($_) => 1 } split /\s*,\s*/, header($r, 'access-control-expose-headers') // '';
    ok($exp{'x-total-count'} && $exp{'x-request-id'},
        "$name: Access-Control-Expose-Headers: X-Total-Count, X-Request-ID")
        or diag(header($r, 'access-control-expose-headers') // 'missing');
    like(header($r, 'vary') // '', qr/\bOrigin\b/i, "$name: Vary: Origin");
}

for my $origin ($ORIGIN, 'http://localhost:5173') {
    for my $case (['GET', '/api/v1/health', 200], ['GET', '/api/v1/config-repos', 200],
        ['GET', "/api/v1/clusters/$cluster->{id}", 200], ['GET', '/api/v1/nope', 404],
        ['GET', '/api/v1/clusters/' . uuid7(), 404], ['DELETE', '/api/v1/health', 405],
        ['POST', '/api/v1/config-repos', 422], ['PATCH', "/api/v1/clusters/$cluster->{id}", 200])
    {
        my ($m, $path, $status) = @$case;
        my $r = api($t, $m => $path, headers => {Origin => $origin},
            $m eq 'POST' ? (json => {bad => 1}) : $m eq 'PATCH' ? (json => {notes => 'cors'}) : ());
        is($r->{status}, $status, "$origin $m $path → $status");
        cors_ok($r, $origin, "$origin $m $path");
    }
}
$r = api($t, GET => '/api/v1/config-repos', headers => {Origin => $ORIGIN});
ok(defined header($r, 'x-total-count'), 'X-Total-Count is there to expose');
$t->stop_worker;
$r = api($t, GET => '/api/v1/health', headers => {Origin => $ORIGIN});
is($r->{status}, 503, 'worker down: health → 503');
cors_ok($r, $ORIGIN, 'a 503');
$t->start_worker;

for my $case (['/api/v1/config-repos', 'POST'], ["/api/v1/clusters/$cluster->{id}", 'PATCH'],
    ["/api/v1/proposals/$pid/open_pr", 'POST'], ['/api/v1/studies', 'GET'])
{
    my ($path, $method) = @$case;
    for my $i (1 .. 2) {
        my $r = api($t, OPTIONS => $path, headers => {Origin => $ORIGIN,
            'Access-Control-Request-Method' => $method,
            'Access-Control-Request-Headers' => 'content-type, x-request-id'});
        is($r->{status}, 204, "preflight $method $path → 204 (#$i)");
        is(header($r, 'access-control-allow-origin'), $ORIGIN, 'preflight: the origin echoed');
        is(method_set(header($r, 'access-control-allow-methods')) , 'DELETE,GET,PATCH,POST',
            'preflight: Access-Control-Allow-Methods: GET, POST, PATCH, DELETE, OPTIONS');
        like(header($r, 'access-control-allow-methods') // '', qr/\bOPTIONS\b/, '... with OPTIONS');
        is(join(',', sort map { lc } split /\s*,\s*/, header($r, 'access-control-allow-headers') // ''),
            'accept,content-type,x-request-id',
            'preflight: Access-Control-Allow-Headers: Content-Type, Accept, X-Request-ID');
        is(header($r, 'access-control-max-age'), '600', 'preflight: Access-Control-Max-Age: 600');
        like(header($r, 'vary') // '', qr/\bOrigin\b/i, 'preflight: Vary: Origin');
        is($r->{body} // '', '', 'preflight: no body');
    }
}

for my $origin ('https://evil.example.com', 'https://ui.example.com.evil.com', 'http://ui.example.com',
    'https://ui.example.com:8443', 'null', 'https://UI.example.com/')
{
    for my $case (['GET', '/api/v1/health'], ['GET', '/api/v1/nope'], ['OPTIONS', '/api/v1/config-repos'])
    {
        my ($m, $path) = @$case;
        my $r = api($t, $m => $path, headers => {Origin => $origin,
            $m eq 'OPTIONS' ? ('Access-Control-Request-Method' => 'POST') : ()});
        ok(!grep(/^access-control-/, keys %{$r->{headers}}),
            "origin $origin, $m $path: no CORS headers ($r->{status})")
            or diag(join ', ', grep(/^access-control-/, keys %{$r->{headers}}));
        is($r->{status}, 204, "origin $origin: OPTIONS → 204") if $m eq 'OPTIONS';
    }
}
$r = api($t, GET => '/api/v1/health');
ok(!defined header($r, 'access-control-allow-origin'), 'no Origin header: no CORS headers');

# --- body limits -------------------------------------------------------------------------------

$t->stop_nginx;
$t->start_nginx(http => "    client_max_body_size 2k;\n    client_body_buffer_size 512;\n",
    cors => [$ORIGIN]);

sub big_repo_body {
    my ($size) = @_;
    my $b = json_encode({name => 'big-body', repo_url => 'https://github.com/acme/big',
        auth_ref => 'pat-fixture', default_branch => 'main'});
    my $pad = $size - length $b;
    $b =~ s/"main"/'"' . ('m' x ($pad + 4)) . '"'/e;
    return $b;
}
my $small = big_repo_body(400);
$r = api($t, POST => '/api/v1/config-repos', body => $small,
    headers => {'Content-Type' => 'application/json'});
is($r->{status}, 422, 'a 400-byte body within the buffer reaches validation (branch too long)')
    or diag($r->{body});

# A body between client_body_buffer_size and client_max_body_size is kept in
# memory for an API location (docs/directives.md, relyloop_body_buffer_size):
# it reaches validation, whether it arrives with the headers or after them.
my $spill = big_repo_body(1600);
for my $i (1 .. 2) {
    $r = api($t, POST => '/api/v1/config-repos', body => $spill,
        headers => {'Content-Type' => 'application/json'});
    is($r->{status}, 422, "a 1.6k body over client_body_buffer_size 512 reaches validation (#$i)")
        or diag($r->{body});
}
sub late_body {
    my ($id) = @_;
    # headers first, the body a moment later: nothing of it arrives with the headers
    my $s = ka_connect($t);
    print $s "POST /api/v1/config-repos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        . 'Content-Length: ' . length($spill) . "\r\nX-Request-ID: $id\r\n\r\n";
    Time::HiRes::sleep(0.1);
    print $s $spill;
    my $x = ka_read($s);
    close $s;
    return $x;
}
{
    my $x = late_body('in-memory');
    is($x && $x->{status}, 422, 'a 1.6k body sent after its headers reaches validation too');
}

# Over relyloop_body_buffer_size (but within client_max_body_size) nginx
# spools the body to a temporary file, which the module does not read back.
$t->stop_nginx;
$t->start_nginx(http => "    client_max_body_size 2k;\n    client_body_buffer_size 512;\n"
    . "    relyloop_body_buffer_size 1k;\n", cors => [$ORIGIN]);
for my $i (1 .. 2) {
    $r = api($t, POST => '/api/v1/config-repos', body => $spill,
        headers => {'Content-Type' => 'application/json'});
    error_ok($r, 413, 'PAYLOAD_TOO_LARGE', "a 1.6k body over relyloop_body_buffer_size 1k (#$i)");
}
$r = api($t, POST => '/api/v1/config-repos', body => $spill,
    headers => {'Content-Type' => 'application/json', Origin => $ORIGIN});
cors_ok($r, $ORIGIN, 'a 413 from the module');
{
    my $x = late_body('spilled');
    is($x && $x->{status}, 413, 'a body sent after its headers, spilled to a temp file → 413');
    is($x && ref $x->{json} eq 'HASH' ? $x->{json}{detail}{error_code} : undef, 'PAYLOAD_TOO_LARGE',
        '... PAYLOAD_TOO_LARGE');
    is($x && $x->{headers}{'x-request-id'}, 'spilled', '... with the X-Request-ID echoed');
}
my $over = big_repo_body(3000);
for my $i (1 .. 2) {
    $raw = $t->raw_http("POST /api/v1/config-repos HTTP/1.1\r\nHost: x\r\n"
        . "Content-Type: application/json\r\nContent-Length: " . length($over)
        . "\r\nConnection: close\r\n\r\n$over");
    my $h = raw_headers($raw->{raw});
    is($raw->{status}, 413, "a 3k body over client_max_body_size 2k → 413 (#$i)");
    like($h->{'content-type'} // '', qr{^application/json}, '... as application/json')
        or diag(substr($raw->{raw}, 0, 400));
    is(ref $raw->{json} eq 'HASH' && ref $raw->{json}{detail} eq 'HASH'
        ? $raw->{json}{detail}{error_code} : undef, 'PAYLOAD_TOO_LARGE',
        '... with the PAYLOAD_TOO_LARGE envelope');
    ok(defined $h->{'x-request-id'}, '... and an X-Request-ID');
}
$raw = $t->raw_http("POST /api/v1/config-repos HTTP/1.1\r\nHost: x\r\nOrigin: $ORIGIN\r\n"
    . "X-Request-ID: too-big-1\r\nContent-Type: application/json\r\nContent-Length: " . length($over)
    . "\r\nConnection: close\r\n\r\n$over");
my $h413 = raw_headers($raw->{raw});
is($h413->{'access-control-allow-origin'}, $ORIGIN, "nginx's 413 (client_max_body_size): CORS headers");
is($h413->{'x-request-id'}, 'too-big-1', "nginx's 413: the client's X-Request-ID echoed");
my $big_chunked = sprintf("%x\r\n%s\r\n0\r\n\r\n", length $over, $over);
$raw = $t->raw_http("POST /api/v1/config-repos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n$big_chunked");
is($raw->{status}, 413, 'a 3k chunked body → 413');
is(ref $raw->{json} eq 'HASH' && ref $raw->{json}{detail} eq 'HASH'
    ? $raw->{json}{detail}{error_code} : undef, 'PAYLOAD_TOO_LARGE', '... with the envelope')
    or diag(substr($raw->{raw}, 0, 400));
# An unknown route with a body over client_max_body_size: nginx's 413 wins
# over routing (the envelope used to say RESOURCE_NOT_FOUND under a 413).
$raw = $t->raw_http("POST /api/v2/elsewhere HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    . "Content-Length: " . length($over) . "\r\nConnection: close\r\n\r\n$over");
envelope_ok($raw, 413, 'PAYLOAD_TOO_LARGE', 'Request body too large',
    'a 3k body for an unknown route → 413');

# --- nginx's own errors before any location (server-level error_page) ----------------------

# Requests nginx rejects while reading the request line or headers: they never
# reach a location, and still get the envelope (a URI error_page: nginx answers
# 500 when told to send such a request to a @named location).
my $long_header = 'X-Big: ' . ('h' x 9000);
my $long_uri = '/api/v1/config-repos/' . ('u' x 9000);
for my $case (
    ["GARBAGE\r\n\r\n", 400, 'Malformed request', 'a malformed request line'],
    ["GET /api/v1/health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, 'Malformed request',
        'a duplicate Host header'],
    ["GET /api/v1/health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, 'Malformed request',
        'a header line without a colon'],
    ["GET /api/v1/health HTTP/1.1\r\nHost: x\r\n$long_header\r\n\r\n", 400,
        'Malformed request', 'a 9k header (nginx 494, sent as 400)'],
    ["GET /ui/page HTTP/1.1\r\nHost: x\r\n$long_header\r\n\r\n", 400,
        'Malformed request', 'a 9k header outside /api/'],
    ["GET $long_uri HTTP/1.1\r\nHost: x\r\n\r\n", 414, 'Request URI too long', 'a 9k URI'],
) {
    my ($req, $status, $message, $what) = @$case;
    my $res = eval { $t->raw_http($req) } // {status => 0, raw => "not JSON: $@"};
    envelope_ok($res, $status, 'BAD_REQUEST', $message, $what);
}
like($t->nginx_error_log, qr/client sent invalid method/, "nginx logged the malformed request line itself");
like($t->nginx_error_log, qr/client error 400 "BAD_REQUEST": "Malformed request" \(method "GARBAGE", path ""/,
    "the module's log line names what the client sent, not the redirect's GET");
like($t->nginx_error_log,
    qr{client error 413 "PAYLOAD_TOO_LARGE": "Request body too large" \(method "POST", path "/api/v2/elsewhere"},
    '... for the 413 on an unknown route too');
unlike($t->nginx_error_log, qr/empty URI in redirect/, 'no redirect of a URI-less request to a named location');
{
    # the error location is internal: a client asking for it gets nginx's own
    # 404 page (HTML, which raw_http would not decode)
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $t->nginx_port, Timeout => 10)
        or die "connect: $!";
    RelyLoop::Test::socket_timeout($s, 60);
    print $s "GET /.relyloop/error HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    my $text = do { local $/; <$s> } // '';
    like($text, qr{^HTTP/1\.1 404 }, 'GET /.relyloop/error directly → 404 (internal location)');
    unlike($text, qr/error_code/, '... from nginx, not the module');
}

$r = api($t, GET => '/api/v1/health');
is($r->{status}, 200, 'still serving after the oversized bodies');
is($t->psql("SELECT count(*) FROM config_repos WHERE name = 'big-body'"), 0, 'nothing created');

responses_ok();
$t->done;
