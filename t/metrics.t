#!/usr/bin/perl
# Prometheus metrics (docs/metrics.md): nginx's `relyloop_metrics` location
# (two worker processes, one shared zone) with the worker's metrics appended
# over its socket, and the worker's own --metrics-listen. Every scrape is
# parsed by prometheus_client's parser (Debian's python3-prometheus-client).
# Counts move under load by exactly the requests made, survive a reload, the
# job metrics move when a job runs, and a stopped worker shows as
# relyloop_worker_up 0 and link failures.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use HTTP::Tiny;
use IPC::Open2;

use RelyLoop::PipelineStack;
use RelyLoop::Test qw(json_decode);

BEGIN { alarm 300 }

my $PARSER = "$FindBin::Bin/tools/prom_parse.py";
my $wport = RelyLoop::Test::free_port();

my $s = RelyLoop::PipelineStack->new(
    worker_args => ['--metrics-listen', "127.0.0.1:$wport"],
    nginx => {workers => 2, server => <<'EOF'});
        location = /metrics {
            relyloop_metrics;
            allow 127.0.0.1;
            deny all;
        }
EOF
my $t = $s->t;

# text → {sample name → [[labels, value], ...]}, and the families' types
sub parse {
    my ($text) = @_;
    my $pid = open2(my $out, my $in, '/usr/bin/python3', $PARSER);
    print $in $text;
    close $in;
    local $/;
    my $json = <$out>;
    waitpid($pid, 0);
    return undef if $? != 0;
    my $doc = json_decode($json) or return undef;
    my (%samples, %types);
    for my $fam (keys %{$doc->{families}}) {
        $types{$fam} = $doc->{families}{$fam}{type};
        push @{$samples{$_->[0]}}, [$_->[1], $_->[2]] for @{$doc->{families}{$fam}{samples}};
    }
    return {samples => \%samples, types => \%types};
}

sub scrape {
    my $r = $t->http(GET => '/metrics');
    die "GET /metrics: $r->{status}" unless $r->{status} == 200;
    my $m = parse($r->{body}) or die "unparsable:\n$r->{body}";
    $m->{content_type} = $r->{headers}{'content-type'};
    return $m;
}

sub scrape_worker {
    my $r = HTTP::Tiny->new(timeout => 10)->get("http://127.0.0.1:$wport/metrics");
    die "worker GET /metrics: $r->{status}" unless $r->{status} == 200;
    return parse($r->{content}) // die "unparsable:\n$r->{content}";
}

# the value of one sample, 0 when absent
sub value {
    my ($m, $name, %labels) = @_;
    for my $s (@{$m->{samples}{$name} || []}) {
        my ($l, $v) = @$s;
        next if grep { ($l->{$_} // '') ne $labels{$_} } keys %labels;
        return $v;
    }
    return 0;
}

sub has_sample { exists $_[0]{samples}{$_[1]} }

my $CLUSTERS = {route => '/api/v1/clusters', method => 'GET', code => '2xx'};

# --- the document -----------------------------------------------------------------

my $m0 = scrape();
like($m0->{content_type}, qr{^text/plain; version=0\.0\.4}, 'text format 0.0.4');
is($m0->{types}{relyloop_http_requests}, 'counter', 'requests: a counter');
is($m0->{types}{relyloop_http_request_duration_seconds}, 'histogram', 'latency: a histogram');
is($m0->{types}{$_}, 'gauge', "$_: a gauge")
    for qw(relyloop_pg_connections_up relyloop_pg_connections_in_use relyloop_pg_queries_waiting
        relyloop_worker_up relyloop_nginx_processes relyloop_jobs);
is($m0->{types}{$_}, 'counter', "$_: a counter")
    for qw(relyloop_pg_reconnects relyloop_pg_resubmits relyloop_pg_timeouts
        relyloop_worker_link_failures relyloop_lock_contentions relyloop_lease_losses
        relyloop_github_requests relyloop_github_request_retries);
is($m0->{types}{$_}, 'histogram', "$_: a histogram")
    for qw(relyloop_job_duration_seconds relyloop_job_step_duration_seconds);
is(value($m0, 'relyloop_worker_up'), 1, 'the worker answered over its socket');
is(value($m0, 'relyloop_nginx_processes'), 2, 'both nginx worker processes report');
ok(RelyLoop::Test::wait_for(sub { value(scrape(), 'relyloop_pg_connections_up') >= 2 }, 10),
    'the pools of both processes are up');
is(value($m0, 'relyloop_jobs', state => 'queued'), 0, 'no job queued');

# --- under load ---------------------------------------------------------------------

my $before = scrape();
my @codes = $t->parallel(4, sub {
    my %c;
    for (1 .. 25) {
        $c{$t->http(GET => '/api/v1/clusters')->{status}}++;
    }
    $c{$t->http(GET => '/api/v1/clusters/nope')->{status}}++;
    return \%c;
});
my %codes;
for my $c (@codes) { $codes{$_} += $c->{$_} for keys %$c }
is_deeply(\%codes, {200 => 100, 404 => 4}, '100 list requests, 4 unknown ids');
my $after = scrape();
is(value($after, 'relyloop_http_requests_total', %$CLUSTERS)
    - value($before, 'relyloop_http_requests_total', %$CLUSTERS), 100,
    'GET /api/v1/clusters 2xx moved by 100 (both processes summed)');
my $id404 = {route => '/api/v1/clusters/{id}', method => 'GET', code => '4xx'};
is(value($after, 'relyloop_http_requests_total', %$id404)
    - value($before, 'relyloop_http_requests_total', %$id404), 4, '... and its 404s by 4');
is(value($after, 'relyloop_http_request_duration_seconds_count', route => '/api/v1/clusters')
    - value($before, 'relyloop_http_request_duration_seconds_count', route => '/api/v1/clusters'),
    100, 'the histogram counted them');
is(value($after, 'relyloop_http_request_duration_seconds_bucket', route => '/api/v1/clusters',
        le => '+Inf'),
    value($after, 'relyloop_http_request_duration_seconds_count', route => '/api/v1/clusters'),
    '+Inf bucket = count');
my @b = map { $_->[1] } grep { $_->[0]{route} eq '/api/v1/clusters' }
    @{$after->{samples}{relyloop_http_request_duration_seconds_bucket}};
ok(@b == 13 && !grep({ $b[$_] < $b[$_ - 1] } 1 .. $#b), 'buckets are cumulative');
ok($t->http(GET => '/api/v1/nowhere')->{status} == 404
    && value(scrape(), 'relyloop_http_requests_total', route => 'other', method => 'GET',
        code => '4xx') >= 1, 'an unknown path counts under route="other"');

# --- a reload ------------------------------------------------------------------------

my $pre = value(scrape(), 'relyloop_http_requests_total', %$CLUSTERS);
my @old = sort grep { /^\d+$/ } map { (split ' ')[0] } qx{ps -o pid= --ppid @{[ $t->nginx_pid ]}};
$t->reload_nginx;
ok(RelyLoop::Test::wait_for(sub {
    my @now = sort grep { /^\d+$/ } map { (split ' ')[0] } qx{ps -o pid= --ppid @{[ $t->nginx_pid ]}};
    @now == 2 && !grep { my $p = $_; grep { $_ == $p } @old } @now;
}, 15), 'the reload replaced both worker processes');
my $post = scrape();
cmp_ok(value($post, 'relyloop_http_requests_total', %$CLUSTERS), '>=', $pre,
    'counts survive the reload');
$t->http(GET => '/api/v1/clusters') for 1 .. 10;
is(value(scrape(), 'relyloop_http_requests_total', %$CLUSTERS) - value($post,
    'relyloop_http_requests_total', %$CLUSTERS), 10, '... and keep counting after it');
ok(RelyLoop::Test::wait_for(sub { value(scrape(), 'relyloop_nginx_processes') == 2 }, 10),
    'the old processes left their slots');

# --- a job --------------------------------------------------------------------------

my $wbefore = scrape_worker();
my $repo = $s->repo('acme/search-config', files => {
    'clusters/prod/bm25.params.json' => RelyLoop::PipelineStack::params_text(),
    'templates/bm25.json' => "{}\n",
});
my $seed = $s->seed($s->cluster($repo, 'clusters/prod'), $s->template(name => 'bm25'));
my $row = $s->open_and_wait($seed->{proposal_id});
is($row->{status}, 'pr_opened', 'a job ran and opened a PR');
for my $m (scrape_worker(), scrape()) {
    is(value($m, 'relyloop_job_duration_seconds_count', outcome => 'succeeded')
        - value($wbefore, 'relyloop_job_duration_seconds_count', outcome => 'succeeded'), 1,
        'job duration: one more success');
    is(value($m, 'relyloop_jobs', state => 'succeeded'), 1, 'jobs{state=succeeded} is 1');
    cmp_ok(value($m, 'relyloop_github_requests_total', code => '2xx'), '>',
        value($wbefore, 'relyloop_github_requests_total', code => '2xx'),
        'GitHub 2xx responses counted');
    ok(scalar(grep { $_->[0]{le} eq '+Inf' }
            @{$m->{samples}{relyloop_job_step_duration_seconds_bucket} || []}) >= 3,
        'step durations, several steps');
    is(value($m, 'relyloop_jobs_claimed_total') - value($wbefore, 'relyloop_jobs_claimed_total'),
        1, 'one claim');
}

# --- PostgreSQL connections dropped -----------------------------------------------------------

my $rc = value(scrape(), 'relyloop_pg_reconnects_total');
$t->psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    . "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend' "
    . "AND application_name NOT LIKE 'relyloop-worker%'");
# the next requests meet the dead connections; the pools reconnect
$t->http(GET => '/api/v1/clusters') for 1 .. 6;
ok(RelyLoop::Test::wait_for(sub {
    my $m = scrape();
    value($m, 'relyloop_pg_reconnects_total') > $rc && value($m, 'relyloop_pg_connections_up') >= 2
}, 15), 'reconnects counted, the pools back up');

# --- the worker stopped ----------------------------------------------------------------------

my $lf = value(scrape(), 'relyloop_worker_link_failures_total');
$t->stop_worker;
my $down = scrape();
is(value($down, 'relyloop_worker_up'), 0, 'worker down: relyloop_worker_up 0');
ok(!has_sample($down, 'relyloop_jobs'), '... and no worker families');
# a scrape renders nginx's part before it asks the worker: the next one shows it
is(value(scrape(), 'relyloop_worker_link_failures_total') - $lf, 1, 'one link failure');
is($t->http(POST => '/metrics')->{status}, 405, 'POST /metrics → 405');

$s->done;
