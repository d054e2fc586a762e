#!/usr/bin/perl
# The token sweep (docs/worker.md step 4, docs/security.md): a distinctive PAT — deliberately NOT
# shaped like a GitHub token, so the redaction regexes cannot hide a slip —
# drives a success and every failure mode the pipeline has, while a sampler
# reads /proc/<pid>/cmdline and /proc/<pid>/environ of every process. Then the
# PAT (and its Basic-auth base64 form) must appear nowhere: worker and nginx
# logs, any DB row (pg_dump), any file under the clone root (.git/config
# included), any object/ref/reflog of the bare repositories, any request the
# fake GitHub received except its Authorization header — which must carry it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Find;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep);

use RelyLoop::PipelineStack;
use RelyLoop::Fixtures qw(sql_quote sql_json);

my $PAT = 'RLPAT-' . join('', map { sprintf '%02x', int rand 256 } 1 .. 20) . '-sweep';
my $B64 = encode_base64("x-access-token:$PAT", '');
# The webhook secret (docs/worker.md, "Webhook registration"): the same sweep;
# GitHub may see it only in the body of the create-hook call.
my $HOOK = 'RLHOOK-' . join('', map { sprintf '%02x', int rand 256 } 1 .. 20) . '-sweep';
my @NEEDLES = ($PAT, $B64, $HOOK);

# --- the /proc sampler --------------------------------------------------------------------
my $hits_file = "/tmp/relyloop-token-sweep-$$.hits";
unlink $hits_file;
my $sampler = fork // die "fork: $!";
if ($sampler == 0) {
    my %seen;
    my $rounds = 0;
    $SIG{TERM} = sub {
        open my $fh, '>>', $hits_file;
        print $fh "#sampled " . scalar(keys %seen) . " processes in $rounds rounds\n";
        close $fh;
        POSIX::_exit(0);
    };
    while (1) {
        $rounds++;
        opendir(my $dh, '/proc') or POSIX::_exit(1);
        for my $pid (grep { /^\d+$/ && $_ != $$ } readdir $dh) {
            for my $what (qw(cmdline environ)) {
                open my $fh, '<:raw', "/proc/$pid/$what" or next;
                local $/;
                my $data = <$fh> // '';
                close $fh;
                $seen{$pid} //= do {
                    open my $c, '<', "/proc/$pid/comm"; my $n = <$c> // '?'; chomp $n; $n };
                for my $needle (@NEEDLES) {
                    next if index($data, $needle) < 0;
                    open my $out, '>>', $hits_file;
                    print $out "$pid $seen{$pid} $what\n";
                    close $out;
                }
            }
        }
        closedir $dh;
        sleep 0.02;
    }
}

my $s = RelyLoop::PipelineStack->new(pat => $PAT,
    worker_args => ['--lease-ttl', 3, '--webhook-url', 'https://rl.tokens.test/webhooks/github']);
my $t = $s->t;
my $git = $s->git;
my $gh = $s->gh;
my $REPO = 'acme/tokens';
my $params = RelyLoop::PipelineStack::params_text();
my $repo = $s->repo($REPO, files => {
    'clusters/prod/bm25.params.json' => $params,
    'clusters/broken/bm25.params.json' => "nope\n",
    'clusters/linked/x' => "x\n",
}, symlinks => {'escape' => '/tmp', 'clusters/linked/bm25.params.json' => '../prod/bm25.params.json'});
my $cluster = $s->cluster($repo, 'clusters/prod');
my $tmpl = $s->template(name => 'bm25');

sub run_case {
    my ($name, $setup, $expect, $undo, %o) = @_;
    my $p = $o{manual} ? {proposal_id => $s->manual($cluster, $tmpl, {tie_breaker => {to => 0.9}})}
        : $s->study($cluster, $tmpl, %{$o{study} || {}});
    $setup->($p) if $setup;
    my $row = $s->open_and_wait($p->{proposal_id}, 60);
    if ($expect eq 'pr_opened') {
        is($row->{status}, 'pr_opened', "$name: opened");
    } else {
        like($row->{pr_open_error} // '', qr/^\Q$expect\E: /, "$name: $expect") or diag(explain $row);
    }
    $undo->($p) if $undo;
    return $row;
}

sub cfg { my ($v) = @_; $t->psql('UPDATE clusters SET config_path = ' . sql_quote($v)
    . ' WHERE id = ' . sql_quote($cluster->{id})) }

run_case('study success', undef, 'pr_opened');
run_case('manual success', undef, 'pr_opened', undef, manual => 1);
run_case('escaping symlink', sub { cfg('escape') }, 'CONFIG_PATH_INVALID', sub { cfg('clusters/prod') });
run_case('symlinked file', sub { cfg('clusters/linked') }, 'CONFIG_PATH_INVALID', sub { cfg('clusters/prod') });
run_case('not JSON', sub { cfg('clusters/broken') }, 'PARAMS_FILE_NOT_FOUND', sub { cfg('clusters/prod') });
run_case('undeclared', undef, 'PARAM_NOT_IN_TEMPLATE', undef,
    study => {config_diff => {nope => {to => 1}}});
run_case('no changes', undef, 'NO_CHANGES', undef,
    study => {config_diff => {'title.boost' => {to => 1.0}}});
run_case('foreign branch', sub { $git->git($REPO, 'branch', "relyloop/study-$_[0]{study_id}", 'main') },
    'BRANCH_EXISTS');
{
    my $hook = $git->bare($REPO) . '/hooks/pre-receive';
    run_case('push declined', sub {
        open my $fh, '>', $hook or die;
        print $fh "#!/bin/sh\necho declined >&2\nexit 1\n";
        close $fh;
        chmod 0755, $hook;
    }, 'PUSH_FAILED', sub { unlink $hook });
}
run_case('server refuses the PAT', sub { $git->set_token('some-other-token') }, 'CLONE_FAILED',
    sub { $git->set_token($PAT) });
run_case('unknown repo', sub {
    $t->psql('UPDATE config_repos SET repo_url = ' . sql_quote($git->repo_url('acme/missing'))
        . ' WHERE id = ' . sql_quote($repo->{id}));
}, 'CLONE_FAILED', sub {
    $t->psql('UPDATE config_repos SET repo_url = ' . sql_quote($git->repo_url($REPO))
        . ' WHERE id = ' . sql_quote($repo->{id}));
});
run_case('gitlab URL', sub {
    $t->psql("UPDATE config_repos SET repo_url = 'https://gitlab.com/acme/tokens' WHERE id = "
        . sql_quote($repo->{id}));
}, 'UNSUPPORTED_PROVIDER', sub {
    $t->psql('UPDATE config_repos SET repo_url = ' . sql_quote($git->repo_url($REPO))
        . ' WHERE id = ' . sql_quote($repo->{id}));
});
my $echo = run_case('GitHub echoes the token', sub {
    $gh->script(create_pull => {status => 401, body => {message => "Bad credentials: $PAT is revoked"}});
}, 'GITHUB_API_FAILED');
like($echo->{pr_open_error}, qr/Bad credentials: \[REDACTED\] is revoked/, 'echoed token redacted');
run_case('comment echoes the token', sub {
    $gh->script(create_comment => map { {status => 422, body => {message => "nope $PAT"}} } 1 .. 2);
}, 'pr_opened');
run_case('5xx with the token', sub {
    $gh->script(create_pull => map { {status => 503, body => {message => "down ($PAT)"}} } 1 .. 3);
}, 'GITHUB_API_FAILED');

# A job that times out mid-request, then resumes.
$s->restart_worker(job_timeout => 2);
run_case('job timeout', sub { $gh->script(create_pull => {delay => 4, passthrough => JSON::PP::true}) },
    'JOB_TIMEOUT');
$s->restart_worker;

# Webhook registration: created, then failures whose GitHub answers echo the
# secret.
$t->write_secret('tokens-hook', "$HOOK\n");
$t->psql("UPDATE config_repos SET webhook_secret_ref = 'tokens-hook' WHERE id = "
    . sql_quote($repo->{id}));
sub hook_job {
    my ($want) = @_;
    my $id = $t->psql(q{INSERT INTO webhook_jobs (id, config_repo_id, state) VALUES
        (gen_random_uuid()::text, } . sql_quote($repo->{id}) . q{, 'queued') RETURNING id});
    my $state = '';
    RelyLoop::Test::wait_for(sub {
        $state = $t->psql("SELECT state FROM webhook_jobs WHERE id = '$id'");
        $state =~ /^(succeeded|failed)$/ }, 30);
    is($state, $want, "webhook job: $want");
}
$gh->script(create_hook => {status => 422, body => {message => "secret $HOOK rejected"}});
hook_job('failed');
$gh->script(list_hooks => {status => 400, body => {message => "no ($HOOK)"}});
hook_job('failed');
hook_job('succeeded');
is(scalar(grep { $_->{route} eq 'create_hook' } $gh->requests), 2, 'two creates');

# Done: stop everything that writes logs, then stop sampling.
$t->stop_nginx('QUIT');
$t->stop_worker('worker');
kill 'TERM', $sampler;
waitpid($sampler, 0);

# --- the sweep ----------------------------------------------------------------------------
sub clean_ok {
    my ($what, $text) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @found = grep { index($text, $_) >= 0 } @NEEDLES;
    ok(!@found, "no token in $what") or diag("found in $what");
}

my $hits = $t->slurp($hits_file);
unlink $hits_file;
my ($sampled) = $hits =~ /^#sampled (\d+)/m;
cmp_ok($sampled // 0, '>', 10, "the sampler saw processes ($sampled)");
my @proc_hits = grep { !/^#/ } split /\n/, $hits;
is_deeply(\@proc_hits, [], 'no token in any /proc/<pid>/cmdline or environ');

my $logs = '';
find({no_chdir => 1, wanted => sub { $logs .= $t->slurp($_) if -f $_ && /\.log$|\/asan-|\/ubsan-/ }},
    $t->dir . '/logs', $t->dir . '/nginx/logs', $t->dir . '/git-server/logs', $t->dir . '/fake-github');
ok(length $logs > 1000, 'logs were written');
clean_ok('the worker, nginx, git server and fake GitHub logs', $logs);
like($logs, qr/"event":"pr_open_failed"/, 'the worker log has the failures');

$t->pg_ctl_start unless $t->{pg_running};
my $dump = qx{pg_dump -h 127.0.0.1 -p @{[$t->pg_port]} -U postgres --data-only relyloop 2>&1};
is($?, 0, 'pg_dump ran');
like($dump, qr/GITHUB_API_FAILED/, 'the dump has the error rows');
clean_ok('any database row', $dump);

my ($files, $clone_bytes) = (0, '');
find({no_chdir => 1, wanted => sub {
    return if -l $_ || !-f $_;
    $files++;
    $clone_bytes .= $t->slurp($_);
}}, $t->dir . '/clones');
cmp_ok($files, '>', 10, "clone files read ($files)");
clean_ok('any file under the clone root (.git/config included)', $clone_bytes);

for my $name ($REPO, 'acme/missing') {
    my $bare = $git->bare($name);
    next unless -d $bare;
    my $objects = qx{git --git-dir=$bare cat-file --batch-all-objects --batch 2>&1};
    my $refs = qx{git --git-dir=$bare for-each-ref 2>&1};
    my ($meta) = ('');
    find({no_chdir => 1, wanted => sub { $meta .= $t->slurp($_) if -f $_ && !/\/objects\// }}, $bare);
    ok(length $objects > 1000, "$name: objects read");
    clean_ok("$name: commits, trees, blobs, refs, reflogs, config", $objects . $refs . $meta);
}

my @reqs = $gh->requests;
cmp_ok(scalar @reqs, '>', 10, 'fake GitHub got requests');
my ($bodies, $bad_auth) = ('', 0);
my $hook_bodies = 0;
for my $r (@reqs) {
    my $body = $r->{body} // '';
    if ($r->{route} eq 'create_hook') {
        my $cfg = eval { JSON::PP->new->decode($body)->{config} } || {};
        $hook_bodies++ if ($cfg->{secret} // '') eq $HOOK;
        $body =~ s/\Q$HOOK\E//g;
    }
    $bodies .= join "\n", $r->{method}, $r->{path}, $r->{raw_query} // '', $body,
        map { "$_: $r->{headers}{$_}" } grep { $_ ne 'authorization' } sort keys %{$r->{headers}};
    $bad_auth++ unless ($r->{headers}{authorization} // '') eq "Bearer $PAT";
}
clean_ok('request paths, queries, bodies and other headers at GitHub', $bodies);
is($hook_bodies, 2, 'the webhook secret went to GitHub in the create bodies only');
is($bad_auth, 0, 'every GitHub request carried the PAT in its Authorization header');

$s->done;
