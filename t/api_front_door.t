#!/usr/bin/perl
# The front door (docs/api.md "JSON in and out", docs/directives.md):
# bodies only as application/json (415 UNSUPPORTED_MEDIA_TYPE otherwise,
# body-less POSTs excepted); X-Content-Type-Options: nosniff exactly once on
# every response of an API location, nginx's own errors and access refusals
# included (the module's header filter); a body above
# client_body_buffer_size but within client_max_body_size kept in memory, not
# refused; and nginx's access control (allow/deny, auth_basic, auth_request)
# in front of the API.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use HTTP::Tiny;
use IO::Socket::INET;
use MIME::Base64 ();
use Test::More;
use RelyLoop::Test qw(json_encode);
use RelyLoop::Fixtures;

$SIG{ALRM} = sub { diag('hard timeout: api_front_door.t'); exit 1 };
alarm 300;

my $t = RelyLoop::Test->new;
$t->start_pg->migrate->start_worker(test_pipeline => 1);

my ($p_deny, $p_basic, $p_authreq, $p_plain) = map { RelyLoop::Test::free_port() } 1 .. 4;
my $htpasswd = $t->dir . '/htpasswd';
{
    my $hash = qx{openssl passwd -apr1 -salt rlsalt1 's3cret'};
    chomp $hash;
    die "openssl passwd failed" unless $hash =~ /^\$apr1\$/;
    open my $fh, '>', $htpasswd or die;
    print $fh "operator:$hash\n";
    close $fh;
}
my $extra = <<"EOF";
    server {
        listen 127.0.0.1:$p_deny;
        location /api/ { deny 127.0.0.1; allow all; relyloop_api; }
    }
    server {
        listen 127.0.0.1:$p_basic;
        location /api/ { auth_basic "relyloop"; auth_basic_user_file $htpasswd; relyloop_api; }
    }
    server {
        listen 127.0.0.1:$p_authreq;
        location /api/ { auth_request /_auth; relyloop_api; }
        location = /_auth {
            internal;
            if (\$http_x_token = "letmein") { return 204; }
            return 401;
        }
    }
    server {
        listen 127.0.0.1:$p_plain;
        location /api/ { add_header X-Content-Type-Options nosniff always; relyloop_api; }
    }
EOF
$t->start_nginx(environment => 'development', http => $extra,
    location => "            allow 127.0.0.1;\n            deny all;\n");

my $repo = create_repo($t);
my $cluster = create_cluster($t, config_repo_id => $repo->{id}, config_path => 'relevance');
my $template = create_template($t);

# exactly once: HTTP::Tiny joins a repeated header into a list
sub nosniff_ok {
    my ($r, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    if (exists $r->{raw}) {
        my ($head) = split /\r\n\r\n/, $r->{raw}, 2;
        my @v = $head =~ /^X-Content-Type-Options:[ \t]*(.*?)\r?$/mig;
        is(join(', ', @v), 'nosniff', "$name: nosniff, once");
    } else {
        is(header($r, 'x-content-type-options'), 'nosniff', "$name: nosniff, once");
    }
}

# --- 415 ------------------------------------------------------------------------------------

my $cluster_body = json_encode({name => 'ct-ok', engine_type => 'elasticsearch',
    environment => 'dev', base_url => 'https://es.example.com', auth_kind => 'es_apikey',
    credentials_ref => 'x'});
for my $type ('text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=----x', 'application/javascript', 'application/json-seq')
{
    my $r = api($t, POST => '/api/v1/clusters', body => $cluster_body,
        headers => {'Content-Type' => $type});
    error_ok($r, 415, 'UNSUPPORTED_MEDIA_TYPE', "POST /clusters as $type");
    nosniff_ok($r, "415 for $type");
}
my $r = api($t, POST => '/api/v1/clusters', body => $cluster_body);
error_ok($r, 415, 'UNSUPPORTED_MEDIA_TYPE', 'a body without a Content-Type');
$r = api($t, PATCH => "/api/v1/clusters/$cluster->{id}", body => '{"notes":"x"}',
    headers => {'Content-Type' => 'text/plain'});
error_ok($r, 415, 'UNSUPPORTED_MEDIA_TYPE', 'PATCH as text/plain');
$r = api($t, POST => '/api/v1/proposals/x/open_pr', body => '',
    headers => {'Content-Type' => 'application/x-www-form-urlencoded'});
error_ok($r, 415, 'UNSUPPORTED_MEDIA_TYPE', 'an empty cross-site form to open_pr');
is($t->psql("SELECT count(*) FROM clusters WHERE name = 'ct-ok'"), 0, 'nothing was written');

for my $type ('application/json; charset=utf-8', 'Application/JSON;charset="UTF-8"',
    'application/json') {
    my $body = json_encode({name => uniq_name('ct'), engine_type => 'elasticsearch',
        environment => 'dev', base_url => 'https://es.example.com', auth_kind => 'es_apikey',
        credentials_ref => 'x'});
    $r = api($t, POST => '/api/v1/clusters', body => $body, headers => {'Content-Type' => $type});
    is($r->{status}, 201, "POST /clusters as $type → 201") or diag($r->{body});
}

# body-less POSTs need no type
my $p1 = insert_proposal($t, cluster_id => $cluster->{id}, template_id => $template->{id});
$r = api($t, POST => "/api/v1/proposals/$p1/reject");
is($r->{status}, 200, 'reject without a body or a Content-Type → 200') or diag($r->{body});
my $p2 = insert_proposal($t, cluster_id => $cluster->{id}, template_id => $template->{id});
$r = api($t, POST => "/api/v1/proposals/$p2/open_pr");
is($r->{status}, 202, 'open_pr without a body or a Content-Type → 202') or diag($r->{body});
nosniff_ok($r, '202');

# --- nosniff on success, error and nginx's own errors ---------------------------------------

$r = api($t, GET => "/api/v1/config-repos/$repo->{id}");
is($r->{status}, 200, 'a read');
nosniff_ok($r, '200');
$r = api($t, GET => '/api/v1/nowhere');
is($r->{status}, 404, 'an unknown route');
nosniff_ok($r, '404');
$r = api($t, GET => '/api/v1/studies?since=2026-01-01T00:00:00%2B16:00');
error_ok($r, 422, 'VALIDATION_ERROR', 'since with offset +16:00');
nosniff_ok($r, '422');
$r = $t->http(OPTIONS => '/api/v1/clusters');
is($r->{status}, 204, 'OPTIONS');
nosniff_ok($r, '204');
my $raw = $t->raw_http("GET /api/v1/health HTTP/1.1\r\nHost: x\r\nHost: y\r\nConnection: close\r\n\r\n");
is($raw->{status}, 400, "nginx's own 400 (two Host headers), through error_page");
nosniff_ok($raw, "nginx's own 400");
$raw = $t->raw_http("GET /api/v1/health HTTP/1.1 junk\r\nHost: x\r\nConnection: close\r\n\r\n");
is($raw->{status}, 400, "a malformed request line, before any location, through error_page");
is($raw->{json}{detail}{error_code}, 'BAD_REQUEST', '... as the envelope');
nosniff_ok($raw, 'a malformed request line');
$raw = $t->raw_http('GET /api/v1/' . ('a' x 9000) . " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
is($raw->{status}, 414, "nginx's own 414, through error_page");
nosniff_ok($raw, "nginx's own 414");
my $huge = '{"notes":"' . ('x' x (1100 * 1024)) . '"}';
$raw = $t->raw_http("POST /api/v1/clusters HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    . 'Content-Length: ' . length($huge) . "\r\nConnection: close\r\n\r\n");
is($raw->{status}, 413, "nginx's own 413 (over client_max_body_size 1m), through error_page");
nosniff_ok($raw, "nginx's own 413");

# --- bodies between client_body_buffer_size and client_max_body_size ---------------------------

my $notes = 'n' x (200 * 1024);
$r = api($t, PATCH => "/api/v1/clusters/$cluster->{id}", json => {notes => $notes});
isnt($r->{status}, 413, 'a 200 KiB JSON body is not 413');
error_ok($r, 422, 'VALIDATION_ERROR', 'a 200 KiB JSON body reaches validation');
my $chunked = sprintf("%x\r\n%s\r\n0\r\n\r\n", length($notes) + 12, qq({"notes":"$notes"}));
$raw = $t->raw_http("PATCH /api/v1/clusters/$cluster->{id} HTTP/1.1\r\nHost: x\r\n"
    . "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    . $chunked);
is($raw->{status}, 422, 'a 200 KiB chunked JSON body reaches validation too');
my $tmpl = json_encode({name => 'big-template', engine_type => 'elasticsearch',
    body => '{"query": {"match_all": {}}, "pad": "' . ('p' x (150 * 1024)) . '"}',
    declared_params => {}});
$r = api($t, POST => '/api/v1/query-templates', body => $tmpl,
    headers => {'Content-Type' => 'application/json'});
is($r->{status}, 201, 'a 150 KiB template is stored') or diag(substr($r->{body}, 0, 300));
is(length($r->{json}{body} // ''), length(json_decode_body($tmpl)), '... whole');

sub json_decode_body { RelyLoop::Test::json_decode($_[0])->{body} }

# --- access control in front of the API ------------------------------------------------------

sub on {
    my ($port, $path, %h) = @_;
    return HTTP::Tiny->new(timeout => 10)->request(GET => "http://127.0.0.1:$port$path",
        {headers => \%h});
}
sub raw_on {
    my ($port, $request) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 10) or die "connect: $!";
    print $s $request;
    local $/;
    my $resp = <$s> // '';
    my ($status) = $resp =~ m{^HTTP/1\.[01] (\d{3})};
    my ($body) = $resp =~ m{\r\n\r\n(.*)\z}s;
    return {status => $status // 0, raw => $resp,
        json => defined $body && length $body ? RelyLoop::Test::json_decode($body) : undef};
}
my $path = "/api/v1/config-repos/$repo->{id}";
is($t->http(GET => $path)->{status}, 200, 'allow 127.0.0.1; deny all: loopback is let in');
$r = on($p_deny, $path);
is($r->{status}, 403, 'deny 127.0.0.1: 403 before the module');
nosniff_ok($r, "deny's 403");
$r = on($p_basic, $path);
is($r->{status}, 401, 'auth_basic without credentials: 401');
nosniff_ok($r, "auth_basic's 401");
is(on($p_basic, $path, Authorization => 'Basic ' . MIME::Base64::encode_base64('operator:wrong', ''))
    ->{status}, 401, 'auth_basic with a wrong password: 401');
my $ok = on($p_basic, $path,
    Authorization => 'Basic ' . MIME::Base64::encode_base64('operator:s3cret', ''));
is($ok->{status}, 200, 'auth_basic with the password: 200');
nosniff_ok($ok, 'behind auth_basic, 200');
$r = on($p_authreq, $path);
is($r->{status}, 401, 'auth_request answering 401: 401');
nosniff_ok($r, "auth_request's 401");
is(on($p_authreq, $path, 'X-Token' => 'nope')->{status}, 401, 'auth_request, a bad token: 401');
is(on($p_authreq, $path, 'X-Token' => 'letmein')->{status}, 200, 'auth_request answering 204: 200');

# --- add_header of the same name; early failures as the envelope ------------------------------

$r = on($p_plain, $path);
is($r->{status}, 200, 'a location with add_header X-Content-Type-Options ... always');
nosniff_ok($r, 'add_header and the module');
$r = on($p_plain, '/api/v1/nowhere');
nosniff_ok($r, 'add_header and the module, 404');
# a broken chunked body on a route without a body, where no error_page applies
$raw = raw_on($p_plain, "GET /api/v1/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    . "Connection: close\r\n\r\nzz\r\nxx\r\n0\r\n\r\n");
is($raw->{status}, 400, 'a broken chunked body on GET: 400');
is($raw->{json}{detail}{error_code}, 'BAD_REQUEST', '... as the envelope, not an nginx page')
    or diag($raw->{raw});
nosniff_ok($raw, 'a broken chunked body');

$t->stop_worker;
my $p3 = insert_proposal($t, cluster_id => $cluster->{id}, template_id => $template->{id});
$r = api($t, POST => "/api/v1/proposals/$p3/open_pr");
error_ok($r, 503, 'QUEUE_UNAVAILABLE', 'open_pr with the worker socket gone');
nosniff_ok($r, 'QUEUE_UNAVAILABLE');
$t->pg_ctl_stop;
$r = api($t, GET => $path);
error_ok($r, 503, 'DATABASE_UNAVAILABLE', 'a read with PostgreSQL stopped');
nosniff_ok($r, 'DATABASE_UNAVAILABLE');

responses_ok();
$t->done;
