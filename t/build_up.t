#!/usr/bin/perl
# `./build.sh up` from a checkout inside a 0700 directory, as a root user
# clones into /root: it reaches the ready line with no "could not change
# directory" noise from PostgreSQL's tools, a second `up` meanwhile refuses
# with a clear message (and changes nothing), and SIGTERM stops everything.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use HTTP::Tiny;
use Test::More;

use RelyLoop::BuildSh;

my $b = RelyLoop::BuildSh->new(timeout => 300);
my $port = $b->port;

$b->start('up');
ok($b->wait_line(qr{^relyloop-pr ready: http://127\.0\.0\.1:$port\b}m, 120), 'up: the ready line')
    or diag($b->output);
my $res = HTTP::Tiny->new(timeout => 10)->get($b->url('/api/v1/health'));
is($res->{status}, 200, 'health answers 200') or diag($res->{content});
if ($> == 0) {
    ok(-l $b->checkout . '/.run/pg', 'as root, the data directory is linked out of the 0700 tree');
}

my ($st, $out) = $b->run_once('up');
isnt($st, 0, 'a second up fails');
like($out, qr/already running \(build\.sh pid \d+\)/, '... saying a stack is already running')
    or diag($out);
unlike($out, qr/Text file busy|postgresql on|initdb/, '... before building or starting anything');
is(HTTP::Tiny->new(timeout => 10)->get($b->url('/api/v1/health'))->{status}, 200,
    'the first stack still answers');

is($b->stop, 0, 'SIGTERM: up exits 0');
my $all = $b->output;
unlike($all, qr/could not change directory/, 'no "could not change directory" line')
    or diag($all);
unlike($all, qr/Permission denied/, 'no "Permission denied"') or diag($all);
like($all, qr/==> stopping/, 'it said it was stopping');
ok(!$b->listening('port'), 'nginx is gone');
ok(!$b->listening('pg'), 'PostgreSQL is gone');
ok(!-e $b->checkout . '/.run/up.pid', 'the pid file is removed');

$b->t->done;
