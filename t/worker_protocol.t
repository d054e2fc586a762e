#!/usr/bin/perl

# The worker socket (docs/worker.md, The socket protocol): enqueue, ping and garbage over one and many
# connections, line limits, silent clients, the socket file's mode and life.

use strict;
use warnings;

use Test::More;
use POSIX ();
use Time::HiRes qw(sleep time);

use RelyLoop::Test;
use RelyLoop::WorkerTest;

$SIG{PIPE} = 'IGNORE';

my $t = RelyLoop::Test->new;
$t->start_pg->migrate;
my $w = RelyLoop::WorkerTest->new($t);
$w->script('default', 'block');
$w->start('w1', args => ['--threads', 2]);
my $sock = $w->socket_of('w1');

# --- the socket file ---------------------------------------------------------
ok(-S $sock, 'socket exists');
is((stat $sock)[2] & 07777, 0660, 'socket is mode 0660');

# --- ping ------------------------------------------------------------------------
my $r = $w->ping;
ok($r->{ok}, 'ping ok');
like($r->{version}, qr/^\d+\.\d+\.\d+/, 'ping carries the version');
is($r->{queued}, 0, 'nothing queued');
is($r->{running}, 0, 'nothing running');

# --- enqueue -------------------------------------------------------------------
my $repo = $w->repo;
my $cluster = $w->cluster($repo);
my $p1 = $w->proposal($cluster);

$r = $w->enqueue('0196c0de-0000-7000-8000-00000000dead');
is_deeply($r, {ok => JSON::PP::false, error => 'proposal not found'}, 'unknown proposal');

$r = $w->enqueue($p1);
ok($r->{ok}, 'enqueue ok');
ok(!$r->{deduplicated}, 'first enqueue is not deduplicated');
my $job1 = $r->{job_id};
like($job1, qr/^[0-9a-f-]{36}$/, 'job id is a UUID');
is(scalar $t->psql("SELECT state FROM pr_jobs WHERE id = '$job1'") =~ /^(queued|running)$/ ? 1 : 0,
    1, 'the row is committed when the reply arrives');

$r = $w->enqueue($p1);
ok($r->{ok} && $r->{deduplicated}, 'second enqueue deduplicated');
is($r->{job_id}, $job1, 'same job id');

# --- several requests on one connection, garbage in between ------------------
my $c = $w->client;
$r = $c->request({op => 'ping'});
ok($r->{ok}, 'conn: ping');
$r = $c->request('this is not json');
ok(!$r->{ok} && $r->{error} =~ /^invalid JSON/, 'conn: bad JSON answered') or diag explain $r;
$r = $c->request({op => 'explode'});
is($r->{error}, 'unknown op "explode"', 'conn: unknown op');
$r = $c->request({op => 'enqueue'});
is($r->{error}, 'missing proposal_id', 'conn: missing proposal_id');
$r = $c->request({op => 'enqueue', proposal_id => 42});
is($r->{error}, 'proposal_id must be a string', 'conn: proposal_id type');
$r = $c->request('[1,2,3]');
is($r->{error}, 'request must be a JSON object', 'conn: not an object');
$r = $c->request('');
is($r->{error}, 'empty request', 'conn: empty line');
$r = $c->request({op => 'enqueue', proposal_id => $p1, request_id => 'rq-1'});
ok($r->{ok} && $r->{deduplicated} && $r->{job_id} eq $job1, 'conn: enqueue after garbage');
$r = $c->request({op => 'ping'});
ok($r->{ok}, 'conn: still usable');
is($r->{queued} + $r->{running}, 1, 'ping counts the live job');

# Several requests in one write, replies in order.
my $p2 = $w->proposal($cluster);
$c->send_raw(qq({"op":"ping"}\n{"op":"nope"}\n{"op":"enqueue","proposal_id":"$p2"}\n));
my @replies = map { $c->reply } 1 .. 3;
ok($replies[0]{ok} && defined $replies[0]{queued}, 'pipelined: ping');
is($replies[1]{error}, 'unknown op "nope"', 'pipelined: error in the middle');
ok($replies[2]{ok} && !$replies[2]{deduplicated}, 'pipelined: enqueue');

# A request split across writes.
$c->send_raw('{"op":');
sleep 0.2;
$c->send_raw(qq("ping"}\r\n));
$r = $c->reply;
ok($r->{ok} && defined $r->{running}, 'partial line, CRLF');

# A client streaming thousands of requests (writing while it reads) gets
# every reply, in order, and others are served meanwhile.
{
    my $flood = $w->client;
    my $n = 20000;
    my $pid = fork // die;
    if ($pid == 0) {
        $flood->send_raw(qq({"op":"zz"}\n) x $n);
        POSIX::_exit(0);
    }
    my $got = 0;
    while ($got < $n) {
        my $l = $flood->read_line(20) // last;
        last unless $l eq '{"ok":false,"error":"unknown op \"zz\""}';
        $got++;
        ok($w->ping->{ok}, 'others served during the flood') if $got == $n / 2;
    }
    waitpid($pid, 0);
    is($got, $n, "flood: all $n replies, in order");
    ok($flood->request({op => 'ping'})->{ok}, 'flood: connection still usable');
}

# Requests, then the client half-closes: every request still answered.
my $hc = $w->client;
$hc->send_raw(qq({"op":"ping"}\n{"op":"ping"}\n));
$hc->shutdown_write;
ok($hc->reply->{ok} && $hc->reply->{ok}, 'half-closed client gets its replies');
ok($hc->closed_within(30), 'then the connection is closed');

# --- limits ---------------------------------------------------------------------
my $big = $w->client;
my $line = '{"op":"ping","pad":"' . ('x' x (1024 * 1024)) . "\"}\n";
my $sent = $big->send_raw($line);
$r = $big->reply(10);
ok($r && !$r->{ok} && $r->{error} =~ /longer than 65536 bytes/, '1 MiB line: error reply')
    or diag explain $r;
ok($big->closed_within(30), '1 MiB line: connection closed');
cmp_ok($sent, '<', length $line, 'the worker stopped reading early (no unbounded buffering)')
    or diag "sent $sent";

# A line of exactly 64 KiB is fine.
my $exact = $w->client;
my $pad = 65536 - length('{"op":"ping","pad":""}');
$r = $exact->request('{"op":"ping","pad":"' . ('y' x $pad) . '"}');
ok($r->{ok}, '64 KiB line accepted');
$r = $exact->request('{"op":"ping","pad":"' . ('y' x ($pad + 1)) . '"}');
ok(!$r->{ok}, '64 KiB + 1 rejected');

# A silent client is closed after the idle timeout (2 s here) and blocks nobody.
# A second daemon with a 1 h idle timeout is the yardstick: its silent client,
# connected first, is still open when the 2 s one closes ours.
$w->start('patient', args => ['--threads', 1, '--client-idle-timeout', 3600]);
my $patient = $w->client('patient');
ok(($patient->request({op => 'ping'}) // {})->{ok}, 'a client of a daemon with a 1 h idle timeout');
my $silent = $w->client;
ok(($silent->request({op => 'ping'}) // {})->{ok}, 'a client served once, then silent');
for (1 .. 5) {
    ok($w->ping->{ok}, "others are served while a client is silent ($_)");
}
ok($silent->closed_within(60), 'silent client closed');
ok(($patient->request({op => 'ping'}, 10) // {})->{ok},
    'not before the idle timeout: the 1 h daemon still serves its client, silent longer');
is($w->stop('patient', 'TERM', 30), 0, 'the 1 h daemon: exit 0');

# Many clients at once.
my @cs = map { $w->client } 1 .. 60;
is(scalar(grep { defined } @cs), 60, '60 connections open');
$_->send({op => 'ping'}) for @cs;
my $okn = grep { my $x = $_->reply; $x && $x->{ok} } @cs;
is($okn, 60, 'all 60 answered');
$_->close for @cs;

ok($w->ping->{ok}, 'the daemon keeps serving');

# --- the socket's life -----------------------------------------------------------
# A second daemon on the same socket refuses to start.
$w->start('w1b', socket => $sock, no_wait => 1);
my $st = $w->stop('w1b', 0, 10);
ok(defined $st, 'second daemon exited by itself');
isnt($st >> 8, 0, 'with a non-zero status');
like($t->worker_log('w1b'), qr/another relyloop-worker is answering on/, 'and says why');
ok($w->ping->{ok}, 'the first one still answers');

# kill -9 leaves a stale socket file; a new daemon replaces it.
$w->stop('w1', 'KILL');
ok(-S $sock, 'stale socket left behind');
$w->start('w2', socket => $sock);
ok($w->ping('w1')->{ok}, 'new daemon took over the stale socket');
is((stat $sock)[2] & 07777, 0660, 'still mode 0660');
$w->release($p1);
$w->release($p2);
my $j = $w->wait_job($job1, 'succeeded');
is($j->{state}, 'succeeded', 'the job enqueued before kill -9 finished');

# SIGTERM: exit 0 and the socket file is gone.
$st = $w->stop('w2', 'TERM', 30);
is($st, 0, 'SIGTERM: exit status 0');
ok(!-e $sock, 'socket removed');

my @bad = ($w->non_json_lines('w1'), $w->non_json_lines('w2'));
ok(!@bad, 'every log line is a JSON object') or diag join "\n", @bad[0 .. 4];
my @started = $w->events('w2', 'worker_started');
is(scalar @started, 1, 'worker_started logged');
ok(scalar $w->events('w2', 'worker_stopped'), 'worker_stopped logged');
ok(scalar $w->events('w1', 'job_enqueued'), 'job_enqueued logged');

$t->done;
