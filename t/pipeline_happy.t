#!/usr/bin/perl
# The PR pipeline end to end (docs/worker.md, Pipeline steps): open_pr through nginx → worker →
# libgit2 against a git smart-HTTP server that requires the PAT → fake GitHub.
# A study-backed proposal (two commits: params edit, chart), a manual one (one
# commit, no chart, no comment), and the study link only with --base-url.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use RelyLoop::PipelineStack;
use RelyLoop::Test qw(json_decode);

my $s = RelyLoop::PipelineStack->new;
my $t = $s->t;
my $git = $s->git;
my $gh = $s->gh;
my $REPO = 'acme/search-config';
my $params = RelyLoop::PipelineStack::params_text();

my $repo = $s->repo($REPO, files => {
    'clusters/prod/bm25.params.json' => $params,
    'clusters/staging/bm25.params.json' => $params,
    'templates/bm25.json' => "{}\n",
});
my $cluster = $s->cluster($repo, 'clusters/prod');
my $tmpl = $s->template(name => 'bm25', version => 3);
my $base_sha = $git->git($REPO, 'rev-parse', 'main');
chomp $base_sha;

# --- study-backed --------------------------------------------------------------

my $seed = $s->seed($cluster, $tmpl);
my ($pid, $sid) = @{$seed}{qw(proposal_id study_id)};
my $study_name = $t->psql("SELECT name FROM studies WHERE id = '$sid'");
my $row = $s->open_and_wait($pid);
my $branch = "relyloop/study-$sid";

is($row->{status}, 'pr_opened', 'proposal is pr_opened');
is($row->{pr_state}, 'open', 'pr_state open');
is($row->{pr_open_error}, undef, 'no pr_open_error');
my @pulls = $gh->pulls;
is(scalar @pulls, 1, 'one PR on the fake');
is($row->{pr_url}, $pulls[0]{html_url}, 'pr_url is the html_url GitHub answered');
like($row->{pr_url}, qr{^\Q@{[$git->web_url]}\E/acme/search-config/pull/\d+$}, 'pr_url shape');
is($s->job($pid)->{state}, 'succeeded', 'job succeeded');

# The branch: exactly two commits on top of the base, params edit then chart.
is($git->git($REPO, 'rev-list', '--count', "main..$branch"), "2\n", 'two commits on top of main');
is($git->git($REPO, 'merge-base', 'main', $branch), "$base_sha\n", 'based on pr_base_branch');
is($git->git($REPO, 'diff', '--name-only', 'main', "$branch~1"),
    "clusters/prod/bm25.params.json\n", 'first commit touches only the params file');
my $diff = $git->git($REPO, 'diff', '-U0', 'main', "$branch~1");
my @changed = grep { /^[-+](?![-+])/ } split /\n/, $diff;
is_deeply(\@changed, ['-  "title.boost": 1.0,', '+  "title.boost": 2.5,'],
    'the diff is the changed value line only');
(my $expect = $params) =~ s/"title\.boost": 1\.0/"title.boost": 2.5/;
is($git->git($REPO, 'show', "$branch~1:clusters/prod/bm25.params.json"), $expect,
    'every other byte of the params file unchanged');
is($git->git($REPO, 'diff', '--name-only', "$branch~1", $branch),
    ".relyloop/digest-charts/$sid.png\n", 'second commit adds only the chart');
my $png = $git->git($REPO, 'cat-file', 'blob', "$branch:.relyloop/digest-charts/$sid.png");
is_deeply([RelyLoop::PipelineStack::png_size($png)], [800, 600], 'chart PNG is 800x600');
{
    my $f = $t->dir . '/chart.png';
    open my $fh, '>:raw', $f or die;
    print $fh $png;
    close $fh;
    like(qx{file -b $f}, qr/PNG image data, 800 x 600/, 'file(1) agrees');
}
is($git->git($REPO, 'log', '--format=%an <%ae>|%cn <%ce>', "main..$branch"),
    "RelyLoop Bot <relyloop-bot\@test.invalid>|RelyLoop Bot <relyloop-bot\@test.invalid>\n" x 2,
    'author = committer = the configured bot');
my $msg1 = $git->git($REPO, 'log', '-1', '--format=%B', "$branch~1");
utf8::decode($msg1);
like($msg1, qr/\Arelevance: tune bm25 params \(study \Q$sid\E\)\n\n/, 'commit subject');
like($msg1, qr/^Template: bm25 v3$/m, 'commit names the template and version');
like($msg1, qr/^Metric: ndcg\@10  0\.412 \x{2192} 0\.487 \(\+18\.2%\)$/m, 'metric line')
    or diag($msg1);
like($msg1, qr/^Params:\n  title\.boost: 1\.0 \x{2192} 2\.5$/m, 'params block');
like($msg1, qr/^Trial count: 2$/m, 'trial count');
like($msg1, qr/\n\nRelyloop-Proposal: \Q$pid\E\n*\z/, 'trailer on the params commit');
like($git->git($REPO, 'log', '-1', '--format=%B', $branch),
    qr/\Arelevance: parameter-importance chart for study \Q$sid\E\n\nRelyloop-Proposal: \Q$pid\E\n*\z/,
    'chart commit message and trailer');

# What GitHub got.
my @creates = $gh->requests(route => 'create_pull');
is(scalar @creates, 1, 'one PR create');
my $req = $creates[0]{json};
is($req->{title}, "RelyLoop: $study_name", 'PR title');
is($req->{head}, $branch, 'PR head');
is($req->{base}, 'main', 'PR base');
my $body = $req->{body};
like($body, qr/\A## RelyLoop relevance proposal\n/, 'body heading');
like($body, qr/^- \*\*Study:\*\* \Q$study_name\E \(`\Q$sid\E`\)$/m, 'study name and id, no link');
unlike($body, qr{/studies/}, 'no study link without --base-url');
like($body, qr/^- \*\*Cluster:\*\* \Q$cluster->{name}\E$/m, 'cluster');
like($body, qr/^- \*\*Template:\*\* bm25 v3$/m, 'template with version');
like($body, qr/^\| ndcg\@10 \| 0\.412 \| 0\.487 \| \+18\.2% \|$/m, 'metrics table');
like($body, qr/^\| title\.boost \| 1\.0 \| 2\.5 \|$/m, 'config diff table');
like($body, qr/^### Top trials\n\n\| Trial \| Params \| Metric \|\n\| --- \| --- \| --- \|\n\| \d+ \| \{"title\.boost":2\.5\} \| 0\.487 \|\n\| \d+ \| \{"title\.boost":0\.8\} \| 0\.412 \|$/m,
    'top trials, best first');
like($body, qr/^### Suggested follow-ups\n\n- .+\n- .+\n/m, 'two follow-ups');
like($body, qr/proposal `\Q$pid\E`\.\n\z/, 'footer names the proposal');
my $h = $creates[0]{headers};
is($h->{authorization}, 'Bearer ' . $s->pat, 'Authorization: Bearer <PAT>');
is($h->{accept}, 'application/vnd.github+json', 'Accept');
is($h->{'x-github-api-version'}, '2022-11-28', 'X-GitHub-Api-Version');
like($h->{'user-agent'}, qr{^relyloop-pr/\d+\.\d+\.\d+}, 'User-Agent');

my @comments = $gh->requests(route => 'create_comment');
is(scalar @comments, 1, 'one comment');
my $number = $pulls[0]{number};
is($comments[0]{path}, "/repos/acme/search-config/issues/$number/comments", 'on the PR');
is($comments[0]{json}{body},
    '![Parameter importance](' . $git->web_url
    . "/acme/search-config/raw/refs/heads/$branch/.relyloop/digest-charts/$sid.png)",
    'chart comment links the raw/refs/heads URL');

my @complete = $s->events('pr_open_complete', $pid);
is(scalar @complete, 1, 'pr_open_complete logged');
is($complete[0]{branch}, $branch, 'event names the branch');
is($complete[0]{pr_url}, $row->{pr_url}, 'event names the PR');
is($complete[0]{study_id}, $sid, 'event names the study');
is($complete[0]{config_repo_id}, $repo->{id}, 'event names the config repo');
like($complete[0]{duration_ms}, qr/^\d+$/, 'event has duration_ms');

# The clone is plain: no credentials in .git/config, HEAD detached at the base.
my $clone = $t->dir . "/clones/$repo->{id}";
ok(-d "$clone/.git", 'persistent clone at <clone_root>/<config_repo_id>');
my $config = $t->slurp("$clone/.git/config");
like($config, qr{url = \Q@{[$git->web_url]}\E/acme/search-config\.git}, 'origin is the plain URL');
unlike($config, qr/x-access-token|github_pat_|\@127/, 'no credentials in .git/config');

# --- manual --------------------------------------------------------------------

$gh->reset(requests => 1);
my $mid = $s->manual($cluster, $tmpl, {tie_breaker => {from => 0.3, to => 0.45},
    'fuzziness.max_expansions' => {to => 50}});
$row = $s->open_and_wait($mid);
my $mbranch = "relyloop/proposal-$mid";
is($row->{status}, 'pr_opened', 'manual proposal opened');
is($git->git($REPO, 'rev-list', '--count', "main..$mbranch"), "1\n", 'manual: one commit');
is($git->git($REPO, 'diff', '--name-only', 'main', $mbranch), "clusters/prod/bm25.params.json\n",
    'manual: no chart');
is($git->git($REPO, 'show', "$mbranch:clusters/prod/bm25.params.json"),
    qq({\n  "title.boost": 1.0,\n  "tie_breaker": 0.45,\n  "operator": "OR",\n)
    . qq(  "field_boosts": {\n    "title": 2.0,\n    "body": 0.5\n  },\n)
    . qq(  "fuzziness": {\n    "max_expansions": 50\n  }\n}\n),
    'manual: value changed in place, new dotted key nested with the file indentation');
like($git->git($REPO, 'log', '-1', '--format=%B', $mbranch),
    qr/\Arelevance: tune bm25 params \(manual proposal \Q$mid\E\)\n\n.*\n\nRelyloop-Proposal: \Q$mid\E\n*\z/s,
    'manual commit message');
@creates = $gh->requests(route => 'create_pull');
is(scalar @creates, 1, 'manual: one PR create');
is($creates[0]{json}{title}, 'RelyLoop manual proposal ' . substr($mid, 0, 8), 'manual title');
like($creates[0]{json}{body}, qr/\A## RelyLoop manual proposal\n\nThis proposal was entered by hand: no study metrics exist for it\.\n\n### Config diff\n/,
    'manual body');
unlike($creates[0]{json}{body}, qr/### (Metrics|Top trials)/, 'manual: no study sections');
is(scalar $gh->requests(route => 'create_comment'), 0, 'manual: no comment');

# A manual proposal with the flat metric_delta its clients send: served back
# as given, rendered in the PR body.
$gh->reset(requests => 1);
my $flat = {metric => 'ndcg@10', baseline => 0.41, achieved => 0.47, delta_pct => 14.6};
my $fid = $s->manual($cluster, $tmpl, {tie_breaker => {from => 0.3, to => 0.5}},
    metric_delta => $flat);
is_deeply(json_decode(scalar $t->psql("SELECT metric_delta::text FROM proposals WHERE id = '$fid'")), $flat,
    'flat metric_delta stored as given');
$row = $s->open_and_wait($fid);
is($row->{status}, 'pr_opened', 'manual proposal with a flat metric_delta opened');
@creates = $gh->requests(route => 'create_pull');
is(scalar @creates, 1, 'flat metric_delta: one PR create');
like($creates[0]{json}{body} // '', qr/\A## RelyLoop manual proposal\n\nThis proposal was entered by hand\.\n\n### Metrics\n\n\| Metric \| Baseline \| Achieved \| \x{394}% \|\n\| --- \| --- \| --- \| --- \|\n\| ndcg\@10 \| 0\.41 \| 0\.47 \| \+14\.6% \|\n\n### Config diff\n/,
    'flat metric_delta rendered in the PR body');

# --- the study link with --base-url ---------------------------------------------

$s->restart_worker(base_url => 'https://relyloop.example.com/');
$gh->reset(requests => 1);
my $seed2 = $s->seed($cluster, $tmpl);
$row = $s->open_and_wait($seed2->{proposal_id});
is($row->{status}, 'pr_opened', 'second study opened');
@creates = $gh->requests(route => 'create_pull');
like($creates[0]{json}{body},
    qr{^- \*\*Study:\*\* .+ \(`\Q$seed2->{study_id}\E`\): https://relyloop\.example\.com/studies/\Q$seed2->{study_id}\E$}m,
    'study link with --base-url');
is($git->git($REPO, 'merge-base', 'main', "relyloop/study-$seed2->{study_id}"), "$base_sha\n",
    'reused clone, branch again based on main');
ok(!$s->events('pr_open_clone_reset'), 'the clone was reused, never reset');

# open_pr again on an opened proposal: the API refuses, nothing new happens.
is($s->open_pr($pid)->{status}, 409, 'opened proposal: 409');

$s->done;
