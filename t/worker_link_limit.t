#!/usr/bin/env perl
# The nginx side of the worker line limit (docs/worker.md, "The socket
# protocol"): a reply line of exactly rl_worker_line_max() bytes (64 KiB, the
# number the worker's framer uses) reaches the core; one byte more is refused
# as too long. A scripted stand-in answers on the worker socket with a line
# of the length asked for, so the boundary can be hit exactly; the core reads
# the reply of GET /api/v1/health (a ping reply needs only "ok": true).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Socket::UNIX;
use POSIX qw(_exit);
use Socket qw(SOCK_STREAM);
use Test::More;

use RelyLoop::Test;

RelyLoop::Test->timeout(180);

use constant LINE_MAX => 65536;

my $t = RelyLoop::Test->new;
$t->start_pg->migrate;
my $dir = $t->dir;
my $sock = "$dir/fake-worker.sock";
my $reply_file = "$dir/fake-worker.reply";

# The reply of every connection: the file's content (re-read each time),
# then a newline. Requests are counted in a file too, one line each.
sub set_reply {
    my ($line) = @_;
    open my $fh, '>', "$reply_file.tmp" or die "$reply_file: $!";
    print $fh $line;
    close $fh;
    rename "$reply_file.tmp", $reply_file or die "rename: $!";
}

sub ok_reply_of_length {
    my ($n) = @_;
    my $head = '{"ok":true,"version":"t","queued":0,"running":0,"pad":"';
    my $tail = '"}';
    my $line = $head . ('x' x ($n - length($head) - length($tail))) . $tail;
    die "length" unless length($line) == $n;
    return $line;
}

set_reply('{"ok":true,"version":"t","queued":0,"running":0}');
my $listener = IO::Socket::UNIX->new(Local => $sock, Type => SOCK_STREAM, Listen => 16)
    or die "listen $sock: $!";
my $child = fork // die "fork: $!";
if ($child == 0) {
    while (my $c = $listener->accept) {
        my $req = <$c>;
        if (defined $req) {
            open my $log, '>>', "$dir/fake-worker.requests" or _exit(1);
            print $log $req;
            close $log;
            open my $fh, '<', $reply_file or _exit(1);
            local $/;
            my $line = <$fh>;
            close $fh;
            print $c $line, "\n";
        }
        close $c;
    }
    _exit(0);
}
close $listener;
$t->{on_stop} = sub { kill 'KILL', $child; waitpid $child, 0; };

$t->start_nginx(worker_socket => $sock);

sub requests_seen {
    open my $fh, '<', "$dir/fake-worker.requests" or return 0;
    my @l = <$fh>;
    return scalar @l;
}

sub health_with_reply_of {
    my ($n) = @_;
    set_reply(ok_reply_of_length($n));
    my $before = requests_seen();
    my $r = $t->http(GET => '/api/v1/health');
    is(requests_seen() - $before, 1, "$n-byte reply: the module asked the worker once");
    return $r;
}

is(
    do { open my $fh, '<', "$dir/fake-worker.requests" or die; scalar <$fh> },
    qq({"op":"ping"}\n),
    'the module pings with the protocol\'s line'
);

# Around the first buffer sizes, and at the limit itself.
for my $n (1023, 1024, 1025, 2048, LINE_MAX - 1, LINE_MAX) {
    my $r = health_with_reply_of($n);
    is($r->{status}, 200, "a $n-byte reply line is read whole: health 200");
    is($r->{json}{worker}, 'ok', "$n bytes: worker ok");
}

my $too_long_before = () = $t->nginx_error_log =~ /the worker's reply is too long/g;
for my $n (LINE_MAX + 1, LINE_MAX + 2, 2 * LINE_MAX) {
    my $r = health_with_reply_of($n);
    is($r->{status}, 503, "a $n-byte reply line is refused: health 503");
    is($r->{json}{worker}, 'unavailable', "$n bytes: worker unavailable");
    is($r->{json}{database}, 'ok', "$n bytes: the database is not blamed");
}
my $too_long_after = () = $t->nginx_error_log =~ /the worker's reply is too long/g;
is($too_long_after - $too_long_before, 3, 'each refusal logged as a reply too long');

# Back to a small reply: nothing stuck.
set_reply('{"ok":true}');
is($t->http(GET => '/api/v1/health')->{status}, 200, 'a small reply afterwards: health 200');

$t->done;
