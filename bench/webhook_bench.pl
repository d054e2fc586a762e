#!/usr/bin/env perl
# Webhook receiver: signed ~8 KiB pull_request deliveries per second (each one
# distinct, so each is verified, recorded and dispatched; none is a replay)
# next to GET /api/v1/config-repos/{id} in the same run, c=32 (wrk).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../t/lib";

use Digest::SHA qw(hmac_sha256_hex);
use Bench qw(wrk ratio fmt_ms seconds);
use RelyLoop::Test;

my $conc = $ENV{RELYLOOP_BENCH_CONCURRENCY} || 32;
my $secret = 'bench-webhook-secret-0123456789';
my $full = 'acme/bench-config';

my $t = RelyLoop::Test->new;
$t->start_pg->migrate;
$t->write_secret('pat', "github_pat_bench_0123456789abcdefghij\n");
$t->write_secret('wh', "$secret\n");
$t->start_nginx(environment => 'production', access_log => 0, log_level => 'warn',
    directives => {relyloop_pg_timeout => '5s'},
    server => "        location = /webhooks/github { relyloop_webhook; }\n");
my $id = '0196c0de-0000-7000-8000-000000000001';
$t->psql("INSERT INTO config_repos (id, name, provider, repo_url, auth_ref, webhook_secret_ref) "
    . "VALUES ('$id', 'bench', 'github', 'https://github.com/$full', 'pat', 'wh')");

# the padding that makes a delivery 8 KiB
my $pad = 8192 - 330;
my $probe = '{"action":"closed","pull_request":{"html_url":"https://github.com/' . $full
    . '/pull/1"},"repository":{"full_name":"' . $full . '"}}';
my $r = $t->http(POST => '/webhooks/github', body => $probe, headers => {
    'X-GitHub-Event' => 'pull_request', 'X-Hub-Signature-256' => 'sha256=' . hmac_sha256_hex($probe, $secret)});
die "webhook probe: $r->{status} $r->{body}" unless $r->{status} == 200;

my $run = 0;
sub hook_args { (script => "$FindBin::Bin/webhook.lua", args => [$secret, $full, $pad, "r" . ++$run]) }
wrk(url => $t->url('/webhooks/github'), connections => $conc, seconds => 2, hook_args());
wrk(url => $t->url("/api/v1/config-repos/$id"), connections => $conc, seconds => 2);
my $before = $t->psql('SELECT count(*) FROM webhook_deliveries');
my $hook = wrk(url => $t->url('/webhooks/github'), connections => $conc, hook_args());
my $recorded = $t->psql('SELECT count(*) FROM webhook_deliveries') - $before;
my $detail = wrk(url => $t->url("/api/v1/config-repos/$id"), connections => $conc);
for my $x ($hook, $detail) {
    die "errors or non-2xx\n$x->{raw}" if $x->{errors} || $x->{non2xx};
}

my $secs = seconds();
print "\n== webhook receiver vs detail GET (nginx, 1 worker, wrk c=$conc, ${secs}s each) ==\n";
printf "%-40s %12s %10s %10s\n", '', 'req/s', 'p50', 'p99';
printf "%-40s %12.0f %10s %10s\n", 'POST /webhooks/github (8 KiB, signed)', $hook->{rps},
    fmt_ms($hook->{p50_ms}), fmt_ms($hook->{p99_ms});
printf "%-40s %12.0f %10s %10s\n", 'GET /config-repos/{id}', $detail->{rps},
    fmt_ms($detail->{p50_ms}), fmt_ms($detail->{p99_ms});
printf "deliveries recorded during the run: %d (wrk's requests/s x seconds: %.0f)\n", $recorded,
    $hook->{rps} * $secs;
printf "ratio webhook/detail: %s\n", ratio($hook->{rps}, $detail->{rps});
$t->stop_all;
