package RelyLoop::WorkerTest;

# Helpers for the worker's integration tests (t/worker_*.t), on top of the
# shared harness RelyLoop::Test: seed rows with SQL, script the test pipeline
# of relyloop-test-worker through its control directory, read its calls.log,
# talk to the socket over a persistent connection, scan the JSON event log.
#
#   my $t = RelyLoop::Test->new;
#   $t->start_pg->migrate;
#   my $w = RelyLoop::WorkerTest->new($t);
#   $w->start('w1', args => ['--threads', 2]);
#   my $p = $w->proposal($w->cluster($w->repo));
#   $w->script($p, 'block');
#   my $r = $w->enqueue($p);            # {ok, job_id, deduplicated}
#   $w->wait_job($r->{job_id}, 'running');

use strict;
use warnings;

use Errno qw(EAGAIN EINTR EWOULDBLOCK);
use File::Path qw(make_path);
use IO::Select;
use IO::Socket::UNIX;
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Socket qw(SOCK_STREAM);
use Test::More;
use Time::HiRes qw(sleep time);

use RelyLoop::Test;

my $JSON = JSON::PP->new->canonical->allow_nonref;

sub new {
    my ($class, $t) = @_;
    my $self = bless {t => $t, ctl => $t->dir . '/ctl', seq => 0}, $class;
    make_path($self->{ctl});
    return $self;
}

sub t { $_[0]{t} }
sub ctl { $_[0]{ctl} }

# --- processes ----------------------------------------------------------------

sub san_env {
    my ($self, $name) = @_;
    return $self->{t}->_san_env($name);
}

sub socket_of {
    my ($self, $name) = @_;
    return $self->{t}->dir . "/$name.sock";
}

# start(name, args => [...], env => {...}, no_wait => 1): relyloop-test-worker
# with the control directory, its own socket, and short test-friendly timings
# unless args override them.
sub start {
    my ($self, $name, %opts) = @_;
    $self->{t}->start_worker(
        name => $name,
        test_pipeline => 1,
        socket => $opts{socket} // $self->socket_of($name),
        args => ['--lease-ttl', 3, '--lock-retry-delay', 1, '--shutdown-grace', 2,
            '--client-idle-timeout', 2, @{$opts{args} || []}],
        env => {$self->san_env($name), RELYLOOP_TEST_PIPELINE_DIR => $self->{ctl},
            %{$opts{env} || {}}},
        no_wait => $opts{no_wait},
        ($opts{prefix} ? (prefix => $opts{prefix}) : ()),
    );
    return $self;
}

sub pid { $_[0]{t}->worker_pid($_[1]) }

# Signals the worker and waits for it; returns its wait status ($?), or undef
# when it did not exit within $timeout seconds (then it is killed).
sub stop {
    my ($self, $name, $signal, $timeout) = @_;
    return undef unless $self->{t}->worker_pid($name);
    $self->{t}->stop_worker($name, $signal, $timeout);
    return $self->{t}->worker_exit_status($name);
}

# Runs `relyloop-worker ARGS` (the real binary) to completion:
# (exit code, stdout+stderr).
sub run_cli {
    my ($self, @args) = @_;
    my $t = $self->{t};
    my $bin = $t->worker_bin;
    my $n = ++$self->{seq} . "-$$";
    my $out = $t->dir . "/logs/cli-$n.log";
    my %env = $self->san_env("cli-$n");
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $ENV{$_} = $env{$_} for keys %env;
        delete $ENV{$_} for grep { /^RELYLOOP_/ && !/^RELYLOOP_(VARIANT|MODULE|WORKER|TEST_WORKER)$/ } keys %ENV;
        open STDOUT, '>', $out or die;
        open STDERR, '>&', \*STDOUT or die;
        exec $bin, @args or POSIX::_exit(127);
    }
    waitpid($pid, 0);
    my $rc = $? >> 8;
    return ($rc, RelyLoop::Test->slurp($out));
}

# --- rows -----------------------------------------------------------------------

sub uuid { scalar $_[0]{t}->psql('SELECT gen_random_uuid()') }

sub repo {
    my ($self) = @_;
    my $id = $self->uuid;
    my $n = ++$self->{seq};
    $self->{t}->psql(qq{INSERT INTO config_repos (id, name, provider, repo_url, auth_ref)
        VALUES ('$id', 'repo-$n-' || substr('$id', 1, 8), 'github',
                'https://github.com/test/repo-$n', 'pat-$n')});
    return $id;
}

sub cluster {
    my ($self, $repo_id) = @_;
    my $id = $self->uuid;
    my $repo = defined $repo_id ? "'$repo_id'" : 'NULL';
    $self->{t}->psql(qq{INSERT INTO clusters (id, name, engine_type, environment, base_url,
            auth_kind, credentials_ref, config_repo_id, config_path)
        VALUES ('$id', 'cluster-' || '$id', 'elasticsearch', 'dev', 'http://127.0.0.1:9',
                'es_basic', 'es', $repo, 'search')});
    return $id;
}

sub template {
    my ($self) = @_;
    return $self->{template} //= do {
        my $id = $self->uuid;
        $self->{t}->psql(qq{INSERT INTO query_templates (id, name, engine_type, body,
                declared_params)
            VALUES ('$id', 'products', 'elasticsearch', '{}', '{"title.boost":"float"}')});
        $id;
    };
}

sub proposal {
    my ($self, $cluster_id, %opts) = @_;
    my $id = $self->uuid;
    my $tmpl = $self->template;
    my $status = $opts{status} // 'pending';
    $self->{t}->psql(qq{INSERT INTO proposals (id, cluster_id, template_id, config_diff, status)
        VALUES ('$id', '$cluster_id', '$tmpl', '{"title.boost":{"from":1.0,"to":2.5}}',
                '$status')});
    return $id;
}

sub job {
    my ($self, $job_id) = @_;
    my @rows = $self->{t}->psql(qq{SELECT id, proposal_id, state, attempts, lock_waits,
            coalesce(last_event, ''), coalesce(last_error, ''), coalesce(worker_id, '')
        FROM pr_jobs WHERE id = '$job_id'});
    return undef unless @rows;
    my %j;
    @j{qw(id proposal_id state attempts lock_waits last_event last_error worker_id)} = @{$rows[0]};
    return \%j;
}

sub jobs_of {
    my ($self, $proposal_id) = @_;
    return map { $_->[0] } $self->{t}->psql(
        "SELECT id FROM pr_jobs WHERE proposal_id = '$proposal_id' ORDER BY created_at, id");
}

sub proposal_row {
    my ($self, $id) = @_;
    my @rows = $self->{t}->psql(qq{SELECT status, coalesce(pr_url, ''),
            coalesce(pr_open_error, ''), coalesce(pr_state, '')
        FROM proposals WHERE id = '$id'});
    my %p;
    @p{qw(status pr_url pr_open_error pr_state)} = @{$rows[0] || []};
    return \%p;
}

# Waits until the job is in one of the states (a regex alternative list);
# returns the row. A job that does not get there within $timeout seconds
# fails the test.
sub wait_job {
    my ($self, $job_id, $states, $timeout) = @_;
    $timeout //= 20;
    my $row;
    my $ok = RelyLoop::Test::wait_for(sub {
        $row = $self->job($job_id);
        $row && $row->{state} =~ /^(?:$states)$/;
    }, $timeout);
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ok(0, "job $job_id reached state $states within $timeout s")
        or diag('its row: ' . $JSON->encode($row)) unless $ok;
    return $row;
}

# --- the test pipeline's control directory ------------------------------------

# script($proposal_id | 'default', 'succeed' | 'fail CODE msg' | 'block' | 'sleep MS' ...)
sub script {
    my ($self, $who, $behaviour) = @_;
    my $f = "$self->{ctl}/$who";
    open my $fh, '>', "$f.tmp" or die "$f: $!";
    print $fh "$behaviour\n";
    close $fh;
    rename "$f.tmp", $f or die "rename: $!";
}

sub release {
    my ($self, $proposal_id) = @_;
    open my $fh, '>', "$self->{ctl}/release-$proposal_id" or die;
    close $fh;
}

# calls.log as a list of hashes.
sub calls {
    my ($self) = @_;
    my $text = RelyLoop::Test->slurp("$self->{ctl}/calls.log");
    return map { $JSON->decode($_) } grep { length } split /\n/, $text;
}

# One entry per pipeline run: {job_id, proposal_id, config_repo_id, pid,
# attempt, start_ms, end_ms (undef while running or if the process died),
# outcome, advisory_locks}.
sub runs {
    my ($self) = @_;
    my (%open, @order);
    for my $c ($self->calls) {
        # A released job can run again in the same process with the same
        # attempt number: an end belongs to the latest open start.
        my $k = join '/', $c->{job_id}, $c->{pid};
        if ($c->{phase} eq 'start') {
            my $run = {%$c};
            push @order, $run;
            push @{$open{$k}}, $run;
        } elsif (my $run = pop @{$open{$k} || []}) {
            $run->{end_ms} = $c->{end_ms};
            $run->{outcome} = $c->{outcome};
        }
    }
    return @order;
}

sub runs_of {
    my ($self, $proposal_id) = @_;
    return grep { $_->{proposal_id} eq $proposal_id } $self->runs;
}

# Two runs overlap in time (an unfinished run counts until $open_end_ms).
sub overlap {
    my ($a, $b, $open_end_ms) = @_;
    my $ae = $a->{end_ms} // $open_end_ms // 9e15;
    my $be = $b->{end_ms} // $open_end_ms // 9e15;
    return $a->{start_ms} < $be && $b->{start_ms} < $ae;
}

# --- the event log ----------------------------------------------------------------

# The worker's JSON events (all lines must parse), optionally only `event`.
sub events {
    my ($self, $name, $event) = @_;
    my @ev;
    for my $line (split /\n/, $self->{t}->worker_log($name)) {
        next unless $line =~ /^\{/;
        my $e = eval { $JSON->decode($line) } or next;
        push @ev, $e if !defined $event || $e->{event} eq $event;
    }
    return @ev;
}

# Lines of the worker's stderr that are not JSON objects (docs/worker.md, Log: none).
sub non_json_lines {
    my ($self, $name) = @_;
    return grep { length && !(eval { ref $JSON->decode($_) eq 'HASH' }) }
        split /\n/, $self->{t}->worker_log($name);
}

# --- the socket ---------------------------------------------------------------------

sub enqueue {
    my ($self, $proposal_id, $name) = @_;
    return $self->{t}->worker_request(
        {op => 'enqueue', proposal_id => $proposal_id, request_id => "t-$proposal_id"},
        $self->socket_of($name // 'w1'));
}

sub ping {
    my ($self, $name) = @_;
    return $self->{t}->worker_request({op => 'ping'}, $self->socket_of($name // 'w1'));
}

sub client {
    my ($self, $name) = @_;
    return RelyLoop::WorkerTest::Client->new($self->socket_of($name // 'w1'));
}

package RelyLoop::WorkerTest::Client;

# A persistent connection: several requests, partial writes, raw bytes.

use Errno qw(EAGAIN EINTR EWOULDBLOCK);
use IO::Select;
use IO::Socket::UNIX;
use JSON::PP;
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(time);

sub new {
    my ($class, $path) = @_;
    my $s = IO::Socket::UNIX->new(Peer => $path, Type => SOCK_STREAM) or return undef;
    $s->autoflush(1);
    return bless {s => $s, buf => ''}, $class;
}

# Writes raw bytes; returns the number written (stops at the first error).
sub send_raw {
    my ($self, $bytes) = @_;
    local $SIG{PIPE} = 'IGNORE';
    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite($self->{s}, $bytes, 65536, $off);
        if (!defined $n) {
            next if $! == EINTR;
            last;
        }
        $off += $n;
    }
    return $off;
}

sub send {
    my ($self, $req) = @_;
    return $self->send_raw((ref $req ? JSON::PP->new->canonical->encode($req) : $req) . "\n");
}

# The next reply line (undef on EOF or after $timeout seconds; then
# ->{eof}/->{timeout} tell which).
sub read_line {
    my ($self, $timeout) = @_;
    my $deadline = time + ($timeout // 10);
    my $sel = IO::Select->new($self->{s});
    $self->{eof} = $self->{timeout} = 0;
    while (1) {
        if ((my $i = index($self->{buf}, "\n")) >= 0) {
            my $line = substr($self->{buf}, 0, $i + 1, '');
            chomp $line;
            return $line;
        }
        my $left = $deadline - time;
        if ($left <= 0) {
            $self->{timeout} = 1;
            return undef;
        }
        next unless $sel->can_read($left);
        my $n = sysread($self->{s}, my $chunk, 65536);
        if (!defined $n) {
            next if $! == EINTR || $! == EAGAIN;
            $self->{eof} = 1;
            return undef;
        }
        if ($n == 0) {
            $self->{eof} = 1;
            return undef;
        }
        $self->{buf} .= $chunk;
    }
}

sub reply {
    my ($self, $timeout) = @_;
    my $line = $self->read_line($timeout);
    return undef unless defined $line;
    return eval { JSON::PP->new->decode($line) } // {raw => $line};
}

sub request {
    my ($self, $req, $timeout) = @_;
    $self->send($req);
    return $self->reply($timeout);
}

# True when the server closed the connection within $timeout seconds.
sub closed_within {
    my ($self, $timeout) = @_;
    my $line = $self->read_line($timeout);
    return !defined $line && $self->{eof};
}

sub shutdown_write { shutdown($_[0]{s}, 1) }
sub close { close($_[0]{s}) }

1;
