#!/usr/bin/perl
# A lost host (docs/worker.md, "Lost hosts"): a worker runs inside a network
# namespace this test creates, joined to the host by a veth pair with
# link-local addresses assigned here (169.254.N.0/30, on that pair only:
# nothing leaves this machine). It holds a job and its repo lock; then its
# link goes down. Its own watchdog stops the run when the lease cannot be
# renewed; PostgreSQL drops its sessions (server-side keepalives and
# tcp_user_timeout from the worker's connection options), which frees the
# repo lock; a worker on the host re-claims the job, gets the lock and
# finishes it. One PR. The time until the lock was freed is printed (diag);
# it is not asserted.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);

use RelyLoop::Test;
use RelyLoop::WorkerTest;

$SIG{ALRM} = sub { BAIL_OUT('t/worker_lost_host.t: hard timeout (240 s)') };
alarm 240;

plan skip_all => 'needs root for ip netns' if $> != 0;
plan skip_all => 'needs iproute2 (ip)' if system('ip -V >/dev/null 2>&1') != 0;

my $NS = "rl-lost-$$";
my $HOST_IF = 'rlh' . ($$ % 1000000);
my $NS_IF = 'rln' . ($$ % 1000000);
# 169.254.N.0/30, a /30 no interface here uses yet; never 169.254.169.x.
my $N = 1 + $$ % 160;
$N = 1 + $N % 160 while qx{ip -o addr show to 169.254.$N.0/30 2>/dev/null} =~ /\S/;
my ($HOST_IP, $NS_IP) = ("169.254.$N.1", "169.254.$N.2");

sub sh {
    my $cmd = join ' ', @_;
    my $out = qx{$cmd 2>&1};
    return ($? == 0, $out);
}

my ($can, $why) = sh('ip', 'netns', 'add', $NS);
plan skip_all => "ip netns add is not permitted here: $why" unless $can;
my $t;
my $w;
END {
    local $?;
    # The namespaced worker first (its namespace lives as long as it does).
    if ($t && $w && $w->pid('lost')) {
        kill 'KILL', $w->pid('lost');
        $t->stop_worker('lost', 'KILL', 5);
    }
    system("ip netns del $NS >/dev/null 2>&1");
    system("ip link del $HOST_IF >/dev/null 2>&1");
}
for my $cmd (
    "ip link add $HOST_IF type veth peer name $NS_IF",
    "ip link set $NS_IF netns $NS",
    "ip addr add $HOST_IP/30 dev $HOST_IF",
    "ip link set $HOST_IF up",
    "ip netns exec $NS ip link set lo up",
    "ip netns exec $NS ip addr add $NS_IP/30 dev $NS_IF",
    "ip netns exec $NS ip link set $NS_IF up",
) {
    my ($ok, $out) = sh($cmd);
    BAIL_OUT("$cmd: $out") unless $ok;
}

$t = RelyLoop::Test->new;
$t->start_pg(listen => "127.0.0.1,$HOST_IP", hba => ["host all all $HOST_IP/30 trust"])->migrate;
$w = RelyLoop::WorkerTest->new($t);
ok(RelyLoop::Test::wait_for(sub {
    (sh("ip netns exec $NS psql -X -At -h $HOST_IP -p " . $t->pg_port . ' -U postgres -d relyloop -c "SELECT 1"'))[0] }, 15),
    'PostgreSQL is reachable from the namespace over the veth pair');

my $ns_conninfo = "host=$HOST_IP port=" . $t->pg_port . ' user=postgres dbname=relyloop';
$w->start('lost', prefix => ['ip', 'netns', 'exec', $NS],
    args => ['--pg-conninfo', $ns_conninfo, '--threads', 1]);
my $p = $w->proposal($w->cluster($w->repo));
$w->script($p, 'block');
my $r = $w->enqueue($p, 'lost');
ok($r && $r->{ok}, 'enqueued on the namespaced worker');
$w->wait_job($r->{job_id}, 'running');
ok(RelyLoop::Test::wait_for(sub { scalar $w->runs_of($p) }, 15), 'its pipeline is running');

my $LOCKS_FROM_NS = qq{SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND a.client_addr = '$NS_IP'};
is(scalar $t->psql($LOCKS_FROM_NS), 1, 'the namespaced worker holds the repo lock');

# The host worker waits as long as needed for the lock (no LOCK_TIMEOUT here).
$w->script($p, 'succeed');
$w->start('host', args => ['--threads', 1, '--max-lock-waits', 500]);

my ($down, $out) = sh("ip netns exec $NS ip link set $NS_IF down");
ok($down, 'the namespaced host lost its link') or diag($out);
my $t0 = time;
my $freed = RelyLoop::Test::wait_for(sub { $t->psql($LOCKS_FROM_NS) == 0 }, 150);
my $took = time - $t0;
ok($freed, 'PostgreSQL dropped the lost host\'s session and its repo lock');
diag(sprintf('lost host: repo lock freed %.1f s after the link went down', $took));
ok(kill(0, $w->pid('lost')), 'while the lost worker was still running (freed by the server)');
like(scalar(qx{ip netns exec $NS ip link show $NS_IF}), qr/state DOWN/, 'and its link still down');

my $job = $w->wait_job($r->{job_id}, 'succeeded|failed', 60);
is($job->{state}, 'succeeded', 'the host worker finished the job');
like($job->{worker_id}, qr/./, 'worker recorded');
my $row = $w->proposal_row($p);
is($row->{status}, 'pr_opened', 'proposal pr_opened');
like($row->{pr_url}, qr{/pull/\d+$}, 'one PR url');
is($row->{pr_open_error}, '', 'no pr_open_error');

my @runs = $w->runs_of($p);
is(scalar @runs, 2, 'two runs: the lost host\'s and the host\'s');
is($runs[0]{pid}, $w->pid('lost'), 'the first on the lost host');
is($runs[0]{outcome}, 'cancelled', 'which stopped itself when its lease ran out');
is($runs[1]{pid}, $w->pid('host'), 'the second on the host');
isnt($runs[1]{outcome} // '', 'cancelled', 'which completed');
ok(!RelyLoop::WorkerTest::overlap($runs[0], $runs[1]), 'the runs did not overlap');
is($runs[1]{advisory_locks}, 1, 'the second held the repo lock');
my @lost = map { $_->{event} } grep { ($_->{job_id} // '') eq $r->{job_id} } $w->events('lost');
ok((grep { $_ eq 'job_lease_expired' } @lost), 'lost worker: job_lease_expired');
ok((grep { $_ eq 'job_abandoned' } @lost), 'lost worker: job_abandoned');
ok(!(grep { /^job_(succeeded|failed|released|retry)$/ } @lost), 'lost worker: no outcome written');

# The link comes back: the lost worker reconnects and stops cleanly.
sh("ip netns exec $NS ip link set $NS_IF up");
is($w->stop('lost', 'TERM', 60) >> 8, 0, 'the lost worker exits 0 on SIGTERM once back');
is($w->stop('host', 'TERM', 30) >> 8, 0, 'the host worker exits 0 on SIGTERM');

$t->done;
