#!/usr/bin/perl

# relyloop-worker migrate / check / usage errors (docs/worker.md).

use strict;
use warnings;

use Test::More;

use RelyLoop::Test;
use RelyLoop::WorkerTest;

my $t = RelyLoop::Test->new;
$t->start_pg;    # no migrate: this file does it
my $w = RelyLoop::WorkerTest->new($t);
my $ci = $t->conninfo;
my $dir = $t->dir;
my @common = ('--pg-conninfo', $ci, '--secrets-dir', "$dir/secrets",
    '--clone-root', "$dir/clones", '--socket', "$dir/check.sock",
    '--git-author-email', 'bot@test.invalid');

# --- check before migrate -------------------------------------------------------
my ($rc, $out) = $w->run_cli(@common, 'check');
isnt($rc, 0, 'check fails before migrate');
like($out, qr/FAIL\s+schema\s.*run `relyloop-worker migrate`/, 'and says to migrate') or diag $out;
like($out, qr/ok\s+postgres/, 'after postgres passed');

# --- migrate: concurrent, then again ---------------------------------------------
my @res = $t->parallel(4, sub { [$w->run_cli('--pg-conninfo', $ci, 'migrate')] });
is(scalar(grep { $_->[0] == 0 } @res), 4, 'four concurrent migrates all exit 0')
    or diag explain \@res;
is(scalar(grep { $_->[1] =~ /applied migration 1: .*\napplied migration 2: converge with upstream 0023\napplied migration 3: / } @res), 1,
    'exactly one applied the schema (steps 1, 2 and 3)');
is(scalar(grep { $_->[1] =~ /schema is up to date/ } @res), 3, 'the others found it done');
is(scalar $t->psql('SELECT count(*) FROM schema_migrations'), 3, 'one schema_migrations row per step');
is(scalar $t->psql(q{SELECT count(*) FROM information_schema.tables
    WHERE table_name IN ('config_repos','clusters','proposals','pr_jobs','webhook_deliveries',
    'webhook_jobs','worker_ticks')}), 7, 'tables exist');
ok($t->psql(q{SELECT applied_at IS NOT NULL FROM schema_migrations WHERE version = 1}) eq 't',
    'applied_at recorded');

($rc, $out) = $w->run_cli('--pg-conninfo', $ci, 'migrate');
is($rc, 0, 'migrate again: exit 0');
like($out, qr/schema is up to date \(version 3\)/, 'nothing to do');

# --- check ------------------------------------------------------------------------
($rc, $out) = $w->run_cli(@common, 'check');
is($rc, 0, 'check passes') or diag $out;
for my $what (qw(postgres schema secrets-dir clone-root socket-dir urls ca-file)) {
    like($out, qr/^ok\s+\Q$what\E\s/m, "check prints $what");
}
like($out, qr/all checks passed/, 'summary');

($rc, $out) = $w->run_cli(@common[0 .. $#common], 'check', '--pg-conninfo',
    'host=127.0.0.1 port=1 user=postgres dbname=relyloop connect_timeout=2');
is($rc, 1, 'bad conninfo: exit 1');
like($out, qr/FAIL\s+postgres\s+cannot connect: .*(refused|failed)/, 'clear message') or diag $out;

($rc, $out) = $w->run_cli(@common, '--secrets-dir', "$dir/no-such-dir", 'check');
is($rc, 1, 'missing secrets dir: exit 1');
like($out, qr{FAIL\s+secrets-dir\s+\Q$dir\E/no-such-dir: No such file or directory}, 'clear message')
    or diag $out;
unlike($out, qr/ok\s+clone-root/, 'check stops at the first failure');

($rc, $out) = $w->run_cli(@common, '--socket', "$dir/nope/w.sock", 'check');
is($rc, 1, 'missing socket dir: exit 1');
like($out, qr/FAIL\s+socket-dir/, 'named') or diag $out;

($rc, $out) = $w->run_cli(@common, '--ca-file', "$dir/missing-ca.pem", 'check');
is($rc, 1, 'unreadable CA file: exit 1');
like($out, qr/FAIL\s+ca-file/, 'named') or diag $out;

($rc, $out) = $w->run_cli(@common, '--git-author-email', 'relyloop-bot@example.com', 'check');
like($out, qr/^warn\s+config\s.*git-author-email/m, 'default author email: warned');

# --- usage errors exit 2 -------------------------------------------------------------
($rc, $out) = $w->run_cli('check');
is($rc, 2, 'no conninfo: exit 2');
like($out, qr/--pg-conninfo \(or RELYLOOP_PG_CONNINFO\) is required/, 'says so');

($rc, $out) = $w->run_cli('--pg-conninfo', $ci, '--threads', 'lots');
is($rc, 2, 'bad --threads: exit 2');
like($out, qr/--threads: invalid value "lots"/, 'names the flag');

($rc, $out) = $w->run_cli('--pg-conninfo', $ci, '--github-api-url', 'ftp://x', 'check');
is($rc, 2, 'bad URL: exit 2');
like($out, qr/--github-api-url: invalid value/, 'names the flag');

($rc, $out) = $w->run_cli('--pg-conninfo', $ci, 'frobnicate');
is($rc, 2, 'unknown sub-command: exit 2');
like($out, qr/unknown sub-command "frobnicate"/, 'says so');

($rc, $out) = $w->run_cli('--help');
is($rc, 0, '--help: exit 0');
like($out, qr/usage: relyloop-worker/, 'usage text');
like($out, qr/RELYLOOP_WORKER_THREADS/, 'lists the environment variables');

# The environment is read, and flags win over it.
{
    local $ENV{RELYLOOP_PG_CONNINFO} = $ci;
    local $ENV{RELYLOOP_SECRETS_DIR} = "$dir/no-such-dir";
    # run_cli clears RELYLOOP_* for isolation: use a shell-free exec with env.
    my $bin = $t->{worker_bin};
    my %env = $w->san_env('cli-env');
    local @ENV{keys %env} = values %env;
    my $o = qx{$bin --socket $dir/check.sock --clone-root $dir/clones check 2>&1};
    isnt($? >> 8, 0, 'env secrets dir used');
    like($o, qr/FAIL\s+secrets-dir\s+\Q$dir\E\/no-such-dir/, 'from RELYLOOP_SECRETS_DIR');
    $o = qx{$bin --socket $dir/check.sock --clone-root $dir/clones --secrets-dir $dir/secrets check 2>&1};
    is($? >> 8, 0, 'the flag wins over the environment') or diag $o;
}

# The daemon creates a missing clone root for its user only (the clones hold
# the repositories' contents). A later --clone-root wins over the harness's.
{
    my $root = "$dir/fresh/clones";
    $t->start_worker(name => 'fresh-root', args => ['--clone-root', $root]);
    ok(-d $root, 'the daemon created the missing clone root');
    is(sprintf('%04o', (stat $root)[2] & 07777), '0700', '... with mode 0700');
    $t->stop_worker('fresh-root');
}

$t->done;
