#!/usr/bin/perl
# `./build.sh demo`, twice in a row from the same checkout (a 0700 directory,
# spare ports): each run reaches "demo: PR opened: <url>" with the PR
# recorded — the proposal pr_opened with that URL, the branch in the sample
# repository (through the git command the demo prints), the PR body the
# GitHub stand-in received in the file it names. The second run reuses the
# first run's config repo, cluster and template. A third, with the worker in
# --dry-run, reports the dry-run record instead.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use HTTP::Tiny;
use JSON::PP;
use Test::More;

use RelyLoop::BuildSh;

my $b = RelyLoop::BuildSh->new(timeout => 420);
my $ua = HTTP::Tiny->new(timeout => 10);
my %seen;

for my $run (1, 2) {
    $b->start('demo');
    my ($url) = $b->wait_line(qr{^demo: PR opened: (\S+)$}m, 180);
    ok($url, "run $run: the final line") or diag($b->output);
    my $out = $b->output;
    my ($pid) = $out =~ /pending proposal (\S+)/;
    my ($branch, $cmd) = $out =~ /^demo: branch (\S+): (git --git-dir=\S+ log --stat \S+)$/m;
    my ($body_file) = $out =~ /^demo: PR body as the GitHub stand-in received it: (\S+)$/m;

    my $p = eval { decode_json($ua->get($b->url('/api/v1/proposals/' . ($pid // 'none')))->{content}) }
        || {};
    is($p->{status}, 'pr_opened', "run $run: the proposal is pr_opened");
    is($p->{pr_url}, $url, "run $run: its pr_url is the one printed");
    ok($url && !$seen{$url}++, "run $run: a new PR");

    my $log = $cmd ? qx{$cmd 2>&1} : '';
    is($?, 0, "run $run: the printed git log command works") or diag($log);
    like($log, qr/Relyloop-Proposal: \Q$pid\E/, "run $run: ... and shows the proposal's commit")
        if $pid;
    like($log, qr{clusters/demo/demo-bm25\.params\.json}, "run $run: ... editing the params file");
    my $body = $body_file ? RelyLoop::Proc::slurp($body_file) : '';
    like($body, qr/## RelyLoop relevance proposal/, "run $run: the PR body file");
    like($body, qr/\Q$pid\E/, "run $run: ... of this proposal") if $pid;

    my $repos = eval { decode_json($ua->get($b->url('/api/v1/config-repos'))->{content}) } || {};
    is(scalar @{$repos->{data} || []}, 1, "run $run: one config repo (reused)");
    is($b->stop, 0, "run $run: SIGTERM, exit 0");
    unlike($b->output, qr/could not change directory|Permission denied/, "run $run: no noise");
    ok(!$b->listening($_), "run $run: $_ port closed") for qw(port pg git github);
}

# The same demo with the worker in --dry-run (RELYLOOP_DRY_RUN reaches it
# through the environment): no PR, the record instead.
$b->start('demo', env => {RELYLOOP_DRY_RUN => 1});
my ($file) = $b->wait_line(qr{^demo: dry run complete: (\S+)$}m, 180);
ok($file, 'dry run: the final line') or diag($b->output);
my ($pid) = $b->output =~ /pending proposal (\S+)/;
my $rec = eval { JSON::PP->new->utf8->decode(RelyLoop::Proc::slurp($file)) } || {};
is($rec->{proposal_id}, $pid, 'dry run: the record of this proposal');
like($rec->{create_pull}{body} // '', qr/## RelyLoop relevance proposal/, '... with the PR body');
my $p = eval { decode_json($ua->get($b->url('/api/v1/proposals/' . ($pid // 'none')))->{content}) }
    || {};
is($p->{status}, 'pending', 'dry run: the proposal stays pending');
is($p->{pr_job}{last_event}, 'dry_run_complete', '... pr_job.last_event dry_run_complete');
is($b->stop, 0, 'dry run: SIGTERM, exit 0');

$b->t->done;
