#!/usr/bin/perl
# The Debian packages (docs/install.md), installed on this machine and run:
# dpkg -i both from build/deb/ (./build.sh deb), check what they put where,
# migrate on install when asked, start the worker the way the packaged unit
# does (its User=, Environment=, EnvironmentFile=, ExecStartPre= and
# ExecStart=; by hand, as the machine has no running systemd), serve the API
# through the packaged module loaded with its modules-available snippet by
# nginx workers running as www-data, open a pull request end to end, then
# purge both packages.
#
# Root only, release variant only (the packages hold the release build), and
# only when the packages exist (`./build.sh test` builds them first).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use File::Path qw(make_path);
use POSIX ();

use RelyLoop::Proc qw(slurp stop_pid);
use RelyLoop::Test qw(json_decode);

BEGIN { alarm 600 }

my $ROOT = RelyLoop::Test->root;
my $DEB_DIR = $ENV{RELYLOOP_DEB_DIR} // "$ROOT/build/deb";
my $MOD_PKG = 'libnginx-mod-http-relyloop';
my $WORKER_PKG = 'relyloop-worker';
my $MODULE = '/usr/lib/nginx/modules/ngx_http_relyloop_module.so';
my $SNIPPET = '/usr/share/nginx/modules-available/mod-http-relyloop.conf';
my $UNIT = '/lib/systemd/system/relyloop-worker.service';
my $ENV_FILE = '/etc/relyloop/worker.env';
my $SECRETS = '/etc/relyloop/secrets';

plan skip_all => 'needs root (dpkg -i)' if $> != 0;
plan skip_all => 'the packages hold the release build' if ($ENV{RELYLOOP_VARIANT} // 'release') ne 'release';
my @debs = map { glob("$DEB_DIR/${_}_*.deb") } $MOD_PKG, $WORKER_PKG;
plan skip_all => "no packages in $DEB_DIR (./build.sh deb)" if @debs != 2;
for my $p ($MOD_PKG, $WORKER_PKG) {
    plan skip_all => "$p is already installed on this machine; not touching it"
        if qx{dpkg-query -W -f='\${Status}' $p 2>/dev/null} =~ /installed/;
}

sub run_ok {
    my ($name, @cmd) = @_;
    my $out = qx{@cmd 2>&1};
    ok($? == 0, $name) or diag("@cmd:\n$out");
    return $out;
}

my $installed = 0;
END {
    if ($installed) {
        unlink glob("$SECRETS/*");
        system("dpkg --purge $MOD_PKG $WORKER_PKG >/dev/null 2>&1");
    }
}

# --- install ------------------------------------------------------------------

$installed = 1;
run_ok('dpkg -i both packages', 'dpkg', '-i', @debs);
for my $p ($MOD_PKG, $WORKER_PKG) {
    like(qx{dpkg-query -W -f='\${Status}' $p}, qr/install ok installed/, "$p installed");
}

# the module: the .so, the snippet, enabled, the exact nginx ABI
ok(-f $MODULE, 'module under /usr/lib/nginx/modules');
like(slurp($SNIPPET), qr{^load_module modules/ngx_http_relyloop_module\.so;$}m,
    'modules-available snippet loads it');
is(readlink('/etc/nginx/modules-enabled/50-mod-http-relyloop.conf'), $SNIPPET,
    'enabled in /etc/nginx/modules-enabled');
my $abi = (slurp('/usr/share/nginx/src/debian/libnginx-mod.abisubstvars') =~ /^nginx:abi=(\S+)/m)[0];
like(qx{dpkg-query -W -f='\${Depends}' $MOD_PKG}, qr/(^|, )\Q$abi\E(,|$)/,
    "module depends on $abi, the ABI it was built against");

# the worker: binary, unit, user, directories, env file
ok(-x '/usr/bin/relyloop-worker', 'worker binary');
ok(-f $UNIT, 'systemd unit');
ok(-f '/usr/lib/sysusers.d/relyloop-worker.conf', 'sysusers.d entry');
ok(-f '/usr/lib/tmpfiles.d/relyloop-worker.conf', 'tmpfiles.d entry');
my @pw = getpwnam('relyloop');
ok(@pw, 'user relyloop created');
like((getgrnam('relyloop'))[3] // '', qr/\bwww-data\b/, 'www-data is in group relyloop');
for my $d ('/run/relyloop', '/var/lib/relyloop/repo-clones', $SECRETS) {
    ok(-d $d, "$d exists");
}
my @st = stat $ENV_FILE;
ok(@st && ($st[2] & 07777) == 0640 && $st[5] == (getgrnam('relyloop'))[2],
    'worker.env is 0640 root:relyloop');
like(qx{dpkg-query -W -f='\${Conffiles}' $WORKER_PKG}, qr{\Q$ENV_FILE\E}, 'worker.env is a conffile');

# --- the stack the unit points at -----------------------------------------------

my $s;
{
    require RelyLoop::PipelineStack;
    # PipelineStack starts nginx; its worker is the packaged one, started below
    $s = RelyLoop::PipelineStack->new(no_worker => 1,
        test => {nginx_user => 'www-data',
            load_module => "include $SNIPPET;"},
        nginx_directives => {relyloop_worker_socket => '/run/relyloop/worker.sock',
            relyloop_secrets_dir => $SECRETS});
}
my $t = $s->t;

# The PAT where the packaged unit's worker and nginx (group relyloop) read it.
{
    my $f = "$SECRETS/" . $s->auth_ref;
    open my $fh, '>', $f or die "$f: $!";
    print $fh $s->pat . "\n";
    close $fh;
    chown 0, scalar getgrnam('relyloop'), $f;
    chmod 0640, $f;
}

sub write_env_file {
    my (%kv) = @_;
    open my $fh, '>', $ENV_FILE or die "$ENV_FILE: $!";
    print $fh "# written by t/package_deb.t\n";
    print $fh "$_=$kv{$_}\n" for sort keys %kv;
    close $fh;
}

# --- migrate on install, only when asked -----------------------------------------

system('createdb', '-h', '127.0.0.1', '-p', $t->pg_port, '-U', 'postgres', 'relyloop_pkg') == 0
    or die 'createdb';
my $pkg_db = "host=127.0.0.1 port=@{[ $t->pg_port ]} user=postgres dbname=relyloop_pkg";
my $tables = sub {
    scalar qx{psql -X -At -h 127.0.0.1 -p @{[ $t->pg_port ]} -U postgres -d relyloop_pkg -c "SELECT count(*) FROM pg_tables WHERE tablename = 'pr_jobs'"} + 0
};
write_env_file(RELYLOOP_PG_CONNINFO => $pkg_db);
run_ok('postinst without RELYLOOP_MIGRATE_ON_INSTALL', "dpkg-reconfigure $WORKER_PKG");
is($tables->(), 0, 'no schema without the flag');
my $out = run_ok('postinst with RELYLOOP_MIGRATE_ON_INSTALL=yes',
    "RELYLOOP_MIGRATE_ON_INSTALL=yes dpkg-reconfigure $WORKER_PKG");
is($tables->(), 1, 'the schema is there with it') or diag($out);

# --- the worker, as the unit runs it ----------------------------------------------

my %unit;
for (split /\n/, slurp($UNIT)) {
    next if /^\s*(#|$)/;
    push @{$unit{$1}}, $2 if /^(\w+)=(.*)$/;
}
is($unit{User}[0], 'relyloop', 'unit runs as relyloop');
is($unit{EnvironmentFile}[0], $ENV_FILE, 'unit reads worker.env');

my ($gh_web, $gh_api) = ($s->git->web_url, $s->gh->api_url);
write_env_file(
    RELYLOOP_PG_CONNINFO => $t->conninfo,
    RELYLOOP_SECRETS_DIR => $SECRETS,
    RELYLOOP_GITHUB_WEB_URL => $gh_web,
    RELYLOOP_GITHUB_API_URL => $gh_api,
    RELYLOOP_GIT_AUTHOR_NAME => 'RelyLoop Bot',
    RELYLOOP_GIT_AUTHOR_EMAIL => 'relyloop-bot@test.invalid',
    RELYLOOP_LOCK_RETRY_DELAY => 1,
);

# The environment systemd would give the service: its own variables, the
# unit's Environment= lines, then the EnvironmentFile.
my %env = (PATH => '/usr/sbin:/usr/bin:/sbin:/bin', HOME => $pw[7], USER => 'relyloop',
    LOGNAME => 'relyloop', LANG => 'C.UTF-8');
for my $line (@{$unit{Environment} || []}) {
    $env{$1} = $2 if $line =~ /^"?(\w+)=(.*?)"?$/;
}
for (split /\n/, slurp($ENV_FILE)) {
    $env{$1} = $2 if /^\s*([A-Za-z_]\w*)=(.*)$/;
}
my @as_unit = ('setpriv', "--reuid=$unit{User}[0]", "--regid=$unit{Group}[0]", '--init-groups');

sub unit_exec {
    my ($line, $log, $wait) = @_;
    my @argv = split ' ', $line;
    my $pid = fork // die;
    if ($pid == 0) {
        %ENV = %env;
        umask 0007;    # UMask=
        open STDOUT, '>>', $log or die;
        open STDERR, '>>', $log or die;
        exec @as_unit, @argv or die "exec: $!";
    }
    return $pid unless $wait;
    waitpid($pid, 0);
    return $?;
}

my $wlog = $t->dir . '/logs/packaged-worker.log';
is(unit_exec($unit{ExecStartPre}[0], $wlog, 1), 0, "ExecStartPre ($unit{ExecStartPre}[0])")
    or diag(slurp($wlog));
my $wpid = unit_exec($unit{ExecStart}[0], $wlog, 0);
$t->{on_stop} = do {
    my $prev = $t->{on_stop};
    sub { stop_pid($wpid, 'TERM', 30); $prev->() if $prev };
};
ok(RelyLoop::Test::wait_for(sub { $t->worker_ping('/run/relyloop/worker.sock') }, 15),
    'the packaged worker answers on /run/relyloop/worker.sock') or diag(slurp($wlog));
my @sock = stat '/run/relyloop/worker.sock';
is($sock[4], $pw[2], 'the socket belongs to relyloop');

# --- the API through the packaged module -----------------------------------------

my $res = $t->http(GET => '/api/v1/health');
is($res->{status}, 200, 'health through the packaged module') or diag($res->{body});
my @nginx_workers = grep { /nginx: worker process/ } qx{ps -o user=,args= --ppid @{[ $t->nginx_pid ]}};
ok(@nginx_workers && !grep({ !/^www-data\s/ } @nginx_workers), 'nginx workers run as www-data')
    or diag(@nginx_workers);

my $repo = $s->repo('acme/search-config', files => {
    'clusters/prod/bm25.params.json' => RelyLoop::PipelineStack::params_text(),
    'templates/bm25.json' => "{}\n",
});
my $cluster = $s->cluster($repo, 'clusters/prod');
my $tmpl = $s->template(name => 'bm25', version => 3);
my $seed = $s->seed($cluster, $tmpl);
my $row = $s->open_and_wait($seed->{proposal_id});
is($row->{status}, 'pr_opened', 'open_pr: the packaged worker opened the pull request')
    or diag(slurp($wlog));
is(scalar($s->gh->pulls), 1, 'one PR on the fake GitHub');
ok(-d '/var/lib/relyloop/repo-clones' && glob('/var/lib/relyloop/repo-clones/*'),
    'the clone cache is the unit\'s');

$s->t->stop_all;
unlike(slurp($wlog), qr/\Q@{[ $s->pat ]}\E/, 'the PAT is not in the worker log');

# --- remove, purge ----------------------------------------------------------------

unlink glob("$SECRETS/*");
run_ok('dpkg --remove', 'dpkg', '--remove', $MOD_PKG, $WORKER_PKG);
ok(!-e $MODULE, 'module removed');
ok(!-e '/etc/nginx/modules-enabled/50-mod-http-relyloop.conf', 'snippet disabled');
ok(-e $ENV_FILE, 'conffile kept on remove');
run_ok('dpkg --purge', 'dpkg', '--purge', $MOD_PKG, $WORKER_PKG);
$installed = 0;
ok(!-e $ENV_FILE && !-e '/etc/relyloop', '/etc/relyloop gone on purge');
ok(!-e '/var/lib/relyloop', '/var/lib/relyloop gone on purge');
ok(!-e '/etc/nginx/modules-enabled/50-mod-http-relyloop.conf.removed', 'no leftover link');

$s->done;
