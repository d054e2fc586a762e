#!/usr/bin/perl
# POST/GET /api/v1/config-repos, GET /api/v1/config-repos/{id} (docs/api.md):
# success shapes, URL rules (UNSUPPORTED_PROVIDER), auth_ref rules
# (AUTH_REF_NOT_FOUND), the name race (CONFIG_REPO_NAME_TAKEN), validation.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use RelyLoop::Test;
use RelyLoop::Fixtures;

my $t = setup();
my $dir = $t->dir;
$t->write_secret('pat-a', "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n");
$t->write_secret('empty-pat', '');
mkdir "$dir/secrets/a-directory";
open my $fh, '>', "$dir/outside-secret" or die;
print $fh "ghp_outsideoutsideoutsideoutsideoutside01\n";
close $fh;
symlink "$dir/outside-secret", "$dir/secrets/escapes" or die "symlink: $!";
symlink "$dir", "$dir/secrets/dir-escapes" or die "symlink: $!";
symlink "$dir/secrets/pat-a", "$dir/secrets/alias-inside" or die "symlink: $!";
symlink "$dir/secrets/no-such-file", "$dir/secrets/dangling" or die "symlink: $!";

my @REPO_FIELDS = qw(id name provider repo_url default_branch pr_base_branch auth_ref
    webhook_secret_ref webhook_registration_error created_at);
my $URL = 'https://github.com';

sub post { api($t, POST => '/api/v1/config-repos', json => {@_}) }

# --- success ----------------------------------------------------------------

my $r = post(name => 'search-config', repo_url => "$URL/acme/search-config", auth_ref => 'pat-a');
is($r->{status}, 201, 'create → 201') or diag($r->{body});
my $repo = $r->{json} || {};
has_keys($repo, \@REPO_FIELDS, 'ConfigRepo');
uuid7_ok($repo->{id}, 'id');
is($repo->{name}, 'search-config', 'name');
is($repo->{provider}, 'github', 'provider derived: github');
is($repo->{repo_url}, "$URL/acme/search-config", 'repo_url as sent');
is($repo->{default_branch}, 'main', 'default_branch defaults to main');
is($repo->{pr_base_branch}, 'main', 'pr_base_branch defaults to main');
is($repo->{auth_ref}, 'pat-a', 'auth_ref');
ok(exists $repo->{webhook_secret_ref} && !defined $repo->{webhook_secret_ref},
    'webhook_secret_ref null');
ok(exists $repo->{webhook_registration_error} && !defined $repo->{webhook_registration_error},
    'webhook_registration_error null');
ts_ok($repo->{created_at}, 'created_at');
is($t->psql("SELECT count(*) FROM config_repos WHERE id = " . sql_quote($repo->{id} // '')), 1,
    'the row is in the database under that id');

$r = post(name => 'with-options', repo_url => "$URL/Acme-Org/search.config_v2.git",
    auth_ref => 'pat-a', default_branch => 'release/v1.2', pr_base_branch => 'develop',
    webhook_secret_ref => 'hook_secret-1');
is($r->{status}, 201, 'create with .git suffix and every optional field → 201')
    or diag($r->{body});
is($r->{json}{default_branch}, 'release/v1.2', 'default_branch kept');
is($r->{json}{pr_base_branch}, 'develop', 'pr_base_branch kept');
is($r->{json}{webhook_secret_ref}, 'hook_secret-1', 'webhook_secret_ref kept');
is($r->{json}{repo_url}, "$URL/Acme-Org/search.config_v2.git", 'repo_url kept as sent');
my $repo2 = $r->{json} || {};

$r = post(name => 'empty-token', repo_url => "$URL/acme/empty", auth_ref => 'empty-pat');
is($r->{status}, 201, 'an empty PAT file is accepted at create (it may still be empty)')
    or diag($r->{body});

$r = post(name => 'alias-inside', repo_url => "$URL/acme/alias", auth_ref => 'alias-inside');
is($r->{status}, 201, 'a symlink resolving inside the secrets dir to a regular file is accepted')
    or diag($r->{body});

$r = post(name => 'a' x 128, repo_url => "$URL/acme/long", auth_ref => 'pat-a');
is($r->{status}, 201, 'a 128-character name is accepted') or diag($r->{body});

$r = post(name => '0-starts-with-digit', repo_url => "$URL/acme/d", auth_ref => 'pat-a',
    default_branch => 'v1.0_rc-2', pr_base_branch => 'a/b/c');
is($r->{status}, 201, 'name starting with a digit, branch names with . _ - /') or diag($r->{body});

# --- detail and list, repeated on one keepalive connection --------------------

for my $i (1 .. 5) {
    $r = api($t, GET => "/api/v1/config-repos/$repo->{id}");
    is($r->{status}, 200, "detail → 200 (#$i)");
    is_deeply($r->{json}, $repo, "detail equals the create response (#$i)");
}
$r = api($t, GET => "/api/v1/config-repos/$repo2->{id}");
# This repo names a webhook secret, so the worker's registration job runs on
# its own schedule and may already have written webhook_registration_error
# (docs/webhooks.md): that field is compared apart, every other one exactly.
my %got2 = %{$r->{json} || {}};
my $reg_error = delete $got2{webhook_registration_error};
my %want2 = %$repo2;
delete $want2{webhook_registration_error};
is_deeply(\%got2, \%want2, 'detail of the second repo');
ok(!defined $reg_error || $reg_error =~ /\S/,
    'its webhook_registration_error is null or a message (registration runs apart)');

my $total = $t->psql('SELECT count(*) FROM config_repos');
for my $i (1 .. 3) {
    $r = api($t, GET => '/api/v1/config-repos');
    my @rows = list_ok($r, "list (#$i)", total => $total);
    is(scalar @rows, $total, 'every repo on the first page');
    ok(!$r->{json}{has_more}, 'has_more false');
    ok(!defined $r->{json}{next_cursor}, 'next_cursor null');
    my @sorted = sort { $b->{created_at} cmp $a->{created_at} || $b->{id} cmp $a->{id} } @rows;
    is_deeply([map { $_->{id} } @rows], [map { $_->{id} } @sorted],
        'ordered created_at DESC, id DESC');
    my ($in_list) = grep { ($_->{id} // '') eq $repo->{id} } @rows;
    is_deeply($in_list, $repo, 'the list row equals the detail');
}

# --- 404 ----------------------------------------------------------------------

for my $id (uuid7(), 'not-a-uuid', 'x' x 300, 'x' x 129, esc("' OR 1=1 --"), 'abc%2Fdef',
    'a..b', '...', esc('ünïcødé'), esc('{"a":1}'), 'a%20b')
{
    $r = api($t, GET => "/api/v1/config-repos/$id");
    error_ok($r, 404, 'CONFIG_REPO_NOT_FOUND', 'detail of id ' . substr($id, 0, 40));
}
# Dot segments are resolved by nginx before the module sees the path: whatever
# route that lands on, the answer is a JSON 404, never a 422/400/500.
for my $path ('/api/v1/config-repos/../../etc', '/api/v1/config-repos/..%2F..%2Fetc',
    '/api/v1/config-repos/%2E%2E/%2E%2E/etc/passwd', '/api/v1/config-repos/%2F')
{
    $r = $t->raw_http("GET $path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    # (/config-repos/%2F may come out as the list after slash merging)
    next if $r->{status} == 200 && $path =~ /%2F\z/;
    is($r->{status}, 404, "$path → 404");
    like(ref $r->{json} eq 'HASH' && ref $r->{json}{detail} eq 'HASH'
        ? $r->{json}{detail}{error_code} // '' : '', qr/^(CONFIG_REPO_NOT_FOUND|RESOURCE_NOT_FOUND)$/,
        "$path: a JSON 404 envelope") or diag($r->{raw});
}

# --- UNSUPPORTED_PROVIDER -------------------------------------------------------

my $n = 0;
for my $url (
    'https://gitlab.com/acme/search-config',
    'https://bitbucket.org/acme/search-config',
    'git@github.com:acme/search-config.git',
    'ssh://git@github.com/acme/search-config.git',
    'http://github.com/acme/search-config',
    'https://github.com/acme/search-config/extra',
    'https://github.com/acme/search-config/tree/main',
    'https://github.com/acme',
    'https://github.com/acme/',
    'https://github.com//search-config',
    'https://github.com/acme/search-config/',
    'https://github.com.evil.example/acme/search-config',
    'https://evil.example/https://github.com/acme/search-config',
    'https://user:pass@github.com/acme/search-config',
    'https://github.com:8443/acme/search-config',
    'https://github.com/acme/search config',
    'https://github.com/acme/search-config?ref=x',
    'https://github.com/acme/search-config#x',
    'https://github.com/ac%6De/search-config',
    'github.com/acme/search-config',
    'file:///etc/passwd',
    'not a url',
    )
{
    $n++;
    $r = post(name => "unsupported-$n", repo_url => $url, auth_ref => 'pat-a');
    error_ok($r, 400, 'UNSUPPORTED_PROVIDER', "repo_url $url", retryable => 0,
        message => qr/(?=.*GitLab)(?=.*Bitbucket)/is);
}
is($t->psql("SELECT count(*) FROM config_repos WHERE name LIKE 'unsupported-%'"), 0,
    'no row for a rejected URL');

# Check order URL → auth_ref file → name.
$r = post(name => 'search-config', repo_url => 'https://gitlab.com/a/b', auth_ref => 'missing');
error_ok($r, 400, 'UNSUPPORTED_PROVIDER', 'bad URL, missing file, taken name: the URL first');
$r = post(name => 'search-config', repo_url => "$URL/a/b", auth_ref => 'missing');
error_ok($r, 400, 'AUTH_REF_NOT_FOUND', 'missing file, taken name: the file first', retryable => 1);

# --- AUTH_REF_NOT_FOUND ---------------------------------------------------------

for my $case (
    [missing => 'no-such-secret'],
    [directory => 'a-directory'],
    ['symlink to a file outside the dir' => 'escapes'],
    ['symlink to a directory outside' => 'dir-escapes'],
    ['dangling symlink' => 'dangling'],
    )
{
    my ($what, $ref) = @$case;
    for my $try (1 .. 2) {
        $r = post(name => "authref-$ref", repo_url => "$URL/acme/x", auth_ref => $ref);
        error_ok($r, 400, 'AUTH_REF_NOT_FOUND', "auth_ref $what (#$try)", retryable => 1);
    }
}
is($t->psql("SELECT count(*) FROM config_repos WHERE name LIKE 'authref-%'"), 0,
    'no row for a bad auth_ref');
$r = post(name => 'rotation', repo_url => "$URL/acme/rot", auth_ref => 'appears-later');
error_ok($r, 400, 'AUTH_REF_NOT_FOUND', 'before the file exists', retryable => 1);
$t->write_secret('appears-later', "ghp_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n");
$r = post(name => 'rotation', repo_url => "$URL/acme/rot", auth_ref => 'appears-later');
is($r->{status}, 201, 'the same request succeeds once the file exists (read fresh, no restart)')
    or diag($r->{body});

for my $ref ('../x', '../../etc/passwd', 'a/b', '.hidden', 'sp ace', '', 'x' x 129, "a\nb") {
    $r = post(name => 'bad-ref', repo_url => "$URL/acme/x", auth_ref => $ref);
    validation_ok($r, 'auth_ref', 'auth_ref ' . json_encode(substr($ref, 0, 20)));
}

# --- CONFIG_REPO_NAME_TAKEN -----------------------------------------------------

$r = post(name => 'search-config', repo_url => "$URL/acme/other", auth_ref => 'pat-a');
error_ok($r, 409, 'CONFIG_REPO_NAME_TAKEN', 'a second create with the name', retryable => 0);

for my $round (1 .. 3) {
    my $name = "race-$round";
    my @res = $t->parallel(8, sub {
        my ($i) = @_;
        my $x = $t->http(POST => '/api/v1/config-repos', json => {name => $name,
            repo_url => "$URL/acme/race-$i", auth_ref => 'pat-a'});
        return {status => $x->{status}, code => ($x->{json}{detail}{error_code} // ''),
            retryable => ($x->{json}{detail} ? ($x->{json}{detail}{retryable} ? 1 : 0) : undef)};
    });
    my @created = grep { $_->{status} == 201 } @res;
    my @taken = grep { $_->{status} == 409 && $_->{code} eq 'CONFIG_REPO_NAME_TAKEN'
        && defined $_->{retryable} && !$_->{retryable} } @res;
    is(scalar @created, 1, "race $round: exactly one 201");
    is(scalar @taken, 7, "race $round: the other seven 409 CONFIG_REPO_NAME_TAKEN")
        or diag(json_encode(\@res));
    is($t->psql("SELECT count(*) FROM config_repos WHERE name = '$name'"), 1,
        "race $round: one row");
}

# --- validation -----------------------------------------------------------------

my %ok = (name => 'valid-name', repo_url => "$URL/acme/valid", auth_ref => 'pat-a');
sub with { my %b = (%ok, @_); delete $b{$_} for grep { !defined $b{$_} } keys %b; \%b }
sub without { my %b = %ok; delete @b{@_}; \%b }

for my $case (
    [name => ''], [name => 'Upper'], [name => 'under_score'], [name => '-lead'],
    [name => 'sp ace'], [name => 'a' x 129], [name => 123], [name => JSON::PP::true],
    [name => ['x']], [name => {}],
    [repo_url => "$URL/acme/" . ('r' x 600)], [repo_url => 5], [repo_url => []],
    [default_branch => '-x'], [default_branch => ''], [default_branch => 'a..b'],
    [default_branch => 'x.lock'], [default_branch => 'a/'], [default_branch => 'a//b'],
    [default_branch => 'a b'], [default_branch => 'a~1'], [default_branch => 'a^b'],
    [default_branch => 'a:b'], [default_branch => '.hidden'], [default_branch => 'a.'],
    [default_branch => 'a/.b'], [default_branch => 'a@{b'], [default_branch => 'b' x 129],
    [default_branch => 7],
    [pr_base_branch => '-x'], [pr_base_branch => 'b' x 129], [pr_base_branch => 'a..b'],
    [pr_base_branch => {}],
    [auth_ref => 5], [webhook_secret_ref => 'bad/ref'], [webhook_secret_ref => '../x'],
    [webhook_secret_ref => 'w' x 129], [webhook_secret_ref => 5],
    )
{
    my ($field, $value) = @$case;
    $r = api($t, POST => '/api/v1/config-repos', json => with($field => $value));
    validation_ok($r, $field, "$field = " . substr(json_encode($value), 0, 30));
}
for my $field (qw(name repo_url auth_ref)) {
    $r = api($t, POST => '/api/v1/config-repos', json => without($field));
    validation_ok($r, $field, "missing $field");
    $r = api($t, POST => '/api/v1/config-repos', body => json_encode({%ok, $field => undef}),
        headers => {'Content-Type' => 'application/json'});
    validation_ok($r, $field, "$field null");
}
$r = api($t, POST => '/api/v1/config-repos', json => with(provider => 'github'));
validation_ok($r, 'provider', 'provider is derived, never accepted');
$r = api($t, POST => '/api/v1/config-repos', json => with(surprise => 1));
validation_ok($r, 'surprise', 'unknown field');
$r = api($t, POST => '/api/v1/config-repos', json => with(id => uuid7()));
validation_ok($r, 'id', 'id is not accepted');
$r = api($t, POST => '/api/v1/config-repos', json => {name => 5, auth_ref => [], repo_url => "$URL/a/b"});
validation_ok($r, ['name', 'auth_ref'], 'two bad fields');
like($r->{json}{detail}{message} // '', qr/; /, 'several problems joined by "; "');

for my $body ('{', '{"name": }', '{"name": "x",}', '{} trailing', '[]', '"string"', 'null', '42',
    '', '{"name": "x"', "{\"name\": \"\xff\xfe\"}", ('[' x 5000) . (']' x 5000),
    '{"name":"valid-x","repo_url":"https://github.com/a/b","auth_ref":"pat-a","x":1e999}',
    '{"name":"valid-x","repo_url":"https://github.com/a/b","auth_ref":"pat\\u0000a"}')
{
    $r = api($t, POST => '/api/v1/config-repos', body => $body,
        headers => {'Content-Type' => 'application/json'});
    validation_ok($r, undef, 'malformed body ' . substr(json_encode($body), 0, 30));
}
$r = api($t, POST => '/api/v1/config-repos');
validation_ok($r, undef, 'no body at all');

is($t->psql("SELECT count(*) FROM config_repos WHERE name IN ('valid-name', 'valid-x')"), 0,
    'nothing was created by an invalid request');

# --- GitHub Enterprise Server: relyloop_github_web_url --------------------------

$t->stop_nginx;
$t->start_nginx(directives => {relyloop_github_web_url => 'https://ghe.example.com'});
$r = post(name => 'ghes-repo', repo_url => 'https://ghe.example.com/team/search', auth_ref => 'pat-a');
is($r->{status}, 201, 'GHES URL accepted with relyloop_github_web_url') or diag($r->{body});
$r = post(name => 'ghes-repo-2', repo_url => "$URL/team/search", auth_ref => 'pat-a');
error_ok($r, 400, 'UNSUPPORTED_PROVIDER', 'github.com no longer accepted under GHES');
$r = post(name => 'ghes-repo-3', repo_url => 'https://ghe.example.com.evil/team/search',
    auth_ref => 'pat-a');
error_ok($r, 400, 'UNSUPPORTED_PROVIDER', 'a host that merely starts with the GHES host');
$r = api($t, GET => "/api/v1/config-repos/$repo->{id}");
is($r->{status}, 200, 'earlier rows still readable');

responses_ok();
$t->done;
