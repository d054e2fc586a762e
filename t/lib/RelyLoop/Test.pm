package RelyLoop::Test;

# The integration-test harness, shaped like nginx-tests' Test::Nginx: each
# test file gets its own temp dir with a PostgreSQL cluster, nginx loading the
# built module, the worker, and whatever else it starts, all on loopback, all
# stopped and removed at the end (RELYLOOP_KEEP=1 keeps the dir).
#
#   my $t = RelyLoop::Test->new;
#   $t->start_pg->migrate->start_worker->start_nginx(environment => 'development');
#   my $res = $t->http(GET => '/api/v1/health');
#   is($res->{status}, 200);
#   $t->done;    # stops everything (nginx must exit on QUIT, each live worker 0 on
#                # SIGTERM), checks logs for [alert]/[emerg]/sanitizer reports, then
#                # done_testing
#
# Binaries come from the environment set by build.sh (RELYLOOP_MODULE,
# RELYLOOP_WORKER, RELYLOOP_TEST_WORKER, RELYLOOP_VARIANT=release|asan);
# without it, from build/.
#
# Every t/*.t file that uses this module runs under a hard timeout: after
# RELYLOOP_TEST_TIMEOUT seconds (default 300, 900 for the asan variant; a file
# may ask for more with RelyLoop::Test->timeout(N)) it fails, its processes
# are killed and it exits. SIGTERM and SIGINT do the same.

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter ();
use Fcntl qw(:flock);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use IO::Select;
use IO::Socket::UNIX;
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Socket qw(SOL_SOCKET SO_RCVTIMEO SO_SNDTIMEO);
use Test::More;
use Time::HiRes qw(sleep time);

use RelyLoop::Proc qw(stop_pid);

our @EXPORT_OK = qw(json_encode json_decode);

my $ROOT = abs_path(dirname(__FILE__) . '/../../..');
my $PGBIN = '/usr/lib/postgresql/15/bin';
my $IS_ROOT = $> == 0;
my $JSON = JSON::PP->new->canonical->allow_nonref;

sub json_encode { $JSON->encode($_[0]) }
sub json_decode { my $v = eval { $JSON->decode($_[0]) }; $v }

my @INSTANCES;
my $SAN_ENV_SET = 0;

# --- the hard timeout of a test file ------------------------------------------------

my ($ARMED_PID, $BUDGET);

sub import {
    _arm() if $0 =~ /\.t\z/;    # test files, not the bench scripts
    goto &Exporter::import;
}

sub _default_budget {
    return $ENV{RELYLOOP_TEST_TIMEOUT} if ($ENV{RELYLOOP_TEST_TIMEOUT} // '') =~ /^\d+\z/;
    return ($ENV{RELYLOOP_VARIANT} // '') eq 'asan' ? 900 : 300;
}

sub _arm {
    return if defined $ARMED_PID && $ARMED_PID == $$;
    $ARMED_PID = $$;
    $BUDGET = _default_budget();
    $SIG{ALRM} = sub { _abort("ran longer than its hard timeout of $BUDGET s "
        . '(RELYLOOP_TEST_TIMEOUT, RelyLoop::Test->timeout)') };
    $SIG{TERM} = sub { _abort('got SIGTERM', 'TERM') };
    $SIG{INT} = sub { _abort('got SIGINT', 'INT') };
    alarm $BUDGET;
}

# RelyLoop::Test->timeout(N): this file's budget from now on is N seconds
# (an environment RELYLOOP_TEST_TIMEOUT wins: it is the caller's limit).
sub timeout {
    my ($class, $secs) = @_;
    _arm();
    $BUDGET = $ENV{RELYLOOP_TEST_TIMEOUT} // $secs;
    alarm $BUDGET;
    return $BUDGET;
}

# Every process below $pid (by /proc's parent links).
sub _descendants {
    my ($root) = @_;
    my %kids;
    opendir(my $dh, '/proc') or return ();
    for my $p (grep { /^\d+\z/ } readdir $dh) {
        open my $fh, '<', "/proc/$p/stat" or next;
        my $stat = <$fh> // '';
        close $fh;
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        push @{$kids{$1}}, $p if $stat =~ /\)\s+\S+\s+(\d+)/;
    }
    closedir $dh;
    my (@out, @todo);
    @todo = @{$kids{$root} || []};
    while (defined(my $p = shift @todo)) {
        push @out, $p;
        push @todo, @{$kids{$p} || []};
    }
    return @out;
}

# The file is over: fail it, kill what it started, stop PostgreSQL, exit.
sub _abort {
    my ($why, $signal) = @_;
    if (!defined $ARMED_PID || $$ != $ARMED_PID) {
        # a forked helper of the test: the signal's default action
        $SIG{$signal // 'ALRM'} = 'DEFAULT';
        kill($signal // 'ALRM', $$);
        POSIX::_exit(1);
    }
    $SIG{ALRM} = sub { kill 'KILL', _descendants($$); POSIX::_exit(124) };
    # (prove may be gone: writing the TAP line must not end us before the cleanup)
    $SIG{$_} = 'IGNORE' for qw(TERM INT PIPE);
    alarm 60;    # the cleanup itself gets a minute
    my $tb = Test::More->builder;
    $tb->ok(0, "$0 $why");
    $tb->diag('killing the processes it started; RELYLOOP_KEEP_FAILED=1 keeps the test dir');
    my @pids = _descendants($$);
    kill 'TERM', @pids if @pids;
    my $deadline = time + 3;
    while (time < $deadline && grep { kill 0, $_ } @pids) {
        1 while waitpid(-1, WNOHANG) > 0;
        sleep 0.1;
    }
    kill 'KILL', _descendants($$);
    1 while waitpid(-1, WNOHANG) > 0;
    for my $t (@INSTANCES) {
        next if $t->{owner_pid} != $$;
        $t->{aborted} = 1;
        if ($t->{pg_running}) {
            _as_pg("$PGBIN/pg_ctl", '-D', "$t->{pg_dir}/data", '-m', 'immediate', '-w', 'stop',
                '>/dev/null 2>&1');
            $t->{pg_running} = 0;
        }
    }
    exit($signal ? 128 + ($signal eq 'TERM' ? 15 : 2) : 124);
}

sub new {
    my ($class, %opts) = @_;
    _arm() if $0 =~ /\.t\z/;    # (also for a file that imported nothing)
    my $dir = tempdir('relyloop-t-XXXXXX', TMPDIR => 1, CLEANUP => 0);
    chmod 0755, $dir;    # postgres (the user) must traverse it
    # load_module => 'nginx.conf text' replaces the load_module line;
    # nginx_user => 'www-data' the `user` of nginx's worker processes
    my $self = bless {
        dir => $dir,
        variant => $ENV{RELYLOOP_VARIANT} || 'release',
        module => $ENV{RELYLOOP_MODULE} || "$ROOT/build/ngx_http_relyloop_module.so",
        worker_bin => $ENV{RELYLOOP_WORKER} || "$ROOT/build/relyloop-worker",
        test_worker_bin => $ENV{RELYLOOP_TEST_WORKER}
            || "$ROOT/build/cmake-release/relyloop-test-worker",
        workers => {},
        owner_pid => $$,
        # Which kind of database migrate() prepares: 'own' (migrate on an empty
        # database) or 'upstream' (RelyLoop's 0023 schema from
        # t/fixtures/relyloop-0023.sql, then migrate). RELYLOOP_DB_KIND picks it
        # for a whole run; a test may pass db_kind => ... to new().
        db_kind => $ENV{RELYLOOP_DB_KIND} || 'own',
        %opts,
    }, $class;
    make_path("$dir/logs", "$dir/secrets", "$dir/clones");
    # paths from the environment may be relative to where prove started
    for my $k (qw(module worker_bin test_worker_bin)) {
        $self->{$k} = abs_path($self->{$k}) // $self->{$k} if -e $self->{$k};
    }
    push @INSTANCES, $self;
    # Anything this process starts without its own sanitizer settings
    # (qx{}, system) still reports into logs/, where check_logs looks.
    if ($self->asan && !$SAN_ENV_SET++) {
        %ENV = (%ENV, $self->_san_env('other'));
    }
    return $self;
}

sub dir { $_[0]{dir} }
sub root { $ROOT }
sub variant { $_[0]{variant} }
sub asan { $_[0]{variant} eq 'asan' }

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0,
        Proto => 'tcp', ReuseAddr => 1) or die "free_port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# wait_for { COND } TIMEOUT: COND's first true value, or false after TIMEOUT
# seconds (default 10). Called in void context, where nobody looks at the
# result, a timeout fails the test: a later assertion must not pass on a
# state the wait never reached.
sub wait_for(&;$) {
    my ($cond, $timeout) = @_;
    my $checked = defined wantarray;
    $timeout //= 10;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        my $v = $cond->();
        return $v if $v;
        sleep 0.05;
    }
    my $v = $cond->();
    if (!$v && !$checked) {
        my (undef, $file, $line) = caller;
        Test::More->builder->ok(0, "wait_for at $file line $line: condition not met within $timeout s");
    }
    return $v;
}

# Reads on a harness socket give up after SECS (default 60) instead of hanging.
sub socket_timeout {
    my ($s, $secs) = @_;
    my $tv = pack('l!l!', $secs // 60, 0);
    setsockopt($s, SOL_SOCKET, SO_RCVTIMEO, $tv);
    setsockopt($s, SOL_SOCKET, SO_SNDTIMEO, $tv);
    return $s;
}

# --- PostgreSQL -------------------------------------------------------------

# initdb is the slow part (~1 s): do it once per machine into a template and
# copy that for each test file.
sub _pg_template {
    my $tmpl = "/tmp/relyloop-pg-template-15-$>";
    return $tmpl if -f "$tmpl/PG_VERSION.ok";
    open my $lock, '>', "$tmpl.lock" or die "lock: $!";
    flock($lock, LOCK_EX);
    if (!-f "$tmpl/PG_VERSION.ok") {
        remove_tree($tmpl);
        make_path($tmpl);
        chmod 0700, $tmpl;
        system('chown', 'postgres:postgres', $tmpl) if $IS_ROOT;
        _as_pg("$PGBIN/initdb", '-D', $tmpl, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8',
            '--locale=C.UTF-8', '--no-sync', '>/dev/null')
            == 0 or die "initdb failed";
        open my $ok, '>', "$tmpl/PG_VERSION.ok" or die;
        close $ok;
    }
    close $lock;
    return $tmpl;
}

sub _as_pg {
    my @cmd = @_;
    my $redirect = '';
    $redirect = pop @cmd if $cmd[-1] =~ /^>/;
    my $line = join ' ', map { quotemeta } @cmd;
    # From "/": PostgreSQL's tools, run as postgres, complain about a working
    # directory that user cannot enter (a checkout under a 0700 home).
    $line = "cd / && runuser -u postgres -- $line" if $IS_ROOT;
    return system("$line $redirect");
}

sub start_pg {
    my ($self, %opts) = @_;
    my $pgdir = "$self->{dir}/pg";
    make_path($pgdir);
    system('cp', '-a', _pg_template(), "$pgdir/data") == 0 or die "copy template";
    unlink "$pgdir/data/PG_VERSION.ok";
    # listen => '127.0.0.1,ADDR' and hba => ['host all all NET trust', ...]:
    # extra addresses (t/worker_lost_host.t's veth pair).
    if ($opts{hba}) {
        open my $hba, '>>', "$pgdir/data/pg_hba.conf" or die "pg_hba.conf: $!";
        print $hba "$_\n" for @{$opts{hba}};
        close $hba;
    }
    $self->{pg_listen} = $opts{listen} if $opts{listen};
    system('chown', '-R', 'postgres:postgres', $pgdir) if $IS_ROOT;
    $self->{pg_port} = free_port();
    $self->{pg_dir} = $pgdir;
    $self->pg_ctl_start;
    system("$PGBIN/createdb", '-h', '127.0.0.1', '-p', $self->{pg_port}, '-U', 'postgres',
        'relyloop') == 0 or die "createdb failed";
    return $self;
}

sub pg_ctl_start {
    my ($self) = @_;
    my $d = $self->{pg_dir};
    my $listen = $self->{pg_listen} // '127.0.0.1';
    my $o = "-k $d -p $self->{pg_port} -c listen_addresses=$listen -c fsync=off "
          . "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200";
    _as_pg("$PGBIN/pg_ctl", '-D', "$d/data", '-l', "$d/server.log", '-w', '-t', '30',
        '-o', $o, 'start', '>/dev/null') == 0 or die "pg_ctl start failed";
    $self->{pg_running} = 1;
    return $self;
}

sub pg_ctl_stop {
    my ($self) = @_;
    return $self unless $self->{pg_running};
    _as_pg("$PGBIN/pg_ctl", '-D', "$self->{pg_dir}/data", '-m', 'fast', '-w', 'stop',
        '>/dev/null 2>&1');
    $self->{pg_running} = 0;
    return $self;
}

sub pg_port { $_[0]{pg_port} }

sub conninfo {
    my ($self) = @_;
    return "host=127.0.0.1 port=$self->{pg_port} user=postgres dbname=relyloop";
}

# psql -At: rows as arrays of fields ('|'-separated text). In list context the
# rows, in scalar context the first field of the first row.
sub psql {
    my ($self, $sql) = @_;
    my $out = $self->psql_raw($sql);
    my @rows = map { [split /\|/, $_, -1] } grep { length } split /\n/, $out;
    return wantarray ? @rows : (@rows ? $rows[0][0] : undef);
}

sub psql_raw {
    my ($self, $sql) = @_;
    my $file = "$self->{dir}/q-$$.sql";    # forked helpers query too
    open my $fh, '>', $file or die;
    print $fh $sql;
    close $fh;
    my $out = qx{psql -X -q -v ON_ERROR_STOP=1 -At -h 127.0.0.1 -p $self->{pg_port} -U postgres -d relyloop -f $file 2>&1};
    die "psql failed: $out\n$sql" if $? != 0;
    return $out;
}

sub db_kind { $_[0]{db_kind} }

# Loads RelyLoop's own schema at alembic revision 0023 (an upstream database).
sub load_upstream_schema {
    my ($self) = @_;
    my $fixture = "$ROOT/t/fixtures/relyloop-0023.sql";
    my $out = qx{psql -X -q -o /dev/null -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $self->{pg_port} -U postgres -d relyloop -f $fixture 2>&1};
    die "loading $fixture failed: $out" if $? != 0;
    return $self;
}

sub migrate {
    my ($self) = @_;
    die "RELYLOOP_DB_KIND must be own or upstream, not $self->{db_kind}\n"
        unless $self->{db_kind} =~ /^(own|upstream)$/;
    $self->load_upstream_schema if $self->{db_kind} eq 'upstream' && !$self->{upstream_loaded}++;
    my $cmd = "$self->{worker_bin} migrate --pg-conninfo " . quotemeta($self->conninfo)
        . " >>$self->{dir}/logs/migrate.log 2>&1";
    local %ENV = (%ENV, $self->_san_env('migrate'));
    system($cmd) == 0 or die "migrate failed: " . RelyLoop::Proc::slurp("$self->{dir}/logs/migrate.log");
    return $self;
}

# --- sanitizers ---------------------------------------------------------------

sub _san_env {
    my ($self, $name, %opts) = @_;
    return () unless $self->asan;
    my $leaks = $opts{leaks} // 1;
    return (
        ASAN_OPTIONS => "detect_leaks=$leaks:halt_on_error=1:abort_on_error=0:"
            . "log_path=$self->{dir}/logs/asan-$name",
        UBSAN_OPTIONS => "print_stacktrace=1:halt_on_error=1:"
            . "log_path=$self->{dir}/logs/ubsan-$name",
        LSAN_OPTIONS => "suppressions=$ROOT/t/lsan.supp:print_suppressions=0",
    );
}

# nginx itself is not instrumented: the sanitizer runtimes of the ASan module
# are preloaded, and leak checking is off (nginx frees its pools at exit only
# in part, by design).
sub _nginx_env {
    my ($self, $name) = @_;
    my %env = $self->_san_env($name, leaks => 0);
    if ($self->asan) {
        my $asan = qx{gcc -print-file-name=libasan.so};
        my $ubsan = qx{gcc -print-file-name=libubsan.so};
        chomp($asan, $ubsan);
        $env{LD_PRELOAD} = "$asan $ubsan";
    }
    return %env;
}

# --- the worker -------------------------------------------------------------

# start_worker(name => 'w1', test_pipeline => 1, args => [...], env => {...})
sub start_worker {
    my ($self, %opts) = @_;
    my $name = $opts{name} // 'worker';
    my $bin = $opts{test_pipeline} ? $self->{test_worker_bin} : $self->{worker_bin};
    my $socket = $opts{socket} // $self->worker_socket;
    my @args = (
        '--pg-conninfo', $self->conninfo,
        '--socket', $socket,
        '--secrets-dir', "$self->{dir}/secrets",
        '--clone-root', "$self->{dir}/clones",
        '--git-author-email', 'relyloop-bot@test.invalid',
        @{$opts{args} || []},
    );
    # The PR state reconciler is off unless a test asks for it (a flag wins):
    # a tick at a slot boundary would add GitHub requests other tests count.
    my %env = (RELYLOOP_PR_POLL_MINUTES => 0, $self->_san_env($name), %{$opts{env} || {}});
    my $log = "$self->{dir}/logs/$name.log";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $ENV{$_} = $env{$_} for keys %env;
        open STDOUT, '>>', $log or die;
        open STDERR, '>>', $log or die;
        # prefix => [...]: run it through a wrapper (ip netns exec NS).
        exec @{$opts{prefix} || []}, $bin, @args or die "exec $bin: $!";
    }
    $self->{workers}{$name} = {pid => $pid, log => $log, socket => $socket};
    unless ($opts{no_wait}) {
        my $up = wait_for { $self->worker_ping($socket) } 15;
        die "worker $name did not come up:\n" . RelyLoop::Proc::slurp($log) unless $up;
    }
    return $self;
}

sub worker_socket { "$_[0]{dir}/worker.sock" }
sub worker_bin { $_[1] ? $_[0]{test_worker_bin} : $_[0]{worker_bin} }
# exit status ($?) of a worker stopped with stop_worker, undef if it was killed
sub worker_exit_status {
    my ($self, $name) = @_;
    my $w = $self->{stopped_workers}{$name // 'worker'};
    return $w ? $w->{status} : undef;
}
sub worker_pid {
    my ($self, $name) = @_;
    my $w = $self->{workers}{$name // 'worker'};
    return $w ? $w->{pid} : undef;
}
sub worker_log { RelyLoop::Proc::slurp($_[0]{dir} . '/logs/' . ($_[1] // 'worker') . '.log') }

sub worker_ping {
    my ($self, $socket) = @_;
    my $r = $self->worker_request({op => 'ping'}, $socket);
    return $r && $r->{ok};
}

# One request line, one reply line over the worker socket.
sub worker_request {
    my ($self, $req, $socket) = @_;
    my $s = IO::Socket::UNIX->new(Peer => $socket // $self->worker_socket, Type => SOCK_STREAM)
        or return undef;
    socket_timeout($s, 30);
    print $s (ref $req ? json_encode($req) : $req) . "\n";
    my $line = <$s>;
    close $s;
    return undef unless defined $line;
    return json_decode($line);
}

# stop_worker(name, signal = TERM, timeout = 30 s): waits for the exit and
# records its status (worker_exit_status); kills it after the timeout.
sub stop_worker {
    my ($self, $name, $signal, $timeout) = @_;
    $name //= 'worker';
    my $w = delete $self->{workers}{$name} or return $self;
    $w->{status} = stop_pid($w->{pid}, $signal // 'TERM', $timeout // 30);
    $self->{stopped_workers}{$name} = $w;
    return $self;
}

# --- nginx ------------------------------------------------------------------

# start_nginx(environment => ..., cors => [...], http => 'extra', location => 'extra',
#             server => 'extra', workers => N, directives => {name => value},
#             log_level => 'info', user => 'www-data')
sub start_nginx {
    my ($self, %opts) = @_;
    my $n = "$self->{dir}/nginx";
    make_path("$n/conf", "$n/logs", "$n/tmp");
    # as in Debian's prefix (/usr/share/nginx): `load_module modules/...` of
    # the packaged modules-available snippets resolves under -p
    symlink('/usr/lib/nginx/modules', "$n/modules") unless -l "$n/modules";
    $self->{nginx_port} //= free_port();
    $self->{nginx_opts} = \%opts;
    $self->write_nginx_conf(%opts);
    my $conf = "$n/conf/nginx.conf";
    my %env = $self->_nginx_env('nginx');
    {
        local %ENV = (%ENV, %env);
        my $out = qx{nginx -t -p $n -c $conf -e $n/logs/error.log 2>&1};
        die "nginx -t failed:\n$out" if $? != 0;
    }
    my $pid = fork // die;
    if ($pid == 0) {
        $ENV{$_} = $env{$_} for keys %env;
        open STDOUT, '>>', "$n/logs/stdout.log";
        open STDERR, '>>', "$n/logs/stderr.log";
        exec 'nginx', '-p', $n, '-c', $conf, '-e', "$n/logs/error.log" or die;
    }
    $self->{nginx_pid} = $pid;
    my $up = wait_for {
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$self->{nginx_port}", Timeout => 1);
        $s ? 1 : 0;
    } 10;
    die "nginx did not come up: " . RelyLoop::Proc::slurp("$n/logs/error.log") unless $up;
    # the workers connect their pools asynchronously: wait until one answers
    wait_for { my $r = $self->http(GET => '/api/v1/health'); $r->{status} != 599 } 30;
    return $self;
}

sub write_nginx_conf {
    my ($self, %opts) = @_;
    my $n = "$self->{dir}/nginx";
    my $d = $self->{dir};
    my $env = $opts{environment} // 'development';
    my $workers = $opts{workers} // 1;
    # user => NAME: the worker processes' user (t/module_user.t); new(nginx_user => NAME) for all
    my $u = $opts{user} // $self->{nginx_user};
    my $user = $u ? "user $u;" : $IS_ROOT ? 'user root;' : '';
    my $load = $self->{load_module} // "load_module $self->{module};";
    my %dir = (
        relyloop_pg_conninfo => '"' . $self->conninfo . '"',
        relyloop_worker_socket => $opts{worker_socket} // $self->worker_socket,
        relyloop_secrets_dir => "$d/secrets",
        relyloop_environment => $env,
        relyloop_pg_timeout => '3s',
        relyloop_worker_timeout => '2s',
        %{$opts{directives} || {}},
    );
    my $directives = join '', map { defined $dir{$_} ? "    $_ $dir{$_};\n" : '' } sort keys %dir;
    my $cors = $opts{cors} ? '        relyloop_cors_origins ' . join(' ', @{$opts{cors}}) . ";" : '';
    my $conf = <<"EOF";
$load
daemon off;
master_process on;
worker_processes $workers;
$user
error_log $n/logs/error.log @{[ $opts{log_level} // 'info' ]};
pid $n/logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log @{[ ($opts{access_log} // 1) ? "$n/logs/access.log" : 'off' ]};
    client_body_temp_path $n/tmp/body;
    proxy_temp_path $n/tmp/proxy;
    fastcgi_temp_path $n/tmp/fastcgi;
    uwsgi_temp_path $n/tmp/uwsgi;
    scgi_temp_path $n/tmp/scgi;
$directives
@{[ $opts{http} // '' ]}
    server {
        listen 127.0.0.1:$self->{nginx_port}@{[ $workers > 1 ? ' reuseport' : '' ]};
$cors
        error_page 400 413 414 494 /.relyloop/error;
        location = /.relyloop/error {
            internal;
            relyloop_api;
        }
        location /api/ {
            relyloop_api;
@{[ $opts{location} // '' ]}
        }
@{[ $opts{server} // '' ]}
    }
}
EOF
    open my $fh, '>', "$n/conf/nginx.conf" or die;
    print $fh $conf;
    close $fh;
    return "$n/conf/nginx.conf";
}

# nginx -t on a configuration written like start_nginx's (with `conf` given,
# that text verbatim): (exit status, output).
sub nginx_t {
    my ($self, %opts) = @_;
    my $n = "$self->{dir}/nginx";
    make_path("$n/conf", "$n/logs", "$n/tmp");
    $self->{nginx_port} //= free_port();
    my $conf = "$n/conf/nginx-t.conf";
    if (defined $opts{conf}) {
        open my $fh, '>', $conf or die;
        print $fh $opts{conf};
        close $fh;
    } else {
        my $written = $self->write_nginx_conf(%opts);
        rename $written, $conf or die;
    }
    my %env = $self->_nginx_env('nginx-t');
    local %ENV = (%ENV, %env);
    my $out = qx{nginx -t -p $n -c $conf -e $n/logs/error-t.log 2>&1};
    return ($? >> 8, $out);
}

sub module_path { $_[0]{module} }

sub nginx_port { $_[0]{nginx_port} }
sub nginx_pid { $_[0]{nginx_pid} }
sub nginx_error_log { RelyLoop::Proc::slurp("$_[0]{dir}/nginx/logs/error.log") }

sub reload_nginx {
    my ($self, %opts) = @_;
    $self->write_nginx_conf(%{$self->{nginx_opts}}, %opts) if %opts;
    kill 'HUP', $self->{nginx_pid};
    return $self;
}

sub stop_nginx {
    my ($self, $signal) = @_;
    my $pid = delete $self->{nginx_pid} or return $self;
    stop_pid($pid, $signal // 'QUIT', 20);
    return $self;
}

# --- HTTP -------------------------------------------------------------------

sub ua {
    my ($self) = @_;
    # a fresh client per process: fork() must not share a keepalive socket
    if (!$self->{ua} || $self->{ua_pid} != $$) {
        $self->{ua} = HTTP::Tiny->new(keep_alive => 1, timeout => 30, max_redirect => 0);
        $self->{ua_pid} = $$;
    }
    return $self->{ua};
}

sub url { "http://127.0.0.1:$_[0]{nginx_port}$_[1]" }

# http(METHOD => '/path', json => {...} | body => 'raw', headers => {...})
# → {status, headers (lower-case names), body, json (decoded or undef)}
sub http {
    my ($self, $method, $path, %opts) = @_;
    my %h = %{$opts{headers} || {}};
    my $content = $opts{body};
    if (exists $opts{json}) {
        $content = json_encode($opts{json});
        $h{'Content-Type'} //= 'application/json';
    }
    my $res = $self->ua->request($method, $self->url($path),
        {headers => \%h, defined $content ? (content => $content) : ()});
    my %headers = map { lc($_) => $res->{headers}{$_} } keys %{$res->{headers} || {}};
    return {
        status => $res->{status},
        headers => \%headers,
        body => $res->{content},
        json => (defined $res->{content} && length $res->{content}
            ? json_decode($res->{content}) : undef),
    };
}

# A raw HTTP/1.1 exchange for requests HTTP::Tiny will not send (bad paths,
# huge headers): returns the status and the body.
sub raw_http {
    my ($self, $request) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$self->{nginx_port}", Timeout => 10)
        or die "connect: $!";
    socket_timeout($s, 60);
    print $s $request;
    local $/;
    my $resp = <$s> // '';
    close $s;
    my ($status) = $resp =~ m{^HTTP/1\.[01] (\d{3})};
    my ($body) = $resp =~ m{\r\n\r\n(.*)\z}s;
    return {status => $status // 0, body => $body, raw => $resp,
        json => defined $body && length $body ? json_decode($body) : undef};
}

# Runs $code in $n forked children at once; returns their results (each
# child's return value, JSON-encoded through a pipe) in order.
sub parallel {
    my ($self, $n, $code) = @_;
    my @kids;
    for my $i (0 .. $n - 1) {
        pipe(my $r, my $w) or die;
        my $pid = fork // die;
        if ($pid == 0) {
            close $r;
            delete $self->{ua};
            my $v = eval { $code->($i) };
            $v = {error => "$@"} if $@;
            print $w json_encode($v);
            close $w;
            POSIX::_exit(0);
        }
        close $w;
        push @kids, [$pid, $r];
    }
    # the children get {parallel_timeout} s (default 300) to answer, then are killed
    my $deadline = time + ($self->{parallel_timeout} // 300);
    my @out;
    for my $k (@kids) {
        my ($pid, $fh) = @$k;
        my ($data, $sel) = ('', IO::Select->new($fh));
        while (1) {
            my $left = $deadline - time;
            last if $left <= 0 || !$sel->can_read($left);
            my $n = sysread($fh, my $buf, 65536);
            last unless $n;
            $data .= $buf;
        }
        close $fh;
        if (!defined stop_pid($pid, undef, $deadline - time > 0 ? $deadline - time : 0.1)) {
            Test::More->builder->ok(0, "parallel: child $pid answered in time");
            $data = '';
        }
        push @out, json_decode(length $data ? $data : 'null');
    }
    return @out;
}

# --- secrets, files ---------------------------------------------------------

sub write_secret {
    my ($self, $name, $content) = @_;
    my $f = "$self->{dir}/secrets/$name";
    open my $fh, '>', $f or die "$f: $!";
    print $fh $content;
    close $fh;
    chmod 0600, $f;
    return $f;
}

sub slurp { RelyLoop::Proc::slurp($_[1]) }

# --- checks and cleanup -----------------------------------------------------

# What a sanitizer report looks like, wherever it was written.
my $SAN_REPORT = qr/ERROR: (?:Address|Leak|UndefinedBehavior|Thread|Memory)Sanitizer|(?:Address|UndefinedBehavior)Sanitizer:DEADLYSIGNAL|SUMMARY: (?:Address|Leak|UndefinedBehavior)Sanitizer|runtime error:/;

# The sanitizer reports of this test: every file in logs/ (the ASan/UBSan
# log_path files, the workers' and CLI runs' stderr) and nginx's logs.
sub sanitizer_reports {
    my ($self) = @_;
    my $d = $self->{dir};
    my @reports;
    if (opendir(my $dh, "$d/logs")) {
        for my $f (sort readdir $dh) {
            next if $f =~ /^\./ || !-f "$d/logs/$f";
            my $text = RelyLoop::Proc::slurp("$d/logs/$f");
            if ($f =~ /^(asan|ubsan)-/ || $text =~ $SAN_REPORT) {
                push @reports, "$f:\n" . substr($text, 0, 4000);
            }
        }
        closedir $dh;
    }
    if (opendir(my $dh, "$d/nginx/logs")) {
        for my $f (sort grep { /\.log\z/ && !/^access/ } readdir $dh) {
            my $text = RelyLoop::Proc::slurp("$d/nginx/logs/$f");
            push @reports, "nginx/logs/$f:\n" . substr($text, 0, 4000) if $text =~ $SAN_REPORT;
        }
        closedir $dh;
    }
    return @reports;
}

# Every log of this test: no [alert]/[emerg], no sanitizer report.
sub check_logs {
    my ($self) = @_;
    my $d = $self->{dir};
    my $nginx = RelyLoop::Proc::slurp("$d/nginx/logs/error.log") . RelyLoop::Proc::slurp("$d/nginx/logs/stderr.log");
    my @bad = grep { /\[(alert|emerg)\]/ } split /\n/, $nginx;
    ok(!@bad, 'no [alert] or [emerg] in the nginx error log')
        or diag(join "\n", @bad[0 .. ($#bad > 9 ? 9 : $#bad)]);
    my @reports = $self->sanitizer_reports;
    ok(!@reports, 'no sanitizer reports') or diag(join "\n", @reports);
    $self->{logs_checked} = 1;
}

# How long teardown waits for nginx (QUIT) and each worker (TERM) to exit
# by itself before it kills them.
sub _nginx_grace { $_[0]->asan ? 40 : 20 }
sub _worker_grace { $_[0]->asan ? 60 : 30 }

# stop_all: stops everything; the final teardown of the processes still
# alive is recorded in {teardown} ([ok, name, diag]...) for done() to assert:
# nginx exits on QUIT by itself, each live worker exits 0 on SIGTERM.
sub stop_all {
    my ($self) = @_;
    return if $self->{stopped} || $self->{owner_pid} != $$;
    $self->{stopped} = 1;
    my @checks;
    $self->{on_stop}->() if $self->{on_stop};
    if (my $pid = delete $self->{nginx_pid}) {
        my $r = _stop_checked($pid, 'QUIT', $self->_nginx_grace);
        if ($r->{before}) {
            # not live at teardown: only a crash is an error
            my $st = $r->{status};
            push @checks, [0, 'nginx did not crash', _status_text($st)]
                if WIFSIGNALED($st) && WTERMSIG($st) != 9;
        } elsif (!$r->{gone}) {
            push @checks, [!$r->{killed} && $r->{status} == 0,
                'nginx exited 0 on QUIT (graceful stop, no KILL needed)',
                $r->{killed} ? 'still running ' . $self->_nginx_grace . ' s after QUIT: killed'
                    : _status_text($r->{status})];
        }
    }
    for my $name (sort keys %{$self->{workers}}) {
        my $w = delete $self->{workers}{$name};
        my $r = _stop_checked($w->{pid}, 'TERM', $self->_worker_grace);
        $w->{status} = $r->{killed} ? undef : $r->{status};
        $self->{stopped_workers}{$name} = $w;
        next if $r->{gone};
        my $st = $r->{status};
        if ($r->{before}) {
            # not a live process at teardown: only a crash is an error
            # (kill -9 and exits with a status are the test's business)
            my $sig = WIFSIGNALED($st) ? WTERMSIG($st) : 0;
            push @checks, [0, "worker $name did not crash", _status_text($st)]
                if $sig && $sig != 9;
            next;
        }
        # a SIGKILL that the test sent (after its last look) is not ours to judge
        next if !$r->{killed} && WIFSIGNALED($st) && WTERMSIG($st) == 9;
        push @checks, [!$r->{killed} && $st == 0, "worker $name exited 0 on SIGTERM",
            $r->{killed} ? 'still running ' . $self->_worker_grace . ' s after SIGTERM: killed'
                : _status_text($st)];
    }
    $self->pg_ctl_stop;
    $self->{teardown} = \@checks;
}

# _stop_checked(pid, signal, grace): {before => 1, status} when it had
# exited already, {gone => 1} when it is not our child, else the signal is
# sent and {status} (its wait status) or {killed => 1} after GRACE seconds.
sub _stop_checked {
    my ($pid, $signal, $grace) = @_;
    my $r = waitpid($pid, WNOHANG);
    return {before => 1, status => $?} if $r == $pid;
    return {gone => 1} if $r < 0;
    kill $signal, $pid;
    my $status = stop_pid($pid, undef, $grace);
    return defined $status ? {status => $status} : {killed => 1};
}

sub _status_text {
    my ($st) = @_;
    return 'no status' unless defined $st;
    return WIFSIGNALED($st) ? 'killed by signal ' . WTERMSIG($st) : 'exit status ' . ($st >> 8);
}

sub _teardown_failures {
    my ($self) = @_;
    return grep { !$_->[0] } @{$self->{teardown} || []};
}

sub done {
    my ($self) = @_;
    $self->stop_all;
    for my $c (@{$self->{teardown} || []}) {
        ok($c->[0], "teardown: $c->[1]") or diag($c->[2]);
    }
    $self->{teardown_reported} = 1;
    $self->check_logs;
    done_testing();
}

sub DESTROY {}

END {
    my $rc = $?;
    for my $t (@INSTANCES) {
        next if $t->{owner_pid} != $$;
        $t->stop_all;
        # a test file that ended without done(): its teardown and sanitizer
        # reports still decide (the bench scripts print numbers only)
        my $judge = !$t->{aborted} && $0 =~ /\.t\z/;
        if ($judge && !$t->{teardown_reported}) {
            my @bad = $t->_teardown_failures;
            diag("teardown: $_->[1]: NOT OK ($_->[2])") for @bad;
            if (@bad) {
                $rc ||= 1;
                Test::More->builder->is_passing(0);
            }
        }
        if ($judge && !$t->{logs_checked}) {
            my @reports = $t->sanitizer_reports;
            if (@reports) {
                diag("sanitizer reports:\n" . join("\n", @reports));
                $rc ||= 1;
                Test::More->builder->is_passing(0);
            }
        }
        if ($ENV{RELYLOOP_KEEP} || (Test::More->builder->is_passing == 0 && $ENV{RELYLOOP_KEEP_FAILED})) {
            diag("kept $t->{dir}");
        } else {
            remove_tree($t->{dir});
        }
    }
    $? = $rc;
}

