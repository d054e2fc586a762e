package RelyLoop::TcpProxy;

# A loopback TCP forwarder the test can cut: a worker connects to PostgreSQL
# through it, and cut() makes PostgreSQL unreachable for that worker only
# (every forwarded connection closed, new ones refused) until resume().
#
#   my $px = RelyLoop::TcpProxy->start(target_port => $t->pg_port);
#   my $conninfo = "host=127.0.0.1 port=" . $px->port . " user=postgres dbname=relyloop";
#   $px->cut; ...; $px->resume;

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);

use RelyLoop::Proc qw(stop_pid);

sub start {
    my ($class, %o) = @_;
    my $self = bless {target => $o{target_port} // die('target_port required'),
        host => $o{target_host} // '127.0.0.1', owner_pid => $$}, $class;
    $self->{port} = $o{port} // do {
        my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0,
            ReuseAddr => 1) or die "proxy port: $!";
        my $p = $s->sockport;
        close $s;
        $p;
    };
    $self->resume;
    return $self;
}

sub port { $_[0]{port} }

sub resume {
    my ($self) = @_;
    return $self if $self->{pid};
    my $l = IO::Socket::INET->new(Listen => 64, LocalAddr => '127.0.0.1',
        LocalPort => $self->{port}, ReuseAddr => 1) or die "proxy listen $self->{port}: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $SIG{TERM} = sub { POSIX::_exit(0) };
        _serve($l, $self->{host}, $self->{target});
        POSIX::_exit(0);
    }
    close $l;
    $self->{pid} = $pid;
    return $self;
}

# Closes every forwarded connection and stops listening.
sub cut {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return $self;
    stop_pid($pid, 'KILL', 5);
    return $self;
}

sub _serve {
    my ($l, $host, $port) = @_;
    my $sel = IO::Select->new($l);
    my %peer;
    while (1) {
        for my $s ($sel->can_read) {
            if ($s == $l) {
                my $c = $l->accept or next;
                my $u = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port) or do {
                    close $c;
                    next;
                };
                $peer{$c} = $u;
                $peer{$u} = $c;
                $sel->add($c, $u);
                next;
            }
            my $other = $peer{$s} or next;
            my $n = sysread($s, my $buf, 65536);
            if (!$n) {
                $sel->remove($s, $other);
                delete @peer{$s, $other};
                close $s;
                close $other;
                next;
            }
            my $off = 0;
            while ($off < $n) {
                my $w = syswrite($other, $buf, $n - $off, $off);
                last unless defined $w;
                $off += $w;
            }
        }
    }
}

sub DESTROY {
    my ($self) = @_;
    $self->cut if $self->{owner_pid} == $$;
}

1;
