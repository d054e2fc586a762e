#!/usr/bin/perl
# nginx as its own user with the deploy file modes (docs/security.md,
# "Storage"): PAT files 0600 owned by the worker's user, in a secrets
# directory nginx's group can traverse but not list (0710). The module only
# stat()s a PAT, so repo creation and open_pr work, while nginx's user cannot
# open the file.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use RelyLoop::Test;
use RelyLoop::Fixtures;

$SIG{ALRM} = sub { diag('hard timeout: module_user.t'); exit 1 };
alarm 180;

plan skip_all => 'needs root (runs nginx as www-data)' if $> != 0;
my (undef, undef, $uid, $gid) = getpwnam('www-data');
plan skip_all => 'no www-data user' unless defined $uid;

my $t = RelyLoop::Test->new;
$t->start_pg->migrate->start_worker(test_pipeline => 1);

# The worker's user is root here: the socket joins nginx's group (as the
# deploy puts nginx's user in the worker's group), the secrets directory is
# the worker's, traversable by nginx's group only.
my $secrets = $t->dir . '/secrets';
chown 0, $gid, $t->worker_socket or die "chown socket: $!";
chown 0, $gid, $secrets or die "chown secrets: $!";
chmod 0710, $secrets or die;
my $pat = $t->write_secret('acme-pat', "ghp_" . ('u' x 36) . "\n");
is((stat $pat)[2] & 07777, 0600, 'the PAT file is 0600');
is((stat $pat)[4], 0, '... owned by the worker\'s user');

$t->start_nginx(user => 'www-data', environment => 'development');

# the worker processes run as www-data
my @workers = grep { $_ } map { /^(\d+)$/ ? $1 : () } split /\n/,
    qx{pgrep -P @{[ $t->nginx_pid ]}};
ok(@workers, 'nginx has worker processes');
for my $pid (@workers) {
    my ($ruid) = RelyLoop::Proc::slurp("/proc/$pid/status") =~ /^Uid:\s+(\d+)/m;
    is($ruid, $uid, "nginx worker $pid runs as www-data");
}

# www-data cannot read the PAT, nor list the directory
my $out = qx{runuser -u www-data -- cat '$pat' 2>&1};
isnt($? >> 8, 0, 'runuser -u www-data -- cat <pat> fails');
like($out, qr/Permission denied/, '... with EACCES');
unlike($out, qr/ghp_/, '... and prints nothing of it');
qx{runuser -u www-data -- ls '$secrets' 2>&1};
isnt($? >> 8, 0, 'www-data cannot list the secrets directory');
{
    my $pid = fork // die;
    if ($pid == 0) {
        POSIX::setgid($gid);
        POSIX::setuid($uid) or POSIX::_exit(3);
        POSIX::_exit(open(my $fh, '<', $pat) ? 0 : $!{EACCES} ? 1 : 2);
    }
    waitpid $pid, 0;
    is($? >> 8, 1, 'open() of the PAT under www-data\'s uid fails with EACCES');
}

# ... yet the API serves repo creation and open_pr
my $r = api($t, POST => '/api/v1/config-repos', json => {name => 'acme',
    repo_url => 'https://github.com/acme/cfg', auth_ref => 'acme-pat'});
is($r->{status}, 201, 'POST /config-repos with the 0600 PAT → 201') or diag($r->{body});
my $repo = $r->{json};
$r = api($t, POST => '/api/v1/config-repos', json => {name => 'nope',
    repo_url => 'https://github.com/acme/nope', auth_ref => 'no-such-pat'});
error_ok($r, 400, 'AUTH_REF_NOT_FOUND', 'a missing PAT is still told apart', retryable => 1);

my $cluster = create_cluster($t, config_repo_id => $repo->{id}, config_path => 'relevance');
my $template = create_template($t);
my $p = insert_proposal($t, cluster_id => $cluster->{id}, template_id => $template->{id});
$r = api($t, POST => "/api/v1/proposals/$p/open_pr");
is($r->{status}, 202, 'open_pr with the 0600 PAT → 202') or diag($r->{body});

$t->write_secret('zero-pat', '');
chmod 0600, $t->dir . '/secrets/zero-pat';
$t->psql("UPDATE config_repos SET auth_ref = 'zero-pat' WHERE id = '$repo->{id}'");
my $p2 = insert_proposal($t, cluster_id => $cluster->{id}, template_id => $template->{id});
$r = api($t, POST => "/api/v1/proposals/$p2/open_pr");
error_ok($r, 503, 'GITHUB_NOT_CONFIGURED', 'an empty PAT is refused by stat alone');
like($r->{json}{detail}{message} // '', qr/the file is empty/, '... "the file is empty"');

unlike($t->nginx_error_log, qr/ghp_u/, 'no PAT in the nginx log');
responses_ok();
$t->done;
