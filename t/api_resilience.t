#!/usr/bin/perl
# The module under stress (docs/architecture.md, docs/directives.md, docs/api.md): keepalive and pipelined
# requests, concurrency against the per-worker pool (pg_stat_activity and the
# sockets themselves), relyloop_pg_timeout cancelling a blocked query,
# relyloop_pg_max_waiting, PostgreSQL stopped and started under a running
# nginx, clients that leave mid-query, reloads under load.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Select;
use Socket qw(SOL_SOCKET SO_LINGER);
use Test::More;
use Time::HiRes qw(sleep time);
use RelyLoop::Test;
use RelyLoop::Fixtures;

my $t = setup();
my $repo = create_repo($t);
my $cluster = create_cluster($t);

# nginx worker pid => connections it holds to PostgreSQL (from the sockets, so
# it does not depend on application_name).
sub pg_conns_per_pid {
    my $port = $t->pg_port;
    my %n;
    for (qx{ss -tnpH state established dst 127.0.0.1:$port 2>/dev/null}) {
        $n{$1}++ if /"nginx",pid=(\d+)/;
    }
    return \%n;
}
sub max_per_pid { my $h = pg_conns_per_pid(); my $m = 0; $m < $_ and $m = $_ for values %$h; $m }

# Why the module failed a request, as it logged it: "timeout" when its
# relyloop_pg_timeout timer fired, "statement failed sqlstate 57014" when the
# server's statement_timeout (set to the same) did, "unavailable",
# "overloaded", ...; '' if it logged nothing for that X-Request-ID.
sub failure_kind {
    my ($rid) = @_;
    return '' unless defined $rid;
    my ($kind, $state) = $t->nginx_error_log
        =~ /database failure \(([a-z ]+)\)(?: sqlstate "(\w+)")?[^\n]* on "\Q$rid\E"/;
    return '' unless defined $kind;
    return defined $state ? "$kind sqlstate $state" : $kind;
}

# relyloop_pg_timeout, by either of its two hands
my $PG_TIMEOUT = qr/^(timeout|statement failed sqlstate 57014)$/;

# Ends the session holding TABLE's ACCESS EXCLUSIVE lock (a psql_bg locker).
sub release_lock {
    my ($table) = @_;
    return $t->psql("SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l JOIN pg_class c "
        . "ON c.oid = l.relation WHERE c.relname = '$table' AND l.mode = 'AccessExclusiveLock' AND l.granted");
}

# A child that samples, every 50 ms, the module's backends (application_name)
# and the most connections one nginx process holds, into FILE.
sub start_sampler {
    my ($file) = @_;
    my $port = $t->pg_port;
    my $pid = fork // die;
    if ($pid == 0) {
        open my $fh, '>', $file or POSIX::_exit(1);
        $fh->autoflush(1);
        while (1) {
            my $n = qx{psql -X -At -h 127.0.0.1 -p $port -U postgres -d relyloop -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'relyloop-nginx'" 2>/dev/null};
            chomp $n;
            print $fh ($n || 0) . ' ' . max_per_pid() . "\n";
            sleep 0.05;
        }
    }
    return $pid;
}
sub stop_sampler {
    my ($pid, $file) = @_;
    kill 'KILL', $pid;
    waitpid($pid, 0);
    my ($max_app, $max_sock) = (0, 0);
    open my $fh, '<', $file or return (0, 0);
    while (<$fh>) {
        my ($a, $s) = split;
        $max_app = $a if ($a // 0) > $max_app;
        $max_sock = $s if ($s // 0) > $max_sock;
    }
    return ($max_app, $max_sock);
}

sub mixed_requests {
    my ($tag, $n, %o) = @_;
    my @bad;
    for my $i (1 .. $n) {
        my @reqs = (['GET', '/api/v1/config-repos', 200], ['GET', "/api/v1/config-repos/$repo->{id}", 200],
            ['GET', "/api/v1/clusters/$cluster->{id}", 200], ['GET', '/api/v1/clusters/' . uuid7(), 404],
            ['GET', '/api/v1/health', 200],
            ['POST', '/api/v1/clusters', 201, {name => "c-$tag-$i", engine_type => 'opensearch',
                environment => 'dev', base_url => 'https://os', auth_kind => 'opensearch_basic',
                credentials_ref => 'x'}]);
        my $q = $reqs[$i % @reqs];
        next if $o{no_health} && $q->[1] eq '/api/v1/health';
        my $x = $t->http($q->[0], $q->[1], $q->[3] ? (json => $q->[3]) : ());
        push @bad, "$q->[0] $q->[1]: $x->{status} " . substr($x->{body} // '', 0, 150)
            if $x->{status} != $q->[2];
    }
    return \@bad;
}

# --- one keepalive connection, many requests ---------------------------------------------

my $s = ka_connect($t);
my ($ok, $n) = (0, 0);
for my $i (1 .. 150) {
    my $x = $i % 3 == 0
        ? ka_request($s, 'POST', '/api/v1/clusters', body => json_encode({name => "ka-$i",
            engine_type => 'elasticsearch', environment => 'dev', base_url => 'https://es',
            auth_kind => 'es_basic', credentials_ref => 'x'}))
        : $i % 3 == 1 ? ka_request($s, 'GET', '/api/v1/config-repos?limit=2')
        : ka_request($s, 'GET', '/api/v1/nope');
    last unless $x;
    $n++;
    my $want = $i % 3 == 0 ? 201 : $i % 3 == 1 ? 200 : 404;
    $ok++ if $x->{status} == $want && ($x->{headers}{connection} // '') !~ /close/i;
}
is($n, 150, '150 requests on one keepalive connection, none closed it');
is($ok, 150, 'every one answered as expected');

# Pipelined: ten requests in one write, ten answers in order.
my $batch = '';
$batch .= "GET /api/v1/config-repos/$repo->{id} HTTP/1.1\r\nHost: x\r\nX-Request-ID: pipe-$_\r\n\r\n"
    for 1 .. 10;
print $s $batch;
my @ids;
for (1 .. 10) {
    my $x = ka_read($s) or last;
    push @ids, ($x->{status} == 200 ? '' : "$x->{status}:") . ($x->{headers}{'x-request-id'} // '?');
}
is_deeply(\@ids, [map { "pipe-$_" } 1 .. 10], 'ten pipelined requests answered in order');
close $s;

# --- concurrency on one nginx worker ------------------------------------------------------------

my $file = $t->dir . '/sampler.txt';
my $sampler = start_sampler($file);
sleep 0.2;
my @res = $t->parallel(16, sub { mixed_requests("p$_[0]", 30) });
my ($max_app, $max_sock) = stop_sampler($sampler, $file);
is_deeply([map { @$_ } grep { ref $_ eq 'ARRAY' } @res], [], '16 clients × 30 requests: all answered')
    or diag(json_encode(\@res));
is(scalar(grep { ref $_ ne 'ARRAY' } @res), 0, 'no client failed');
ok($max_app >= 1, "the module's backends carry application_name 'relyloop-nginx' (max $max_app)");
cmp_ok($max_app, '<=', 4, 'pg_stat_activity: never more than relyloop_pg_pool_size (4) backends');
cmp_ok($max_sock, '<=', 4, 'the nginx worker never held more than 4 connections');
my @b = pg_backends($t);
cmp_ok(scalar @b, '<=', 4, 'after the load: at most 4 backends');
is(scalar(grep { ($_->[2] // '') eq 'active' } @b), 0, 'and none busy');

# --- relyloop_pg_timeout (3 s here): a blocked query is cancelled ---------------------------------

# The lock is held until the test ends it: what happens while it is held is
# told apart from what happens after by the order of events, not by a clock.
my $locker = psql_bg($t, "BEGIN; LOCK TABLE config_repos IN ACCESS EXCLUSIVE MODE; "
    . "SELECT pg_sleep(600); COMMIT;");
RelyLoop::Test::wait_for(sub { lock_held($t, 'config_repos') }, 30);
my $r = api($t, GET => '/api/v1/config-repos');
error_ok($r, 503, 'DATABASE_UNAVAILABLE', 'a query blocked past relyloop_pg_timeout');
like(failure_kind($r->{headers}{'x-request-id'}), $PG_TIMEOUT,
    'answered at the timeout: relyloop_pg_timeout ended it (as the module logged)');
ok(lock_held($t, 'config_repos'), '... while the lock was still held');
my $stuck = RelyLoop::Test::wait_for(sub {
    !grep { ($_->[2] // '') eq 'active' } pg_backends($t)
}, 30);
ok($stuck, 'the blocked query was cancelled in PostgreSQL (no active backend left)')
    or diag(json_encode([pg_backends($t)]));
$r = api($t, GET => "/api/v1/clusters/$cluster->{id}");
is($r->{status}, 200, 'meanwhile other tables are served');
ok(lock_held($t, 'config_repos'), '... at once, with config_repos still locked');
is(release_lock('config_repos'), 1, 'the lock holder ended');
wait_pid($locker, 15);
for my $i (1 .. 5) {
    $r = api($t, GET => '/api/v1/config-repos');
    is($r->{status}, 200, "after the lock: the list → 200 (#$i)");
}

# --- PostgreSQL stopped and started under a running nginx ---------------------------------------

# relyloop_pg_timeout 60 s here, longer than the client waits (30 s): an
# answer can only come from the server going away, never from that timer.
$t->stop_nginx;
$t->start_nginx(directives => {relyloop_pg_timeout => '60s'});

# First with queries in flight: they are blocked on a lock when the server goes.
$locker = psql_bg($t, "BEGIN; LOCK TABLE config_repos IN ACCESS EXCLUSIVE MODE; "
    . "SELECT pg_sleep(600); COMMIT;");
RelyLoop::Test::wait_for(sub { lock_held($t, 'config_repos') }, 30);
pipe(my $rd, my $wr) or die;
my $inflight = fork // die;
if ($inflight == 0) {
    close $rd;
    my @out = $t->parallel(3, sub {
        my $x = $t->http(GET => '/api/v1/config-repos');
        return {status => $x->{status}, rid => $x->{headers}{'x-request-id'},
            code => ref $x->{json} eq 'HASH' && $x->{json}{detail} ? $x->{json}{detail}{error_code} : ''};
    });
    print $wr json_encode(\@out);
    close $wr;
    POSIX::_exit(0);
}
close $wr;
# in flight: the module's query waits for the lock
RelyLoop::Test::wait_for(sub {
    $t->psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'relyloop-nginx' "
        . "AND wait_event_type = 'Lock'") > 0
}, 30);
sleep 0.3;
$t->pg_ctl_stop;
my $inflight_out = '';
my $sel = IO::Select->new($rd);
while ($sel->can_read(120)) {
    my $n = sysread($rd, my $buf, 65536) or last;
    $inflight_out .= $buf;
}
waitpid($inflight, 0);
wait_pid($locker, 5);
my $flight = json_decode($inflight_out || 'null') || [];
# (PostgreSQL may end the lock holder first and let the waiters finish: 200)
is(scalar(grep { $_->{status} == 200 || ($_->{status} == 503 && $_->{code} eq 'DATABASE_UNAVAILABLE') }
    @$flight), 3, 'queries in flight when PostgreSQL stops → 503 DATABASE_UNAVAILABLE (or done), '
    . 'answered when the server went') or diag($inflight_out);
my @kinds = map { failure_kind($_->{rid}) } grep { $_->{status} == 503 } @$flight;
ok(!grep({ $_ eq '' || $_ =~ $PG_TIMEOUT } @kinds), '... as a lost connection, not at a timeout')
    or diag("logged: @kinds");

for my $i (1 .. 2) {
    for my $q (['GET', '/api/v1/config-repos'], ['GET', "/api/v1/config-repos/$repo->{id}"],
        ['POST', '/api/v1/config-repos', {name => "down-$i", repo_url => 'https://github.com/a/b',
            auth_ref => 'pat-fixture'}],
        ['PATCH', "/api/v1/clusters/$cluster->{id}", {notes => 'x'}], ['GET', '/api/v1/studies'],
        ['POST', '/api/v1/proposals/' . uuid7() . '/reject', {}])
    {
        my $x = api($t, $q->[0], $q->[1], $q->[2] ? (json => $q->[2]) : ());
        error_ok($x, 503, 'DATABASE_UNAVAILABLE', "PostgreSQL down: $q->[0] $q->[1] (#$i)");
        like(failure_kind($x->{headers}{'x-request-id'}), qr/^(unavailable|overloaded)$/,
            '... at once: the database is unavailable, no relyloop_pg_timeout waited for');
    }
    # (an answer at all is "quickly": relyloop_pg_timeout outlasts the client)
    $r = api($t, GET => '/api/v1/health');
    is($r->{status}, 503, "PostgreSQL down: health → 503 (#$i)");
    my $j = $r->{json} || {};
    ok((defined $j->{database} && $j->{database} ne 'ok') || ($r->{body} // '') =~ /database/i,
        'health names the database') or diag($r->{body});
}
my @down = $t->parallel(8, sub {
    my $x = $t->http(GET => '/api/v1/config-repos');
    return $x->{status};
});
is_deeply(\@down, [(503) x 8], 'PostgreSQL down: concurrent requests → 503');

$t->pg_ctl_start;
my $back = RelyLoop::Test::wait_for(sub {
    $t->http(GET => '/api/v1/config-repos')->{status} == 200
}, 30);
ok($back, 'PostgreSQL back: the API recovers without an nginx restart');
for my $i (1 .. 5) {
    $r = api($t, GET => "/api/v1/config-repos/$repo->{id}");
    is($r->{status}, 200, "after recovery: detail → 200 (#$i)");
}
$r = api($t, POST => '/api/v1/config-repos', json => {name => 'after-recovery',
    repo_url => 'https://github.com/a/after', auth_ref => 'pat-fixture'});
is($r->{status}, 201, 'after recovery: create → 201');
# the worker reconnects on its own schedule; health names it until then
ok(RelyLoop::Test::wait_for(sub { $t->http(GET => '/api/v1/health')->{status} == 200 }, 10),
    'after recovery: health → 200 (database and worker)');
my @flaps = grep { $_ } map { @$_ } $t->parallel(8, sub {
    [map { my $x = $t->http(GET => '/api/v1/health'); $x->{status} == 200 ? '' : $x->{body} } 1 .. 5]
});
is_deeply(\@flaps, [], 'once health is 200 after recovery it stays 200 (8 clients × 5)')
    or diag(scalar(@flaps) . ' flaps, e.g. ' . $flaps[0]);
@res = $t->parallel(8, sub { mixed_requests("r$_[0]", 10, no_health => 1) });
is_deeply([map { @$_ } grep { ref $_ eq 'ARRAY' } @res], [], 'after recovery: concurrent load OK');
cmp_ok(max_per_pid(), '<=', 4, 'after recovery: at most 4 connections');

# --- clients that leave mid-query ---------------------------------------------------------------

$t->stop_nginx;
$t->start_nginx(directives => {relyloop_pg_timeout => '30s', relyloop_pg_pool_size => 2});
for my $round (1 .. 2) {
    $locker = psql_bg($t, "BEGIN; LOCK TABLE config_repos IN ACCESS EXCLUSIVE MODE; "
        . "SELECT pg_sleep(2); COMMIT;");
    RelyLoop::Test::wait_for(sub { lock_held($t, 'config_repos') }, 30);
    my @socks;
    for my $i (1 .. 6) {
        my $c = ka_connect($t);
        if ($i % 3 == 0) {
            my $body = json_encode({name => "aborted-$round-$i", repo_url => 'https://github.com/a/b',
                auth_ref => 'pat-fixture'});
            print $c "POST /api/v1/config-repos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
        } else {
            print $c "GET /api/v1/config-repos HTTP/1.1\r\nHost: x\r\n\r\n";
        }
        push @socks, $c;
    }
    sleep 0.2;
    for my $i (0 .. $#socks) {
        # half leave with a FIN, half with a RST
        setsockopt($socks[$i], SOL_SOCKET, SO_LINGER, pack('II', 1, 0)) if $i % 2;
        close $socks[$i];
    }
    wait_pid($locker, 15);
    my $settled = RelyLoop::Test::wait_for(sub {
        !grep { ($_->[2] // '') eq 'active' } pg_backends($t)
    }, 5);
    ok($settled, "round $round: no backend left busy after the clients left")
        or diag(json_encode([pg_backends($t)]));
    for my $i (1 .. 10) {
        $r = api($t, GET => '/api/v1/config-repos');
        is($r->{status}, 200, "round $round: afterwards the list → 200 (#$i)");
    }
    @res = $t->parallel(6, sub { mixed_requests("a$round$_[0]", 8) });
    is_deeply([map { @$_ } grep { ref $_ eq 'ARRAY' } @res], [], "round $round: concurrent load OK");
    my @b = pg_backends($t);
    cmp_ok(scalar @b, '<=', 2, "round $round: at most relyloop_pg_pool_size (2) backends");
    cmp_ok(max_per_pid(), '<=', 2, "round $round: at most 2 connections held");
}
unlike($t->nginx_error_log, qr/\[(alert|emerg|crit)\]/, 'no [alert], [emerg] or [crit] so far');

# --- relyloop_pg_max_waiting -------------------------------------------------------------------

# The pool pipelines queries (relyloop_pg_pipeline_depth, docs/decisions.md);
# depth 1 gives the plain "wait for a free connection".
$t->stop_nginx;
$t->start_nginx(directives => {relyloop_pg_timeout => '30s', relyloop_pg_pool_size => 2,
    relyloop_pg_max_waiting => 3, relyloop_pg_pipeline_depth => 1});
# open both pool connections first
$t->parallel(4, sub { $t->http(GET => "/api/v1/clusters/$cluster->{id}")->{status} });
$locker = psql_bg($t, "BEGIN; LOCK TABLE config_repos IN ACCESS EXCLUSIVE MODE; "
    . "SELECT pg_sleep(600); COMMIT;");
RelyLoop::Test::wait_for(sub { lock_held($t, 'config_repos') }, 30);
# The lock goes once two requests were turned away (each leaves a mark after
# it looked at the lock), or after 60 s, which the checks below then catch.
my $marks = $t->dir . '/turned-away';
mkdir $marks or die "$marks: $!";
my $releaser = fork // die;
if ($releaser == 0) {
    my $until = time + 60;
    sleep 0.05 while time < $until && (() = glob("$marks/*")) < 2;
    release_lock('config_repos');
    POSIX::_exit(0);
}
@res = $t->parallel(7, sub {
    my $x = $t->http(GET => '/api/v1/config-repos');
    my $held = lock_held($t, 'config_repos') ? 1 : 0;
    if ($x->{status} == 503) { open my $fh, '>', "$marks/$$" or die; close $fh }
    return {status => $x->{status}, held => $held, rid => $x->{headers}{'x-request-id'},
        code => ref $x->{json} eq 'HASH' && $x->{json}{detail} ? $x->{json}{detail}{error_code} : ''};
});
waitpid($releaser, 0);
wait_pid($locker, 15);
my @ok = grep { $_->{status} == 200 } @res;
my @full = grep { $_->{status} == 503 && $_->{code} eq 'DATABASE_UNAVAILABLE' } @res;
is(scalar @ok, 5, 'pool 2 + 3 waiting: five served once the lock goes') or diag(json_encode(\@res));
is(scalar @full, 2, 'the other two: 503 DATABASE_UNAVAILABLE');
ok(@full && !grep({ !$_->{held} } @full), '... at once, while the lock was still held')
    or diag(json_encode(\@full));
is_deeply([map { failure_kind($_->{rid}) } @full], [('overloaded') x @full],
    '... turned away by relyloop_pg_max_waiting (logged as overloaded)');

# --- reloads under load --------------------------------------------------------------------------

$t->stop_nginx;
$t->start_nginx(workers => 2, directives => {relyloop_pg_pool_size => 2});
$t->write_nginx_conf(workers => 2, directives => {relyloop_pg_pool_size => 3});
my $npid = $t->nginx_pid;
my $reloader = fork // die;
if ($reloader == 0) {
    for (1 .. 3) {
        sleep 0.8;
        kill 'HUP', $npid;
    }
    POSIX::_exit(0);
}
$sampler = start_sampler($file);
my $deadline = time + 4;
@res = $t->parallel(8, sub {
    my ($i) = @_;
    my (%count, @bad);
    while (time < $deadline) {
        my $path = $i % 2 ? '/api/v1/config-repos' : "/api/v1/clusters/$cluster->{id}";
        my $x = $t->http(GET => $path);
        if ($x->{status} == 599 && ($x->{body} // '') =~ /reset by peer|Socket closed|Unexpected end/) {
            # the keepalive race: the old worker closed this idle connection
            # as the request went out; a client retries an idempotent request
            $count{retried}++;
            $x = $t->http(GET => $path);
        }
        $count{$x->{status}}++;
        push @bad, "$x->{status} " . substr($x->{body} // '', 0, 100) if $x->{status} != 200;
        if ($i == 0 && ($count{200} // 0) % 10 == 0) {
            # POSTs on fresh connections: no keepalive race to excuse
            my $ua = HTTP::Tiny->new(keep_alive => 0, timeout => 10);
            my $p = $ua->post($t->url('/api/v1/clusters'), {headers => {'Content-Type' => 'application/json'},
                content => json_encode({name => uniq_name("reload$i"), engine_type => 'opensearch',
                environment => 'dev', base_url => 'https://os', auth_kind => 'opensearch_basic',
                credentials_ref => 'x'})});
            $count{"post$p->{status}"}++;
            push @bad, "POST $p->{status}" if $p->{status} != 201;
        }
    }
    return {count => \%count, bad => [@bad[0 .. ($#bad > 4 ? 4 : $#bad)]]};
});
my $retried = 0;
$retried += $_->{count}{retried} // 0 for @res;
note("GETs retried after a keepalive reset: $retried");
waitpid($reloader, 0);
my @errors = map { @{$_->{bad} || ['child failed']} } @res;
is_deeply(\@errors, [], 'three reloads under load: every request answered 200/201')
    or diag(json_encode(\@res));
my $served = 0;
$served += $_->{count}{200} // 0 for @res;
cmp_ok($served, '>', 100, "requests kept flowing during the reloads ($served)");
($max_app, $max_sock) = stop_sampler($sampler, $file);
cmp_ok($max_sock, '<=', 3, 'no nginx process ever held more than its pool size');
# the same, through a fresh connection per request: nothing to retry
$deadline = time + 2.5;
$reloader = fork // die;
if ($reloader == 0) {
    for (1 .. 2) {
        sleep 0.7;
        kill 'HUP', $npid;
    }
    POSIX::_exit(0);
}
@res = $t->parallel(6, sub {
    my (%count, @bad);
    while (time < $deadline) {
        my $ua = HTTP::Tiny->new(keep_alive => 0, timeout => 10);
        my $x = $ua->get($t->url('/api/v1/config-repos?limit=5'));
        $count{$x->{status}}++;
        push @bad, "$x->{status} " . substr($x->{content} // '', 0, 100) if $x->{status} != 200;
    }
    return {count => \%count, bad => [@bad[0 .. ($#bad > 4 ? 4 : $#bad)]]};
});
waitpid($reloader, 0);
@errors = map { @{$_->{bad} || ['child failed']} } @res;
is_deeply(\@errors, [], 'two more reloads, a fresh connection per request: all 200')
    or diag(json_encode(\@res));
my $drained = RelyLoop::Test::wait_for(sub { my @b = pg_backends($t); @b <= 6 }, 10);
ok($drained, 'after the reloads: at most 2 workers × pool 3 backends (old pools closed)')
    or diag(json_encode([pg_backends($t)]));
my $per = pg_conns_per_pid();
ok(!grep({ $_ > 3 } values %$per), 'per worker: at most 3') or diag(json_encode($per));
$r = api($t, GET => '/api/v1/health');
is($r->{status}, 200, 'health after the reloads');

responses_ok();
$t->done;
