package Bench;

# Helpers shared by the benchmark scripts: run wrk and pgbench, parse what
# they print, format ratios. Numbers only; no pass/fail (docs/decisions.md).

use strict;
use warnings;

use Exporter qw(import);
use File::Basename qw(dirname);
use Cwd qw(abs_path);

our @EXPORT_OK = qw(wrk pgbench print_statements seed_config_repos ratio fmt_ms seconds);

my $ROOT = abs_path(dirname(__FILE__) . '/../..');

sub seconds { $ENV{RELYLOOP_BENCH_SECONDS} || 10 }

# wrk(url => ..., connections => 32, threads => 2, seconds => N, script => file,
#     args => [script arguments])
# → {rps, p50_ms, p99_ms, errors, non2xx, raw}
sub wrk {
    my (%o) = @_;
    my $c = $o{connections} // 32;
    my $th = $o{threads} // 2;
    my $d = $o{seconds} // seconds();
    my $script = $o{script} ? "-s $o{script}" : '';
    my $args = $o{args} ? ' -- ' . join(' ', map { quotemeta } @{$o{args}}) : '';
    my $out = qx{wrk -t$th -c$c -d${d}s --latency $script '$o{url}'$args 2>&1};
    my %r = (raw => $out);
    ($r{rps}) = $out =~ /Requests\/sec:\s+([\d.]+)/;
    $r{p50_ms} = _wrk_ms($out =~ /^\s+50%\s+([\d.]+\w+)/m);
    $r{p99_ms} = _wrk_ms($out =~ /^\s+99%\s+([\d.]+\w+)/m);
    ($r{non2xx}) = $out =~ /Non-2xx or 3xx responses:\s+(\d+)/;
    $r{non2xx} //= 0;
    my ($conn, $read, $write, $timeout) =
        $out =~ /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/;
    $r{errors} = ($conn // 0) + ($read // 0) + ($write // 0) + ($timeout // 0);
    die "wrk failed:\n$out" unless defined $r{rps};
    return \%r;
}

sub _wrk_ms {
    my ($v) = @_;
    return undef unless defined $v;
    my ($n, $unit) = $v =~ /^([\d.]+)(\w+)$/;
    return $n / 1000 if $unit eq 'us';
    return $n if $unit eq 'ms';
    return $n * 1000 if $unit eq 's';
    return undef;
}

# pgbench(port => ..., script => file, clients => 32, threads => 2, seconds => N,
#         defines => {var => value}, dir => tmp) → {tps, p99_ms, p50_ms}
sub pgbench {
    my (%o) = @_;
    my $c = $o{clients} // 32;
    my $th = $o{threads} // 2;
    my $d = $o{seconds} // seconds();
    my $defs = join ' ', map { "-D $_=" . quotemeta($o{defines}{$_}) } sort keys %{$o{defines} || {}};
    my $prefix = "$o{dir}/pgbench_log";
    unlink glob("$prefix*");
    my $out = qx{cd $o{dir} && pgbench -n -h 127.0.0.1 -p $o{port} -U postgres -M prepared -c $c -j $th -T $d -l --log-prefix=$prefix $defs -f $o{script} relyloop 2>&1};
    my %r = (raw => $out);
    ($r{tps}) = $out =~ /tps = ([\d.]+) \(without initial connection time\)/;
    ($r{tps}) = $out =~ /tps = ([\d.]+)/ unless defined $r{tps};
    die "pgbench failed:\n$out" unless defined $r{tps};
    my @lat;
    for my $f (glob("$prefix*")) {
        open my $fh, '<', $f or next;
        while (<$fh>) {
            my @f = split;
            push @lat, $f[2] if @f >= 3;    # client_id transaction_no time(us) ...
        }
        close $fh;
        unlink $f;
    }
    @lat = sort { $a <=> $b } @lat;
    if (@lat) {
        $r{p50_ms} = $lat[int(@lat * 0.50)] / 1000;
        $r{p99_ms} = $lat[int(@lat * 0.99)] / 1000;
    }
    return \%r;
}

# The core's statement table through its C API: {name => {nparams, sql}}.
sub print_statements {
    my ($build, $dir) = @_;
    my $bin = "$dir/print_statements";
    my $cm = "$build/cmake-release";
    system("cc -O1 -I$ROOT/src/core/include $ROOT/bench/print_statements.c "
        . "$cm/librelyloop_core.a $cm/librelyloop_common.a "
        . "-ljansson -lpcre2-8 -lb2 -lpq -lcrypto -lstdc++ -lm -o $bin") == 0
        or die "cannot build print_statements";
    my %st;
    for my $line (qx{$bin}) {
        chomp $line;
        my ($name, $n, $sql) = split /\t/, $line, 3;
        $st{$name} = {nparams => $n, sql => $sql};
    }
    return \%st;
}

# seed_config_repos($t): 1000 config repos spread over time (so lists have
# real pages); returns the id of the one in the middle.
sub seed_config_repos {
    my ($t) = @_;
    $t->psql(<<'SQL');
INSERT INTO config_repos (id, name, provider, repo_url, auth_ref, created_at)
SELECT '0196c0de-0000-7000-8000-' || lpad(g::text, 12, '0'), 'repo-' || g, 'github',
       'https://github.com/acme/repo-' || g, 'pat', now() - (g || ' seconds')::interval
FROM generate_series(1, 1000) g;
SQL
    return '0196c0de-0000-7000-8000-000000000500';
}

sub ratio {
    my ($a, $b) = @_;
    return 'n/a' unless $a && $b;
    return sprintf('%.2f', $a / $b);
}

sub fmt_ms { defined $_[0] ? sprintf('%.2f ms', $_[0]) : 'n/a' }

1;
