#!/usr/bin/perl
# One client's bad input must not hurt another (docs/api.md, "Timestamps";
# docs/architecture.md, "The PostgreSQL pool"): a flood of hostile requests
# -- out-of-domain timestamps, tampered cursors, huge numbers, broken and
# deeply nested JSON, bad UTF-8, path tricks -- beside an innocent read load
# on the same nginx worker process and the same pipelined connections. Every
# innocent read succeeds, no hostile request gets a 5xx, no statement fails
# and nothing is logged above [error].

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use RelyLoop::Test qw(json_encode);
use RelyLoop::Fixtures;

$SIG{ALRM} = sub { diag('hard timeout: api_hostile_neighbour.t'); exit 1 };
alarm 300;

# one worker process, a small pool: everyone shares the same pipelines
my $t = setup(workers => 1, directives => {relyloop_pg_pool_size => 2,
    relyloop_pg_pipeline_depth => 16});
my $repo = create_repo($t);
my $base = base_rows($t);
my $study = insert_study($t, $base);
insert_trial($t, $study, optuna_trial_number => $_, primary_metric => 0.1 * $_) for 0 .. 3;

my $ts_cursor = sub { b64url(json_encode([$_[0], 'x'])) };
my $deep = ('[' x 5000) . (']' x 5000);
my $deep_obj = ('{"a":' x 3000) . '1' . ('}' x 3000);

# [method, path, body (JSON unless content type given), content type]
my @hostile = (
    [GET => '/api/v1/studies?since=2026-01-01T00:00:00%2B16:00'],
    [GET => '/api/v1/studies?since=2026-01-01T00:00:00-23:59'],
    [GET => '/api/v1/config-repos?since=0000-01-01T00:00:00Z'],
    [GET => '/api/v1/proposals?since=9999-12-31T23:59:59-15:59'],
    [GET => '/api/v1/clusters?since=0001-01-01T00:00:00%2B00:01'],
    [GET => '/api/v1/config-repos?cursor=' . $ts_cursor->('2026-01-01T00:00:00+16:00')],
    [GET => '/api/v1/studies?cursor=' . $ts_cursor->('0000-12-31T00:00:00Z')],
    [GET => '/api/v1/proposals?cursor=' . $ts_cursor->('10000-01-01T00:00:00Z')],
    [GET => "/api/v1/studies/$study/trials?sort=optuna_trial_number_asc&cursor="
        . b64url(json_encode(['optuna_trial_number_asc', 99999999999, 'x']))],
    [GET => "/api/v1/studies/$study/trials?cursor="
        . b64url('["primary_metric_desc","1e999","x"]')],
    [GET => "/api/v1/studies/$study/trials?cursor="
        . b64url('["primary_metric_desc","0x1p3","x"]')],
    [GET => '/api/v1/config-repos?limit=99999999999999999999'],
    [GET => '/api/v1/config-repos?limit=-2147483649'],
    [GET => '/api/v1/proposals?cluster_id=%FF%FE'],
    [GET => '/api/v1/studies?status=%C3%28'],
    [GET => '/api/v1/config-repos/%FF'],
    [GET => '/api/v1/config-repos/%00'],
    [GET => '/api/v1/config-repos/..%2F..%2Fetc%2Fpasswd'],
    [GET => '/api/v1/config-repos/' . ('9' x 300)],
    [GET => '/api/v1/clusters/%ZZ'],
    [GET => '/api/v1/../v1/./config-repos/x'],
    [POST => '/api/v1/clusters', '{"name":'],
    [POST => '/api/v1/clusters', $deep],
    [POST => '/api/v1/query-templates', $deep_obj],
    [POST => '/api/v1/clusters', qq({"name":"bad \xff\xfe utf-8"})],
    [POST => '/api/v1/clusters', '{"name":"x","engine_type":"elasticsearch","environment":"dev",'
        . '"base_url":"https://h","auth_kind":"none","credentials_ref":"c","n":1e999}'],
    [POST => '/api/v1/query-templates', '{"name":"t","engine_type":"elasticsearch","body":"{}",'
        . '"declared_params":{},"version":99999999999999}'],
    [POST => '/api/v1/query-templates', '{"name":"t","engine_type":"elasticsearch","body":"{}",'
        . '"declared_params":{"p":{"type":"float","min":1e308,"max":-1e308}},"version":1}'],
    [POST => '/api/v1/proposals', '{"cluster_id":"\u0000","template_id":"x","config_diff":{}}'],
    [PATCH => '/api/v1/clusters/x', '{"notes":"\ud800"}'],
    [POST => '/api/v1/config-repos', 'name=x&repo_url=y', 'application/x-www-form-urlencoded'],
    [POST => '/api/v1/config-repos', '{"name":"x"}', 'text/plain'],
    [POST => "/api/v1/proposals/%FF/open_pr", '{}'],
);

my $innocent_path = "/api/v1/config-repos/$repo->{id}";
my $done = $t->dir . '/hostile.done';
my $rounds = 12;

# The hostile clients run a fixed number of rounds; the innocent ones read
# until the last hostile client is done (at most 20000 reads each), so the
# two loads overlap from start to end.
my @results = $t->parallel(8, sub {
    my ($i) = @_;
    my $ua = $t->ua;
    if ($i < 4) {
        my (%status, @bad);
        for my $round (1 .. $rounds) {
            for my $h (@hostile) {
                my ($m, $p, $body, $type) = @$h;
                my %o = (headers => {'Content-Type' => $type // 'application/json'});
                $o{content} = $body if defined $body;
                my $r = $ua->request($m, $t->url($p), \%o);
                $status{$r->{status}}++;
                push @bad, "$m $p → $r->{status}" if $r->{status} >= 500 && @bad < 10;
            }
        }
        open my $fh, '>', "$done.$i" or die;
        close $fh;
        return {kind => 'hostile', status => \%status, bad => \@bad};
    }
    my ($ok, $fail, @bad) = (0, 0);
    for my $n (1 .. 20000) {
        my $r = $ua->request(GET => $t->url($innocent_path));
        if ($r->{status} == 200) {
            $ok++;
        } else {
            $fail++;
            push @bad, "$r->{status} $r->{content}" if @bad < 10;
        }
        last if $n % 10 == 0 && 4 == grep { -e "$done.$_" } 0 .. 3;
    }
    return {kind => 'innocent', ok => $ok, fail => $fail, bad => \@bad};
});

my (%hostile_status, @hostile_bad, $innocent_ok, $innocent_fail, @innocent_bad);
for my $r (@results) {
    if (ref $r ne 'HASH' || $r->{error}) {
        fail('a client died: ' . json_encode($r));
        next;
    }
    if ($r->{kind} eq 'hostile') {
        $hostile_status{$_} += $r->{status}{$_} for keys %{$r->{status}};
        push @hostile_bad, @{$r->{bad}};
    } else {
        $innocent_ok += $r->{ok};
        $innocent_fail += $r->{fail};
        push @innocent_bad, @{$r->{bad}};
    }
}
my $hostile_total = 0;
$hostile_total += $_ for values %hostile_status;
is($hostile_total, 4 * $rounds * @hostile, 'every hostile request was answered');
is(scalar(grep { $_ >= 500 || $_ < 200 } keys %hostile_status), 0, 'no hostile request got a 5xx')
    or diag(json_encode(\%hostile_status), "\n", join("\n", @hostile_bad));
ok($hostile_status{422} && $hostile_status{404} && $hostile_status{415},
    'the flood got its 422s, 404s and 415s') or diag(json_encode(\%hostile_status));
ok($innocent_ok >= 4 * 10, "innocent reads ran beside the flood ($innocent_ok)");
is($innocent_fail, 0, 'no innocent read failed') or diag(join "\n", @innocent_bad);

# Each hostile request alone, for its exact answer.
for my $h (@hostile) {
    my ($m, $p, $body, $type) = @$h;
    my $r = $t->http($m, $p, defined $body ? (body => $body) : (),
        headers => {'Content-Type' => $type // 'application/json'});
    ok($r->{status} >= 400 && $r->{status} < 500 || $r->{status} == 200,
        "$m " . substr($p, 0, 70) . " → $r->{status}") or diag($r->{body});
}
my $r = $t->http(GET => '/api/v1/studies?since=2026-01-01T00:00:00%2B16:00');
is($r->{status}, 422, 'since with offset +16:00 → 422');
is($r->{json}{detail}{message}, 'Request validation failed: query.since: must be an RFC 3339 timestamp',
    '... query.since');
$r = $t->http(GET => '/api/v1/config-repos?cursor=' . $ts_cursor->('2026-01-01T00:00:00+16:00'));
is($r->{status}, 422, 'a tampered cursor carrying +16:00 → 422');
$r = $t->http(GET => '/api/v1/studies?since=2026-01-01T00:00:00%2B15:59');
is($r->{status}, 200, 'since with offset +15:59 → 200');

# No statement failed: nothing reached PostgreSQL that it refused.
my $log = $t->nginx_error_log;
my @failed = grep { /sqlstate|database failure|internal error|statement rejected/ } split /\n/, $log;
is(scalar @failed, 0, 'no statement failed, nothing logged as an internal error')
    or diag(join "\n", @failed[0 .. ($#failed > 9 ? 9 : $#failed)]);
my @crit = grep { /\[(crit|alert|emerg)\]/ } split /\n/, $log;
is(scalar @crit, 0, 'nothing above [error] in the log') or diag(join "\n", @crit[0 .. 4]);

# --- a statement that fails anyway ----------------------------------------------------------
# Independently of the core's checks, a statement that fails must fail no
# other request: reads aborted by a neighbour's error in their pipeline sync
# segment are sent again in a segment of their own. A role that may not read
# studies makes every study list fail (a server fault: 500) while
# config repo reads share the same connections.
$t->psql(<<'SQL');
CREATE ROLE rl_api LOGIN;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO rl_api;
REVOKE SELECT ON studies FROM rl_api;
SQL
$t->stop_nginx;
$t->start_nginx(workers => 1, log_level => 'warn', directives => {relyloop_pg_pool_size => 2,
    relyloop_pg_pipeline_depth => 16, relyloop_pg_conninfo => '"host=127.0.0.1 port='
    . $t->pg_port . ' user=rl_api dbname=relyloop"'});
$r = $t->http(GET => '/api/v1/studies');
is($r->{status}, 500, 'a study list fails for this role (42501)') or diag($r->{body});
is($t->http(GET => $innocent_path)->{status}, 200, '... while config repos can be read');

unlink glob "$done.*";
@results = $t->parallel(8, sub {
    my ($i) = @_;
    my $ua = $t->ua;
    if ($i < 5) {
        my %status;
        for (1 .. 150) {
            $status{$ua->request(GET => $t->url('/api/v1/studies'))->{status}}++;
        }
        open my $fh, '>', "$done.$i" or die;
        close $fh;
        return {kind => 'failing', status => \%status};
    }
    my ($ok, $fail, @bad) = (0, 0);
    for my $n (1 .. 20000) {
        my $x = $ua->request(GET => $t->url($innocent_path));
        if ($x->{status} == 200) {
            $ok++;
        } else {
            $fail++;
            push @bad, "$x->{status} $x->{content}" if @bad < 10;
        }
        last if $n % 10 == 0 && 5 == grep { -e "$done.$_" } 0 .. 4;
    }
    return {kind => 'innocent', ok => $ok, fail => $fail, bad => \@bad};
});
my %failing;
($innocent_ok, $innocent_fail, @innocent_bad) = (0, 0);
for my $x (@results) {
    if (ref $x ne 'HASH' || $x->{error}) {
        fail('a client died: ' . json_encode($x));
        next;
    }
    if ($x->{kind} eq 'failing') {
        $failing{$_} += $x->{status}{$_} for keys %{$x->{status}};
    } else {
        $innocent_ok += $x->{ok};
        $innocent_fail += $x->{fail};
        push @innocent_bad, @{$x->{bad}};
    }
}
is_deeply(\%failing, {500 => 750}, 'every failing statement failed alone (500)');
ok($innocent_ok >= 3 * 10, "innocent reads ran beside the failures ($innocent_ok)");
is($innocent_fail, 0, 'no innocent read failed beside failing statements')
    or diag(join "\n", @innocent_bad);

$t->done;
