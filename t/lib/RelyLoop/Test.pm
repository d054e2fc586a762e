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
#   $t->done;    # checks logs for [alert]/[emerg]/sanitizer reports, then done_testing
#
# Binaries come from the environment set by build.sh (RELYLOOP_MODULE,
# RELYLOOP_WORKER, RELYLOOP_TEST_WORKER, RELYLOOP_VARIANT=release|asan);
# without it, from build/.

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter qw(import);
use Fcntl qw(:flock);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use IO::Socket::UNIX;
use JSON::PP;
use POSIX qw(:sys_wait_h);
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

sub new {
    my ($class, %opts) = @_;
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
        %opts,
    }, $class;
    make_path("$dir/logs", "$dir/secrets", "$dir/clones");
    # paths from the environment may be relative to where prove started
    for my $k (qw(module worker_bin test_worker_bin)) {
        $self->{$k} = abs_path($self->{$k}) // $self->{$k} if -e $self->{$k};
    }
    push @INSTANCES, $self;
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

sub wait_for(&;$) {
    my ($cond, $timeout) = @_;
    my $deadline = time + ($timeout // 10);
    while (time < $deadline) {
        my $v = $cond->();
        return $v if $v;
        sleep 0.05;
    }
    return $cond->();
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
    $line = "runuser -u postgres -- $line" if $IS_ROOT;
    return system("$line $redirect");
}

sub start_pg {
    my ($self, %opts) = @_;
    my $pgdir = "$self->{dir}/pg";
    make_path($pgdir);
    system('cp', '-a', _pg_template(), "$pgdir/data") == 0 or die "copy template";
    unlink "$pgdir/data/PG_VERSION.ok";
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
    my $o = "-k $d -p $self->{pg_port} -c listen_addresses=127.0.0.1 -c fsync=off "
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
    my $file = "$self->{dir}/q.sql";
    open my $fh, '>', $file or die;
    print $fh $sql;
    close $fh;
    my $out = qx{psql -X -q -v ON_ERROR_STOP=1 -At -h 127.0.0.1 -p $self->{pg_port} -U postgres -d relyloop -f $file 2>&1};
    die "psql failed: $out\n$sql" if $? != 0;
    return $out;
}

sub migrate {
    my ($self) = @_;
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
    my %env = ($self->_san_env($name), %{$opts{env} || {}});
    my $log = "$self->{dir}/logs/$name.log";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $ENV{$_} = $env{$_} for keys %env;
        open STDOUT, '>>', $log or die;
        open STDERR, '>>', $log or die;
        exec $bin, @args or die "exec $bin: $!";
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
#             log_level => 'info')
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
    wait_for { my $r = $self->http(GET => '/api/v1/health'); $r->{status} != 599 } 5;
    return $self;
}

sub write_nginx_conf {
    my ($self, %opts) = @_;
    my $n = "$self->{dir}/nginx";
    my $d = $self->{dir};
    my $env = $opts{environment} // 'development';
    my $workers = $opts{workers} // 1;
    my $user = $self->{nginx_user} ? "user $self->{nginx_user};" : $IS_ROOT ? 'user root;' : '';
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
    my @out;
    for my $k (@kids) {
        my $fh = $k->[1];
        local $/;
        my $data = <$fh>;
        close $fh;
        waitpid($k->[0], 0);
        push @out, json_decode($data // 'null');
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

# Every log of this test: no [alert]/[emerg], no sanitizer report.
sub check_logs {
    my ($self) = @_;
    my $d = $self->{dir};
    my $nginx = RelyLoop::Proc::slurp("$d/nginx/logs/error.log") . RelyLoop::Proc::slurp("$d/nginx/logs/stderr.log");
    my @bad = grep { /\[(alert|emerg)\]/ } split /\n/, $nginx;
    ok(!@bad, 'no [alert] or [emerg] in the nginx error log')
        or diag(join "\n", @bad[0 .. ($#bad > 9 ? 9 : $#bad)]);
    my @reports;
    opendir(my $dh, "$d/logs") or die;
    for my $f (sort readdir $dh) {
        next if $f =~ /^\./;
        my $text = RelyLoop::Proc::slurp("$d/logs/$f");
        if ($f =~ /^(asan|ubsan)-/ || $text =~ /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/) {
            push @reports, "$f:\n" . substr($text, 0, 4000);
        }
    }
    closedir $dh;
    if ($nginx =~ /ERROR: AddressSanitizer|runtime error:/) {
        push @reports, "nginx:\n" . substr($nginx, 0, 4000);
    }
    ok(!@reports, 'no sanitizer reports') or diag(join "\n", @reports);
}

sub stop_all {
    my ($self) = @_;
    return if $self->{stopped} || $self->{owner_pid} != $$;
    $self->{stopped} = 1;
    $self->{on_stop}->() if $self->{on_stop};
    $self->stop_nginx('QUIT');
    $self->stop_worker($_) for keys %{$self->{workers}};
    $self->pg_ctl_stop;
}

sub done {
    my ($self) = @_;
    $self->stop_all;
    $self->check_logs;
    done_testing();
}

sub DESTROY {}

END {
    my $rc = $?;
    for my $t (@INSTANCES) {
        next if $t->{owner_pid} != $$;
        $t->stop_all;
        if ($ENV{RELYLOOP_KEEP} || (Test::More->builder->is_passing == 0 && $ENV{RELYLOOP_KEEP_FAILED})) {
            diag("kept $t->{dir}");
        } else {
            remove_tree($t->{dir});
        }
    }
    $? = $rc;
}

1;
