#!/usr/bin/env perl
# The PR pipeline benchmark (docs/worker.md, Pipeline steps), against references measured in the
# same run on the same loopback git server (nginx + git http-backend, Basic
# auth) and the fake GitHub:
#
#   warm  open_pr on the persistent clone of a ~5,000-file repo (the job's own
#         duration_ms) vs the git CLI doing the same work on its own warm
#         clone: fetch, reset --hard, clean -fdx, params edit + commit, chart +
#         commit, push a new branch                                (target ≤ 1.2)
#   cold  open_pr with the clone cache wiped vs `git clone` + the same edit,
#         commits and push                                          (target ≤ 1.1)
#   many  40 proposals over 8 repos on 4 threads: wall time vs the ideal
#         schedule max(total work / 4, the busiest repo's serial work)
#                                                                   (target ≤ 1.3)
# plus the worker's RSS before and after, and its peak (VmHWM).
#
# The CLI gets its credentials as an http.extraHeader (no 401 round trip: the
# fastest way the CLI can run); the worker answers libgit2's 401 challenge
# from its credential callback. Numbers only, no pass/fail.
#
# RELYLOOP_BENCH_PIPELINE_RUNS (default 10), RELYLOOP_BENCH_PIPELINE_FILES (5000).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../t/lib";

use File::Path qw(remove_tree make_path);
use POSIX ();
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time sleep);

use RelyLoop::PipelineStack;

my $RUNS = $ENV{RELYLOOP_BENCH_PIPELINE_RUNS} || 10;
my $COLD_RUNS = $ENV{RELYLOOP_BENCH_PIPELINE_COLD_RUNS} || 5;
my $FILES = $ENV{RELYLOOP_BENCH_PIPELINE_FILES} || 5000;

sub median {
    my @v = sort { $a <=> $b } @_;
    return 0 unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

sub rss {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or return {};
    my %r;
    while (<$fh>) {
        $r{$1} = $2 if /^(VmRSS|VmHWM):\s+(\d+) kB/;
    }
    return \%r;
}

# CPU seconds (user + system) the worker process has used so far.
sub proc_cpu {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my $stat = <$fh>;
    close $fh;
    $stat =~ s/^.*\) //;    # past "pid (comm) "
    my @f = split ' ', $stat;
    return ($f[11] + $f[12]) / POSIX::sysconf(POSIX::_SC_CLK_TCK());
}

# CPU seconds used by waited-for children (the git CLI).
sub child_cpu { my @t = times; return $t[2] + $t[3] }

sub sh {
    my ($cmd) = @_;
    my $out = qx{$cmd 2>&1};
    die "failed: $cmd\n$out" if $? != 0;
    return $out;
}

my $s = RelyLoop::PipelineStack->new(worker_args => ['--threads', 4]);
my $t = $s->t;
my $git = $s->git;
my $dir = $t->dir;
my $params = RelyLoop::PipelineStack::params_text();
my $tmpl = $s->template(name => 'bm25');
my $REPO = 'bench/big';
printf "pipeline bench: %d-file repo, %d warm runs, %d cold runs\n", $FILES + 1, $RUNS, $COLD_RUNS;

my $repo = $s->repo($REPO, bulk_files => $FILES, files => {'clusters/prod/bm25.params.json' => $params});
my $cluster = $s->cluster($repo, 'clusters/prod');
my $wpid = $t->worker_pid;
my $rss_start = rss($wpid);

# One pipeline run: a fresh proposal, open_pr, its pr_open_complete duration.
my $seq = 0;
our @STEPS;
sub pipeline_run {
    my ($c) = @_;
    my $p = $s->study($c // $cluster, $tmpl,
        config_diff => {'title.boost' => {to => 2.5 + (++$seq) / 1000}});
    my $r = $s->open_pr($p->{proposal_id});
    die "open_pr: $r->{status}" unless $r->{status} == 202;
    my $row = $s->wait_done($p->{proposal_id}, 120);
    die "pipeline run failed: " . ($row->{pr_open_error} // $row->{status})
        unless $row->{status} eq 'pr_opened';
    my ($e) = $s->events('pr_open_complete', $p->{proposal_id});
    push @STEPS, $e->{steps_ms} // '';
    return $e->{duration_ms} / 1000;
}

# The median of each step over the given steps_ms strings ("loading=3,cloning=40,...").
sub step_medians {
    my (%per, @order);
    for my $line (@_) {
        for (split /,/, $line) {
            my ($k, $v) = split /=/;
            push @order, $k unless $per{$k};
            push @{$per{$k}}, $v;
        }
    }
    return join ' ', map { "$_=" . median(@{$per{$_}}) } @order;
}

my $clone = "$dir/clones/$repo->{id}";
my (@cold, @warm);
pipeline_run();    # the chart the CLI commits comes from this run

# --- the git CLI reference ---------------------------------------------------------------------
my $url = $git->repo_url($REPO) . '.git';
my $auth = encode_base64('x-access-token:' . $s->pat, '');
my $G = "git -c user.name=Bench -c user.email=bench\@example.com "
      . "-c http.extraHeader='Authorization: Basic $auth' -c advice.detachedHead=false";
my $png_file = "$dir/chart.png";
{
    my ($branch) = grep { /^relyloop\/study-/ } $git->branches($REPO);
    my $sid = ($branch =~ /study-(.+)$/)[0];
    open my $fh, '>:raw', $png_file or die;
    print $fh $git->git($REPO, 'cat-file', 'blob', "$branch:.relyloop/digest-charts/$sid.png");
    close $fh;
}
my $cli_seq = 0;
sub cli_work {    # the edit, two commits and the push, in a ready clone
    my ($wd) = @_;
    my $n = ++$cli_seq;
    my $f = "$wd/clusters/prod/bm25.params.json";
    open my $in, '<', $f or die;
    local $/;
    my $text = <$in>;
    close $in;
    $text =~ s/"title\.boost": [^,]+,/"title.boost": 3.$n,/;
    open my $out, '>', $f or die;
    print $out $text;
    close $out;
    sh("cd $wd && $G checkout -q -B cli-$n && $G commit -q -am 'cli $n'");
    make_path("$wd/.relyloop/digest-charts");
    sh("cp $png_file $wd/.relyloop/digest-charts/cli-$n.png");
    sh("cd $wd && $G add .relyloop && $G commit -q -m 'chart $n' && $G push -q origin cli-$n:refs/heads/cli/$n");
}

my $cli = "$dir/cli-clone";
my (@cli_cold, @cli_warm, @cold_cpu, @cli_cold_cpu);
# Cold and warm runs alternate pipeline and CLI, so that both meet the same
# machine (this VM's small-file I/O varies by a factor of two from minute to
# minute).
@STEPS = ();
# A cold run writes thousands of files: flush the previous run's dirty pages
# first, for both.
for (1 .. $COLD_RUNS) {
    remove_tree($clone);
    system('sync');
    my $c0 = proc_cpu($wpid);
    push @cold, pipeline_run();
    push @cold_cpu, proc_cpu($wpid) - $c0;
    remove_tree($cli);
    system('sync');
    my $t0 = time;
    my $cc0 = child_cpu();
    sh("$G clone -q $url $cli");
    cli_work($cli);
    push @cli_cold, time - $t0;
    push @cli_cold_cpu, child_cpu() - $cc0;
}
my @cold_steps = @STEPS;
pipeline_run() for 1 .. 2;    # settle
@STEPS = ();
for (1 .. $RUNS) {
    push @warm, pipeline_run();
    my $t0 = time;
    sh("cd $cli && $G fetch -q --prune origin && $G reset -q --hard origin/main && $G clean -q -fdx");
    cli_work($cli);
    push @cli_warm, time - $t0;
}
my $warm_steps = step_medians(@STEPS);

my $rss_mid = rss($wpid);

# --- many proposals over several repos -------------------------------------------------------------
my @repos;
for my $i (1 .. 8) {
    my $r = $s->repo("bench/many-$i", bulk_files => 500,
        files => {'clusters/prod/bm25.params.json' => $params});
    my $c = $s->cluster($r, 'clusters/prod');
    push @repos, {repo => $r, cluster => $c};
    pipeline_run($c);    # clone once: the measured run is warm
}
my @props;
for my $round (1 .. 5) {
    for my $r (@repos) {
        push @props, {repo => $r->{repo}{id},
            p => $s->study($r->{cluster}, $tmpl, config_diff => {'title.boost' => {to => 4 + (++$seq) / 1000}})};
    }
}
for my $x (@props) {
    my $r = $s->open_pr($x->{p}{proposal_id});
    die "open_pr: $r->{status}" unless $r->{status} == 202;
}
my $failed = 0;
for my $x (@props) {
    my $row = $s->wait_done($x->{p}{proposal_id}, 300);
    $failed++ unless $row->{status} eq 'pr_opened';
}
# The makespan from the database: first enqueue to last finish (polling the
# rows from here costs a psql process each, which must not count).
my $ids = join ',', map { "'$_->{p}{proposal_id}'" } @props;
my $wall = $t->psql('SELECT extract(epoch FROM max(finished_at) - min(created_at)) FROM pr_jobs '
    . "WHERE proposal_id IN ($ids)");
my $contention = () = $s->events('pr_open_lock_contention');
my (%per_repo, $total);
for my $x (@props) {
    my ($e) = $s->events('pr_open_complete', $x->{p}{proposal_id});
    my $d = ($e->{duration_ms} // 0) / 1000;
    $per_repo{$x->{repo}} += $d;
    $total += $d;
}
my ($busiest) = sort { $b <=> $a } values %per_repo;
my $ideal = $busiest > $total / 4 ? $busiest : $total / 4;
my $rss_end = rss($wpid);

# --- report ---------------------------------------------------------------------------------------
my ($pw, $cw, $pc, $cc) = (median(@warm), median(@cli_warm), median(@cold), median(@cli_cold));
printf "pipeline warm open_pr:  median %7.1f ms   git CLI fetch+reset+clean+2 commits+push: %7.1f ms   ratio %.2f (target <= 1.2)\n",
    $pw * 1000, $cw * 1000, $pw / $cw;
printf "pipeline cold open_pr:  median %7.1f ms   git clone+2 commits+push:                %7.1f ms   ratio %.2f (target <= 1.1)\n",
    $pc * 1000, $cc * 1000, $pc / $cc;
printf "  cold CPU (user+sys): worker %7.1f ms   git CLI processes %7.1f ms   ratio %.2f (wall time here is mostly disk writeback)\n",
    median(@cold_cpu) * 1000, median(@cli_cold_cpu) * 1000,
    median(@cli_cold_cpu) ? median(@cold_cpu) / median(@cli_cold_cpu) : 0;
printf "many: 40 proposals / 8 repos / 4 threads: makespan %.2f s, ideal %.2f s (work %.2f s, busiest repo %.2f s), ratio %.2f (target <= 1.3); lock contentions %d%s\n",
    $wall, $ideal, $total, $busiest, $wall / $ideal, $contention, $failed ? " — $failed FAILED" : '';
printf "worker RSS: start %d kB, after the big repo %d kB, after the 40 proposals %d kB; peak (VmHWM) %d kB\n",
    $rss_start->{VmRSS} // 0, $rss_mid->{VmRSS} // 0, $rss_end->{VmRSS} // 0, $rss_end->{VmHWM} // 0;
printf "pipeline steps, median ms: warm: %s\n                           cold: %s\n", $warm_steps,
    step_medians(@cold_steps);
printf "samples (ms): warm %s | cli warm %s | cold %s | cli cold %s\n",
    join(',', map { int($_ * 1000) } @warm), join(',', map { int($_ * 1000) } @cli_warm),
    join(',', map { int($_ * 1000) } @cold), join(',', map { int($_ * 1000) } @cli_cold);

$t->stop_all;
