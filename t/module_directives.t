#!/usr/bin/env perl
# The module's directives at `nginx -t` (docs/directives.md): valid configurations
# pass; each invalid value fails with a message naming the directive and the
# value; a missing relyloop_pg_conninfo is caught; host names are resolved at
# configuration time; and the module loads into the stock /usr/sbin/nginx.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use RelyLoop::Test;

my $t = RelyLoop::Test->new;
$t->start_pg;

my ($rc, $out) = $t->nginx_t;
is($rc, 0, 'the harness configuration passes nginx -t') or diag($out);

{
    # nginx.conf.example as shipped, with only what this machine lacks swapped
    # out: the module's path, the database host, TLS and the listen port.
    my $example = RelyLoop::Test->slurp("$FindBin::Bin/../nginx.conf.example");
    my $module = $t->module_path;
    my $port = $t->pg_port;
    my $n = 0;
    $n += $example =~ s{^load_module \S+;}{load_module $module;}m;
    $n += $example =~ s{host=db\.internal port=5432}{host=127.0.0.1 port=$port};
    $n += $example =~ s{listen 443 ssl http2;}{listen 127.0.0.1:1;};
    $n += $example =~ s{^\s*ssl_certificate(_key)? .*\n}{}mg;
    $example =~ s{^user .*\n}{}m if $> != 0;
    is($n, 5, 'nginx.conf.example: the lines this test swaps are still there');
    ($rc, $out) = $t->nginx_t(conf => $example);
    is($rc, 0, 'nginx.conf.example passes nginx -t') or diag($out);
    unlike($out, qr/\[(emerg|alert|warn)\]/, '... without warnings') or diag($out);
}

($rc, $out) = $t->nginx_t(directives => {
    relyloop_pg_pool_size => 2, relyloop_pg_max_waiting => 0, relyloop_pg_timeout => '750ms',
    relyloop_pg_pipeline_depth => 1, relyloop_worker_timeout => '1m',
    relyloop_environment => 'staging', relyloop_github_web_url => 'https://ghe.example.com/',
    relyloop_body_buffer_size => '64m', relyloop_webhook_max_body => '2m',
    relyloop_webhook_replay_window => '30d',
    relyloop_pg_conninfo => '"host=localhost port=' . $t->pg_port . ' dbname=relyloop"'},
    cors => ['https://ui.example.com', 'http://localhost:5173'],
    server => "location = /webhooks/github { relyloop_webhook; relyloop_webhook_max_body 64k; }");
is($rc, 0, 'every directive with a valid value passes (localhost resolved at -t)') or diag($out);

my @bad = (
    [relyloop_pg_pool_size => '0', qr/"relyloop_pg_pool_size" value "0"/],
    [relyloop_pg_pool_size => 'four', qr/"relyloop_pg_pool_size" value "four"/],
    [relyloop_pg_max_waiting => '-1', qr/"relyloop_pg_max_waiting" value "-1"/],
    [relyloop_pg_pipeline_depth => '100000', qr/"relyloop_pg_pipeline_depth" value "100000"/],
    [relyloop_pg_timeout => '0', qr/"relyloop_pg_timeout" value "0"/],
    [relyloop_pg_timeout => '5x', qr/"relyloop_pg_timeout" value "5x"/],
    [relyloop_worker_timeout => 'soon', qr/"relyloop_worker_timeout" value "soon"/],
    [relyloop_environment => 'prod', qr/"relyloop_environment" value "prod"/],
    [relyloop_github_web_url => 'ftp://github.com', qr/"relyloop_github_web_url" value "ftp:\/\/github.com"/],
    [relyloop_github_web_url => 'https://user:pw@github.com',
        qr/"relyloop_github_web_url" value "https:\/\/user:pw\@github.com"/],
    # URLs the worker's --github-web-url refuses: the directive has its rule
    [relyloop_github_web_url => 'https://git_hub.example.com',
        qr/"relyloop_github_web_url" value "https:\/\/git_hub.example.com", it must be "http\[s\]:\/\/host\[:port\]\[\/path\]"/],
    [relyloop_github_web_url => 'https://github.com:99999', qr/"relyloop_github_web_url" value "https:\/\/github.com:99999"/],
    [relyloop_github_web_url => 'https://github.com:', qr/"relyloop_github_web_url" value "https:\/\/github.com:"/],
    [relyloop_worker_socket => '/tmp/' . ('s' x 120), qr/"relyloop_worker_socket" path "\/tmp\/s+"/],
    [relyloop_pg_conninfo => '"host=db.invalid dbname=x"', qr/"relyloop_pg_conninfo": host "db.invalid" not found/],
    [relyloop_pg_conninfo => '"nonsense"', qr/invalid "relyloop_pg_conninfo"/],
    [relyloop_body_buffer_size => '0', qr/"relyloop_body_buffer_size" value "0", it must be a size from 1k to 64m/],
    [relyloop_body_buffer_size => '512', qr/"relyloop_body_buffer_size" value "512"/],
    [relyloop_body_buffer_size => '65m', qr/"relyloop_body_buffer_size" value "65m"/],
    [relyloop_body_buffer_size => 'lots', qr/"relyloop_body_buffer_size" directive invalid value/],
    [relyloop_webhook_max_body => '512', qr/"relyloop_webhook_max_body" value "512", it must be a size from 1k to 25m/],
    [relyloop_webhook_max_body => '65m', qr/"relyloop_webhook_max_body" value "65m"/],
    [relyloop_webhook_replay_window => '59m', qr/"relyloop_webhook_replay_window" value "59m", it must be a time from 1h to 30d/],
    [relyloop_webhook_replay_window => '31d', qr/"relyloop_webhook_replay_window" value "31d"/],
    [relyloop_webhook_replay_window => 'soon', qr/"relyloop_webhook_replay_window" directive invalid value/],
);
for my $case (@bad) {
    my ($name, $value, $re) = @$case;
    my ($rc, $out) = $t->nginx_t(directives => {$name => $value});
    isnt($rc, 0, "$name $value: nginx -t fails");
    like($out, $re, "$name $value: the message names the directive and the value");
    like($out, qr/\[emerg\]/, "$name $value: at emerg");
}

# the same URLs, given to the worker: the rule has one owner, so both refuse
# them (and both accept the harness's and an IPv6 one with a port and a path)
{
    my $worker = $t->worker_bin;
    my $check = sub {
        my ($url) = @_;
        my $out = `"$worker" --pg-conninfo dbname=x --github-web-url '$url' --help 2>&1`;
        return $out =~ /--github-web-url: invalid value/ ? 'refused'
             : $out =~ /^usage: relyloop-worker/m ? 'accepted' : $out;
    };
    for my $url ('https://git_hub.example.com', 'https://github.com:99999', 'https://github.com:') {
        is($check->($url), 'refused', "the worker refuses $url too");
    }
    my $ok = 'http://[::1]:8443/ghe/';
    is($check->($ok), 'accepted', "the worker accepts $ok");
    ($rc, $out) = $t->nginx_t(directives => {relyloop_github_web_url => $ok});
    is($rc, 0, "and so does nginx -t") or diag($out);
}

($rc, $out) = $t->nginx_t(cors => ['https://ui.example.com/path']);
isnt($rc, 0, 'a CORS origin with a path fails');
like($out, qr{"relyloop_cors_origins" value "https://ui.example.com/path"}, 'and says which');

($rc, $out) = $t->nginx_t(directives => {relyloop_pg_conninfo => undef});
isnt($rc, 0, 'relyloop_api without relyloop_pg_conninfo fails');
like($out, qr/"relyloop_pg_conninfo" is required/, 'with a message saying so');

($rc, $out) = $t->nginx_t(directives => {relyloop_pg_pool_size => "2;\n    relyloop_pg_pool_size 3"});
isnt($rc, 0, 'a duplicate directive fails');
like($out, qr/"relyloop_pg_pool_size" directive is duplicate/, 'as a duplicate');

($rc, $out) = $t->nginx_t(location => 'relyloop_pg_pool_size 2;');
isnt($rc, 0, 'an http-level directive inside a location fails');
like($out, qr/"relyloop_pg_pool_size" directive is not allowed here/, 'not allowed here');

# no relyloop_api anywhere: the module loads and asks for nothing
my $module = $t->module_path;
($rc, $out) = $t->nginx_t(conf => <<"EOF");
load_module $module;
events {}
http { server { listen 127.0.0.1:@{[ RelyLoop::Test::free_port() ]}; } }
pid @{[ $t->dir ]}/nginx/logs/t.pid;
EOF
is($rc, 0, 'the module loads into the stock nginx without relyloop_api') or diag($out);

$t->done;
