#!/usr/bin/perl
# The demo of `./build.sh demo` (docs/runbook.md, "The demo"). Two parts,
# both started by build.sh:
#
#   demo.pl services --dir D --secrets-dir S --git-port P --github-port Q
#       A git smart-HTTP server (RelyLoop::GitServer: nginx + fcgiwrap + git
#       http-backend) holding the sample config repository acme/search-config,
#       and the GitHub API stand-in (RelyLoop::FakeGithub: t/tools/fake_github.py)
#       — the same parts the integration tests use. A fresh random token per
#       run goes to S/demo-pat (the repo's auth_ref), the git server's htpasswd
#       (as a hash) and the stand-in (over its control endpoint). Writes
#       D/services.env (DEMO_WEB_URL, DEMO_API_URL) and D/services.json when
#       both answer; stops them on SIGTERM/SIGINT or when build.sh goes away.
#
#   demo.pl run --dir D --api http://127.0.0.1:PORT --clone-root C
#       Through the API only: the config repo, cluster and template (made on
#       the first run, reused later), a completed study with a pending
#       proposal (the development seed endpoint; a new one per run), open_pr,
#       then waits for pr_opened and prints where to look. With a worker in
#       --dry-run it reports the dry-run record instead.
#
# The worker has no demo mode: build.sh only points its --github-web-url and
# --github-api-url (and the repo's repo_url) at these services.

use strict;
use warnings;

use Encode ();
use File::Basename qw(dirname);
use File::Path qw(make_path);
use Getopt::Long qw(GetOptionsFromArray);
use HTTP::Tiny;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(sleep time);

use lib dirname(__FILE__) . '/../lib';

my $JSON = JSON::PP->new->canonical->pretty;
my $REPO = 'acme/search-config';
my $CONFIG_PATH = 'clusters/demo';
my $TEMPLATE = 'demo-bm25';
my $AUTH_REF = 'demo-pat';

my $cmd = shift @ARGV // '';
if ($cmd eq 'services') { exit services(@ARGV) }
if ($cmd eq 'run') { exit run(@ARGV) }
die "usage: demo.pl services|run [options]\n";

sub write_atomic {
    my ($path, $text, $mode) = @_;
    open my $fh, '>', "$path.tmp" or die "$path.tmp: $!";
    chmod $mode, "$path.tmp" if defined $mode;
    print $fh $text;
    close $fh or die "$path.tmp: $!";
    rename "$path.tmp", $path or die "$path: $!";
}

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return undef;
    local $/;
    my $s = <$fh>;
    return $s;
}

# --- services -------------------------------------------------------------------

sub services {
    my %o;
    GetOptionsFromArray(\@_, \%o, 'dir=s', 'secrets-dir=s', 'git-port=i', 'github-port=i')
        or die "services: bad options\n";
    require RelyLoop::GitServer;
    require RelyLoop::FakeGithub;
    my $dir = $o{dir} or die "--dir required\n";
    make_path($dir);
    my $parent = getppid();

    my @c = ('A' .. 'Z', 'a' .. 'z', 0 .. 9);
    open my $rnd, '<:raw', '/dev/urandom' or die "urandom: $!";
    read($rnd, my $bytes, 40) == 40 or die "urandom: short read";
    close $rnd;
    my $token = 'demo_' . join '', map { $c[ord($_) % @c] } split //, $bytes;
    write_atomic("$o{'secrets-dir'}/$AUTH_REF", "$token\n", 0600);

    my $git = RelyLoop::GitServer->start(dir => $dir, token => $token, port => $o{'git-port'});
    # The sample repository is made once and kept: earlier runs' branches stay.
    if (!-d $git->bare($REPO)) {
        $git->create_repo($REPO, files => {
            "$CONFIG_PATH/$TEMPLATE.params.json" =>
                qq({\n  "boost": 1.0,\n  "tie_breaker": 0.3,\n  "operator": "OR",\n)
                . qq(  "field_boosts": {\n    "title": 2.0,\n    "body": 0.5\n  }\n}\n),
            'README.md' => "# search-config\n\nThe relyloop-pr demo's config repository.\n"});
    }
    my $gh = RelyLoop::FakeGithub->start(dir => $dir, token => $token, port => $o{'github-port'},
        web_url => $git->web_url, git_root => $git->repos);
    $token = '';
    # The stand-in forgets its PRs when it stops; earlier runs' branches say
    # how many there were, so PR numbers keep counting up.
    my @earlier = grep { m{^relyloop/} } $git->branches($REPO);
    $gh->config(next_number => {$REPO => @earlier + 1});

    my $info = {web_url => $git->web_url, api_url => $gh->api_url, github_control => $gh->base,
        repo => $REPO, repo_url => $git->repo_url($REPO), bare => $git->bare($REPO),
        auth_ref => $AUTH_REF, config_path => $CONFIG_PATH, template => $TEMPLATE,
        git_server_logs => "$dir/git-server/logs", github_log => "$dir/fake-github"};
    write_atomic("$dir/services.json", $JSON->encode($info));
    write_atomic("$dir/services.env",
        "DEMO_WEB_URL='" . $git->web_url . "'\nDEMO_API_URL='" . $gh->api_url . "'\n");

    my $stop = 0;
    $SIG{TERM} = $SIG{INT} = $SIG{HUP} = sub { $stop = 1 };
    sleep 0.2 until $stop || getppid() != $parent;
    $gh->stop;
    $git->stop;
    return 0;
}

# --- run ------------------------------------------------------------------------

my ($UA, $API);

sub call {
    my ($method, $path, $body) = @_;
    my $res = $UA->request($method, "$API$path", {
        headers => {'Content-Type' => 'application/json'},
        (defined $body ? (content => encode_json($body)) : ())});
    my $json = eval { decode_json($res->{content}) };
    return ($res->{status}, $json, $res->{content});
}

sub must {
    my ($want, $method, $path, $body) = @_;
    my ($status, $json, $raw) = call($method, $path, $body);
    die "demo: $method $path answered $status: $raw\n" unless $status == $want;
    return $json;
}

sub find_by_name {
    my ($path, $name) = @_;
    my $page = must(200, GET => "$path?limit=200");
    my ($row) = grep { $_->{name} eq $name } @{$page->{data} || []};
    return $row;
}

sub run {
    my %o;
    GetOptionsFromArray(\@_, \%o, 'dir=s', 'api=s', 'clone-root=s', 'timeout=i')
        or die "run: bad options\n";
    my $dir = $o{dir} or die "--dir required\n";
    my $svc = decode_json(slurp("$dir/services.json") // die "demo: no $dir/services.json\n");
    $UA = HTTP::Tiny->new(timeout => 30);
    $API = $o{api};
    $| = 1;

    # The config repo, cluster and template: made once, then reused. A repo row
    # made when the git server had another port gets a sibling name.
    my $repo_name = 'demo-search-config';
    my $repo = find_by_name('/api/v1/config-repos', $repo_name);
    if ($repo && $repo->{repo_url} ne $svc->{repo_url}) {
        ($repo_name = "demo-search-config-$svc->{repo_url}") =~ s{[^a-z0-9-]+}{-}g;
        $repo = find_by_name('/api/v1/config-repos', $repo_name);
    }
    $repo //= must(201, POST => '/api/v1/config-repos', {name => $repo_name,
        repo_url => $svc->{repo_url}, auth_ref => $svc->{auth_ref},
        pr_base_branch => 'main', default_branch => 'main'});
    my $cluster = find_by_name('/api/v1/clusters', 'demo-cluster');
    if ($cluster) {
        $cluster = must(200, PATCH => "/api/v1/clusters/$cluster->{id}",
            {config_repo_id => $repo->{id}, config_path => $svc->{config_path}});
    } else {
        $cluster = must(201, POST => '/api/v1/clusters', {name => 'demo-cluster',
            engine_type => 'elasticsearch', environment => 'prod',
            base_url => 'https://es.example.com:9200', auth_kind => 'es_apikey',
            credentials_ref => 'demo-es', config_repo_id => $repo->{id},
            config_path => $svc->{config_path}});
    }
    my $tmpl = find_by_name('/api/v1/query-templates', $svc->{template})
        // must(201, POST => '/api/v1/query-templates', {name => $svc->{template},
            engine_type => 'elasticsearch',
            body => '{"query": {"match": {"title": {"query": "{{q}}", "boost": "{{boost}}"}}}}',
            declared_params => {boost => {type => 'float', min => 0, max => 10},
                tie_breaker => 'float', operator => {type => 'categorical', values => ['AND', 'OR']},
                'field_boosts.title' => 'float', 'field_boosts.body' => 'float'}});
    print "demo: config repo $repo->{name} ($svc->{repo_url}), cluster demo-cluster, "
        . "template $tmpl->{name}\n";

    my $seed = must(201, POST => '/api/v1/_test/studies/seed-completed',
        {cluster_id => $cluster->{id}, template_id => $tmpl->{id}});
    my $pid = $seed->{proposal_id};
    print "demo: seeded study $seed->{study_id} with pending proposal $pid\n";
    must(202, POST => "/api/v1/proposals/$pid/open_pr");
    print "demo: POST /api/v1/proposals/$pid/open_pr accepted; waiting for the worker\n";

    my $deadline = time + ($o{timeout} // 180);
    my $p;
    while (1) {
        $p = must(200, GET => "/api/v1/proposals/$pid");
        my $job = $p->{pr_job} || {};
        last if $p->{status} ne 'pending';
        last if ($job->{state} // '') =~ /^(succeeded|failed)$/;
        die "demo: proposal $pid still pending after the timeout: " . encode_json($job) . "\n"
            if time > $deadline;
        sleep 0.2;
    }
    my $job = $p->{pr_job} || {};
    my $branch = "relyloop/study-$seed->{study_id}";
    my $git_log = "git --git-dir=$svc->{bare} log --stat main..$branch";

    if ($p->{status} eq 'pending' && ($job->{last_event} // '') eq 'dry_run_complete') {
        my $file = "$o{'clone-root'}/dry-run/$pid.json";
        my $rec = eval { decode_json(slurp($file)) } || {};
        print "demo: the worker runs with --dry-run: nothing was pushed, no PR opened\n";
        print "demo: the local commit: git --git-dir=$rec->{clone}/.git log --stat "
            . "$rec->{base}..$rec->{branch}\n" if $rec->{clone};
        print "demo: dry run complete: $file\n";
        return 0;
    }
    if ($p->{status} ne 'pr_opened') {
        die "demo: the PR was not opened: status $p->{status}, job " . encode_json($job)
            . ', pr_open_error ' . ($p->{pr_open_error} // 'null') . "\n";
    }

    # The PR as the GitHub stand-in received it.
    my $res = HTTP::Tiny->new(timeout => 30)->get("$svc->{github_control}/_control/requests");
    my $requests = eval { decode_json($res->{content}) } || [];
    my @posts = grep { $_->{route} eq 'create_pull' && $_->{status} == 201 } @$requests;
    my ($req) = grep { ($_->{head} // '') =~ /^(?:[^:]*:)?\Q$branch\E$/ }
        map { eval { JSON::PP->new->decode($_->{body}) } || {} } @posts;    # already characters
    die "demo: the GitHub stand-in has no pull request for $branch (it received "
        . scalar(@$requests) . " requests, " . scalar(@posts) . " PR creations)\n" unless $req;
    my $body_file = "$dir/pr-$pid.md";
    my $md = Encode::encode('UTF-8', "# $req->{title}\n\n$req->{body}");
    write_atomic($body_file, $md);
    write_atomic("$dir/last-pr-body.md", $md);

    print "demo: branch $branch: $git_log\n";
    print "demo: PR body as the GitHub stand-in received it: $body_file\n";
    print "demo: the proposal: curl -s $API/api/v1/proposals/$pid\n";
    print "demo: the stack stays up; Ctrl-C stops it (and the git server and GitHub stand-in)\n";
    print "demo: PR opened: $p->{pr_url}\n";
    return 0;
}
