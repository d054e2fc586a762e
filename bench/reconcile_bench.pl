#!/usr/bin/env perl
# One PR state reconciler tick (docs/worker.md, "PR state reconciler") over
# 2,000 open PRs in 20 repositories against the fake GitHub, 1 % of them
# changed on GitHub: the GitHub requests the tick made (from the fake's log
# and the tick's summary) and its wall time (worker_ticks.last_started_at →
# last_finished_at), next to what one GET per open PR (RelyLoop's reconciler)
# would spend. Then the next slot with nothing changed (conditional lists:
# 304s, which GitHub does not count) — this waits for a minute boundary.
# RELYLOOP_BENCH_PRS / RELYLOOP_BENCH_REPOS change the size;
# RELYLOOP_BENCH_NO_WARM=1 skips the second tick.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../t/lib";

use Time::HiRes qw(sleep time);
use RelyLoop::Test qw(json_decode);
use RelyLoop::FakeGithub;

my $prs = $ENV{RELYLOOP_BENCH_PRS} || 2000;
my $repos = $ENV{RELYLOOP_BENCH_REPOS} || 20;
my $per = int($prs / $repos);
my $t = RelyLoop::Test->new;
$t->start_pg->migrate;
my $PAT = 'ghp_BENCH' . ('x1' x 16);
my $WEB = 'https://github.bench.test';
my $gh = RelyLoop::FakeGithub->start(dir => $t->dir, token => $PAT, web_url => $WEB);
$t->write_secret('bench-pat', "$PAT\n");

my $tmpl = $t->psql(q{INSERT INTO query_templates (id, name, engine_type, body, declared_params)
    VALUES (gen_random_uuid()::text, 'products', 'elasticsearch', '{}', '{}') RETURNING id});
my $changed = 0;
for my $r (1 .. $repos) {
    my $full = "bench/r$r";
    my $repo = $t->psql(qq{INSERT INTO config_repos (id, name, provider, repo_url, auth_ref)
        VALUES (gen_random_uuid()::text, 'bench-r$r', 'github', '$WEB/$full', 'bench-pat') RETURNING id});
    my $cluster = $t->psql(qq{INSERT INTO clusters (id, name, engine_type, environment, base_url,
            auth_kind, credentials_ref, config_repo_id, config_path)
        VALUES (gen_random_uuid()::text, 'bench-c$r', 'elasticsearch', 'dev', 'http://127.0.0.1:9',
            'es_basic', 'es', '$repo', 'search') RETURNING id});
    $t->psql(qq{INSERT INTO proposals (id, cluster_id, template_id, config_diff, status, pr_url, pr_state)
        SELECT gen_random_uuid()::text, '$cluster', '$tmpl', '{}', 'pr_opened',
               '$WEB/$full/pull/' || n, 'open' FROM generate_series(1, $per) n});
    for my $n (1 .. $per) {
        my %p = (repo => $full, number => $n, state => 'open');
        if ($n % 100 == 50) {    # 1 %: merged on GitHub
            %p = (%p, state => 'closed', merged => 1, merged_at => '2026-03-01T00:00:00Z');
            $changed++;
        }
        $gh->set_pull(%p);
    }
}
$gh->reset(requests => 1);
$t->psql(q{UPDATE worker_ticks SET last_slot = -1 WHERE name = 'reconcile_pr_state'});
$t->start_worker(args => ['--github-web-url', $WEB, '--github-api-url', $gh->api_url,
    '--pr-poll-minutes', 1]);

sub ticks {
    return grep { ($_->{event} // '') eq 'pr_reconcile_tick_complete' }
        map { json_decode($_) // () } split /\n/, $t->worker_log;
}
sub wait_ticks {
    my ($n, $secs) = @_;
    my $deadline = time + $secs;
    sleep 0.1 while ticks() < $n && time < $deadline;
    die "no tick:\n" . $t->worker_log if ticks() < $n;
    return (ticks())[$n - 1];
}
sub duration_ms {
    return scalar $t->psql(q{SELECT round(extract(epoch FROM last_finished_at - last_started_at) * 1000)
        FROM worker_ticks WHERE name = 'reconcile_pr_state'});
}

my $s1 = wait_ticks(1, 120);
my $ms1 = duration_ms();
my @req = $gh->requests;
printf "reconciler, cold tick: %d open PRs in %d repos, %d changed on GitHub\n", $s1->{candidates}, $repos, $changed;
printf "  GitHub requests: %d (lists %d, single PRs %d); one GET per open PR would be %d (ratio %.1fx fewer)\n",
    scalar @req, scalar(grep { $_->{route} eq 'list_pulls' } @req),
    scalar(grep { $_->{route} eq 'get_pull' } @req), $s1->{candidates},
    $s1->{candidates} / (@req || 1);
printf "  reconciled %d, unchanged %d, errored %d; wall time %d ms\n",
    $s1->{reconciled}, $s1->{unchanged}, $s1->{errored}, $ms1;

unless ($ENV{RELYLOOP_BENCH_NO_WARM}) {
    $gh->reset(requests => 1);
    my $s2 = wait_ticks(2, 75);
    my $ms2 = duration_ms();
    @req = $gh->requests;
    printf "reconciler, next slot, nothing changed: %d candidates\n", $s2->{candidates};
    printf "  GitHub requests: %d, of which 304 (not counted by GitHub): %d; wall time %d ms\n",
        scalar @req, scalar(grep { ($_->{status} // 0) == 304 } @req), $ms2;
}
$t->stop_worker;
$gh->stop;
$t->stop_all;
