#!/usr/bin/perl
# A transaction-pooling PgBouncer in front of PostgreSQL (docs/worker.md,
# "Connection poolers"): the repo lock is a session-level advisory lock, which
# cannot work there, so `relyloop-worker check` and the daemon refuse it with
# a clear message. Directly and through a session pool they accept.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX qw(:sys_wait_h);
use Test::More;
use Time::HiRes qw(sleep);

use RelyLoop::Test;
use RelyLoop::WorkerTest;

$SIG{ALRM} = sub { BAIL_OUT('t/worker_pgbouncer.t: hard timeout (120 s)') };
alarm 120;

my $PGBOUNCER = '/usr/sbin/pgbouncer';
plan skip_all => "pgbouncer not installed ($PGBOUNCER; Debian package pgbouncer)" unless -x $PGBOUNCER;

my $t = RelyLoop::Test->new;
$t->start_pg->migrate;
my $w = RelyLoop::WorkerTest->new($t);
my $dir = $t->dir . '/pgbouncer';
mkdir $dir or die "$dir: $!";
my $port = RelyLoop::Test::free_port();
my $pg = $t->pg_port;

# PgBouncer refuses to run as root; the auth_file is required even with
# auth_type=any (the [databases] entries name the user).
open my $fh, '>', "$dir/users.txt" or die;
print $fh qq{"postgres" ""\n};
close $fh;
open $fh, '>', "$dir/pgbouncer.ini" or die;
print $fh <<"INI";
[databases]
relyloop = host=127.0.0.1 port=$pg dbname=relyloop user=postgres
relyloop_session = host=127.0.0.1 port=$pg dbname=relyloop user=postgres pool_mode=session

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = any
auth_file = $dir/users.txt
pool_mode = transaction
default_pool_size = 4
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
close $fh;
system('chown', '-R', 'postgres', $dir) if $> == 0;

my $bouncer = fork // die "fork: $!";
if ($bouncer == 0) {
    open STDOUT, '>>', "$dir/stdout.log";
    open STDERR, '>&', \*STDOUT;
    my @cmd = ($PGBOUNCER, "$dir/pgbouncer.ini");
    @cmd = ('runuser', '-u', 'postgres', '--', @cmd) if $> == 0;
    exec @cmd or POSIX::_exit(127);
}
END { local $?; if ($bouncer) { kill 'TERM', $bouncer; waitpid($bouncer, 0) } }
ok(RelyLoop::Test::wait_for(sub { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 1) }, 15),
    'pgbouncer listens') or diag(RelyLoop::Test->slurp("$dir/pgbouncer.log"));

my $via = "host=127.0.0.1 port=$port dbname=relyloop user=postgres";
my $via_session = "host=127.0.0.1 port=$port dbname=relyloop_session user=postgres";
my @common = ('--secrets-dir', $t->dir . '/secrets', '--clone-root', $t->dir . '/clones',
    '--socket', $t->dir . '/check.sock', '--git-author-email', 'bot@test.invalid');

{
    my ($rc, $out) = $w->run_cli('check', '--pg-conninfo', $t->conninfo, @common);
    is($rc, 0, 'check directly against PostgreSQL passes') or diag($out);
    like($out, qr/^ok\s+sessions\s+direct; session locks work$/m, 'sessions: direct');
}
{
    my ($rc, $out) = $w->run_cli('check', '--pg-conninfo', $via, @common);
    is($rc, 1, 'check through a transaction pool fails') or diag($out);
    like($out, qr/^ok\s+postgres\s+connected/m, 'PostgreSQL itself is reachable through it');
    like($out, qr/^FAIL\s+sessions\s+the connection goes through a transaction-pooling proxy/m,
        'the failing check names the transaction pool') or diag($out);
    like($out, qr/session-level advisory lock and cannot work there/, 'and says why');
    like($out, qr/pool_mode=session/, 'and what to do instead');
    unlike($out, qr/^ok\s+schema/m, 'check stopped at that failure');
}
{
    my ($rc, $out) = $w->run_cli('check', '--pg-conninfo', $via_session, @common);
    is($rc, 0, 'check through a session pool passes') or diag($out);
    like($out, qr/^ok\s+sessions\s+through a session-pooling proxy; session locks work$/m,
        'sessions: proxy seen, session pooling accepted');
}

# The worker adds its keepalive settings to the conninfo's own `options`
# instead of replacing them: a bad setting there still reaches PostgreSQL.
{
    my ($rc, $out) = $w->run_cli('check', '--pg-conninfo',
        $t->conninfo . q{ options='-c statement_timeout=bogus'}, @common);
    is($rc, 1, "the conninfo's own options are passed on") or diag($out);
    like($out, qr/statement_timeout/, 'PostgreSQL saw them');
}

# The daemon refuses to start behind the transaction pool (instead of running
# jobs whose repo lock silently does nothing).
{
    my $log = $t->dir . '/logs/daemon-pgbouncer.log';
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', $log;
        open STDERR, '>&', \*STDOUT;
        exec $t->worker_bin, '--pg-conninfo', $via, @common or POSIX::_exit(127);
    }
    my $exited = RelyLoop::Test::wait_for(sub { waitpid($pid, WNOHANG) == $pid }, 30);
    my $status = $?;
    if (!$exited) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
    ok($exited, 'the daemon did not start behind the transaction pool');
    is($status >> 8, 1, 'exit status 1');
    my $text = RelyLoop::Test->slurp($log);
    my ($failed) = grep { $_->{event} eq 'worker_start_failed' }
        map { RelyLoop::Test::json_decode($_) // () } grep { /^\{/ } split /\n/, $text;
    like($failed->{message} // '', qr/transaction-pooling proxy/, 'worker_start_failed says why')
        or diag($text);
    ok(!grep({ /"event":"worker_ready"/ } split /\n/, $text), 'never ready');
}

$t->done;
