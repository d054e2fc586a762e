package RelyLoop::Proc;

# Small process and file helpers shared by the harness modules.
#
#   my $status = stop_pid($pid, 'TERM', 5);   # $? of the exit, or undef if it had to be killed
#   wait_pid($pid, 30);                        # no signal: wait, then KILL after the timeout
#   my $text = slurp($file);                   # '' when the file is missing

use strict;
use warnings;

use Exporter qw(import);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(slurp stop_pid wait_pid);

# stop_pid(pid, signal, timeout = 5 s): sends SIGNAL (to the process group
# when PID is negative; none when SIGNAL is undef), reaps the process and
# returns its wait status. A process still alive after TIMEOUT gets SIGKILL
# and undef is returned.
sub stop_pid {
    my ($pid, $signal, $timeout) = @_;
    kill($signal, $pid) if defined $signal;
    my $child = abs $pid;
    my $deadline = time + ($timeout // 5);
    while (time < $deadline) {
        my $r = waitpid($child, WNOHANG);
        return $? if $r == $child;
        return undef if $r < 0;    # not our child (or already reaped)
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid($child, 0);
    return undef;
}

# wait_pid(pid, timeout = 30 s): true when PID exited within TIMEOUT.
sub wait_pid {
    my ($pid, $timeout) = @_;
    return defined stop_pid($pid, undef, $timeout // 30);
}

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return '';
    local $/;
    my $s = <$fh>;
    close $fh;
    return $s // '';
}

1;
