package RelyLoop::BuildSh;

# `./build.sh up` / `./build.sh demo` as a user runs them, for t/build_*.t:
# from a copy of the checkout (build.sh, t/lib, t/tools) inside a 0700
# directory (a root user's home), on spare ports, with --no-build and
# RELYLOOP_BUILD_DIR naming links to the binaries under test. `up` loads the
# module into a plain nginx, so these tests are skipped in the asan pass (the
# release pass runs the same script with the release binaries).
#
#   my $b = RelyLoop::BuildSh->new(timeout => 300);   # hard timeout of the file
#   $b->start('up', env => {...});         # ./build.sh up --no-build, in the background
#   $b->wait_line(qr/^relyloop-pr ready: /m, 120) or die;
#   my ($status, $out) = $b->run_once('up');   # a second one, to the end
#   my $st = $b->stop;                     # SIGTERM, the exit status
#   $b->output;                            # everything it printed (stdout + stderr)

use strict;
use warnings;

use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use POSIX qw(setsid);
use Test::More;
use Time::HiRes qw(sleep time);

use RelyLoop::Proc qw(slurp stop_pid);
use RelyLoop::Test;

my @LIVE;

sub new {
    my ($class, %o) = @_;
    plan skip_all => 'build.sh runs the release binaries; covered by the release pass'
        if ($ENV{RELYLOOP_VARIANT} // 'release') eq 'asan';
    my $t = RelyLoop::Test->new;
    my $root = $t->root;
    my ($worker, $module) = ($t->{worker_bin}, $t->{module});
    plan skip_all => "no build ($worker)" unless -x $worker && -f $module;

    my $home = $t->dir . '/home';
    my $co = "$home/relyloop";
    make_path("$co/t", $t->dir . '/build');
    chmod 0700, $home;
    system('cp', '-a', "$root/build.sh", $co) == 0 or die 'copy build.sh';
    system('cp', '-a', "$root/t/lib", "$root/t/tools", "$co/t/") == 0 or die 'copy t/';
    symlink($worker, $t->dir . '/build/relyloop-worker') or die "symlink: $!";
    symlink($module, $t->dir . '/build/ngx_http_relyloop_module.so') or die "symlink: $!";

    my %ports = map { $_ => RelyLoop::Test::free_port() } qw(port pg git github);
    my $self = bless {t => $t, co => $co, home => $home, ports => \%ports, n => 0}, $class;
    $self->{env} = {
        RELYLOOP_BUILD_DIR => $t->dir . '/build',
        RELYLOOP_PORT => $ports{port},
        RELYLOOP_PG_PORT => $ports{pg},
        RELYLOOP_DEMO_GIT_PORT => $ports{git},
        RELYLOOP_DEMO_GITHUB_PORT => $ports{github},
    };
    push @LIVE, $self;
    my $prev = $t->{on_stop};
    $t->{on_stop} = sub { $prev->() if $prev; $self->cleanup };
    if (my $secs = $o{timeout}) {
        $SIG{ALRM} = sub {
            diag("hard timeout ($secs s); output so far:\n" . $self->output);
            $self->cleanup;
            fail('hard timeout');
            done_testing();
            exit 1;
        };
        alarm $secs;
    }
    return $self;
}

sub t { $_[0]{t} }
sub checkout { $_[0]{co} }
sub home { $_[0]{home} }
sub port { $_[0]{ports}{$_[1] // 'port'} }
sub url { "http://127.0.0.1:$_[0]{ports}{port}$_[1]" }

sub _child {
    my ($self, $log, $env, @args) = @_;
    setsid();
    chdir $self->{co} or POSIX::_exit(126);
    delete $ENV{$_} for grep { /^RELYLOOP_(GITHUB|ENVIRONMENT|DRY_RUN|BASE_URL)/ } keys %ENV;
    my %env = (%{$self->{env}}, %{$env || {}});
    $ENV{$_} = $env{$_} for keys %env;
    open STDIN, '<', '/dev/null';
    open STDOUT, '>>', $log or POSIX::_exit(126);
    open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
    exec './build.sh', @args or POSIX::_exit(127);
}

# start(COMMAND, env => {...}): ./build.sh COMMAND --no-build in the
# background; its output goes to a new log (output() reads it).
sub start {
    my ($self, $cmd, %o) = @_;
    die 'already running' if $self->{pid};
    $self->{log} = $self->{t}->dir . '/build-sh-' . ++$self->{n} . '.log';
    my $pid = fork // die "fork: $!";
    $self->_child($self->{log}, $o{env}, $cmd, '--no-build') if $pid == 0;
    $self->{pid} = $pid;
    return $self;
}

sub output { slurp($_[0]{log} // '') }

# wait_line(qr/.../, seconds): the first match in the output (its capture
# groups in list context), or false when the process ended or time ran out.
sub wait_line {
    my ($self, $re, $timeout) = @_;
    my $deadline = time + $timeout;
    while (1) {
        my @m = $self->output =~ $re;
        return wantarray ? @m : 1 if @m;
        return if time > $deadline;
        return if waitpid($self->{pid}, POSIX::WNOHANG()) == $self->{pid}
            and do { $self->{status} = $?; delete $self->{pid}; 1 };
        sleep 0.1;
    }
}

# run_once(COMMAND): a second ./build.sh COMMAND --no-build to its end:
# (exit status, output).
sub run_once {
    my ($self, $cmd) = @_;
    my $log = $self->{t}->dir . '/build-sh-once-' . ++$self->{n} . '.log';
    my $pid = fork // die "fork: $!";
    $self->_child($log, undef, $cmd, '--no-build') if $pid == 0;
    my $st = stop_pid($pid, undef, 120);
    return ($st, slurp($log));
}

# stop(): SIGTERM as a service manager sends it; the exit status (undef when
# it had to be killed).
sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid};
    return $self->{status} unless $pid;
    my $st = stop_pid($pid, 'TERM', 90);
    kill 'KILL', -$pid;    # nothing of its process group may outlive it
    return $st;
}

sub listening {
    my ($self, $which) = @_;
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $self->port($which), Timeout => 2)
        ? 1 : 0;
}

# The PostgreSQL data directory `up` used (through .run/pg, a link when the
# checkout is out of the postgres user's reach).
sub pgdata {
    my ($self) = @_;
    my $l = "$self->{co}/.run/pg";
    return -l $l ? readlink($l) : $l;
}

sub cleanup {
    my ($self) = @_;
    return if $self->{cleaned}++;
    $self->stop;
    my $pg = $self->pgdata;
    if (-f "$pg/data/postmaster.pid") {
        system("cd / && runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D '$pg/data' "
            . '-m immediate stop >/dev/null 2>&1');
    }
    remove_tree($pg) if $pg =~ m{^/var/tmp/relyloop-pg-[0-9a-f]+$};
}

END { $_->cleanup for @LIVE }

1;
