#!/usr/bin/perl
# What GitHub answers is checked before it is stored (docs/runbook.md,
# GITHUB_API_FAILED): a pull request's html_url becomes pr_url only when it is
# <web_url>/<owner>/<repo>/pull/<number>; anything else fails the job cleanly
# and stores nothing. And names echoed into the PR never @mention anyone
# (docs/worker.md, "Mentions").

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use RelyLoop::PipelineStack;

# Hard timeout for the whole file.
$SIG{ALRM} = sub { BAIL_OUT('t/pipeline_pr_url.t: hard timeout (300 s)') };
alarm 300;

my $s = RelyLoop::PipelineStack->new;
my $gh = $s->gh;
my $git = $s->git;
my $REPO = 'acme/pr-url-checks';
my $repo = $s->repo($REPO, files => {
    'clusters/prod/bm25.params.json' => RelyLoop::PipelineStack::params_text()});
my $cluster = $s->cluster($repo, 'clusters/prod');
my $tmpl = $s->template(name => 'bm25');
my $web = $git->web_url;                     # http://127.0.0.1:PORT/git
(my $https = $web) =~ s{^http://}{https://};

my $p = $s->study($cluster, $tmpl);
my $id = $p->{proposal_id};
my $head = "relyloop/study-$p->{study_id}";

for my $case (
    ['javascript: URL', 'javascript:alert(1)'],
    ['other scheme (https for an http web URL)', "$https/$REPO/pull/1"],
    ['plain http to another host', "http://github.com/$REPO/pull/1"],
    ['another host', "http://evil.example/git/$REPO/pull/1"],
    ['another repo', "$web/acme/other/pull/1"],
    ['another number', "$web/$REPO/pull/2"],
    ['a fragment after it', "$web/$REPO/pull/1#x"],
) {
    my ($name, $url) = @$case;
    # GitHub "creates" the PR (answer only; the fake keeps no PR, so the next
    # run creates again and gets the next scripted answer).
    $gh->script(create_pull => {status => 201, body => {number => 1, html_url => $url,
        state => 'open', head => {ref => $head}, base => {ref => 'main'}}});
    my $row = $s->open_and_wait($id);
    is($row->{status}, 'pending', "$name: proposal still pending");
    is($row->{pr_url}, undef, "$name: nothing stored in pr_url");
    like($row->{pr_open_error} // '',
        qr/^GITHUB_API_FAILED: malformed pull request: html_url is not \Q$web\E\/\Q$REPO\E\/pull\/1 /,
        "$name: failed cleanly with GITHUB_API_FAILED") or diag(explain $row);
    is($s->job($id)->{state}, 'failed', "$name: the job failed");
}
my @comments = $gh->requests(route => 'create_comment');
is(scalar @comments, 0, 'no comment was posted on a PR whose URL was refused');

# The default answer of the fake: a well-formed URL → opened.
my $row = $s->open_and_wait($id);
is($row->{status}, 'pr_opened', 'a well-formed html_url is stored');
like($row->{pr_url} // '', qr{^\Q$web/$REPO\E/pull/\d+$}, 'pr_url is the PR on the web URL');
is($row->{pr_open_error}, undef, 'the error is cleared');

# --- @mentions in echoed names ----------------------------------------------
{
    my $m = $s->study($cluster, $tmpl, name => 'tune for @octocat and @acme/search-team');
    my $r = $s->open_and_wait($m->{proposal_id});
    is($r->{status}, 'pr_opened', 'mentions: opened');
    my ($c) = grep { ($_->{json}{head} // '') eq "relyloop/study-$m->{study_id}" }
        $gh->requests(route => 'create_pull');
    my ($title, $body) = ($c->{json}{title}, $c->{json}{body});
    is($title, 'RelyLoop: tune for `@octocat` and `@acme/search-team`', 'title: mentions in code spans');
    like($body, qr/\*\*Study:\*\* tune for ``\@octocat`` and ``\@acme\/search-team`` \(`/,
        'body: mentions in code spans longer than the body\'s own');
    unlike($body =~ s/(`+)\@[A-Za-z0-9\/-]+\1//gr, qr/(?<![A-Za-z0-9])\@[A-Za-z0-9]/,
        'body: no @name outside a code span');
    my $log = `git --git-dir=${\ $git->repos}/$REPO.git log --format=%B main..relyloop/study-$m->{study_id} 2>&1`;
    unlike($log =~ s/(`+)\@[A-Za-z0-9\/-]+\1//gr, qr/(?<![A-Za-z0-9])\@[A-Za-z0-9]/,
        'commit message: no @name outside a code span') or diag($log);
    like($body, qr/\| ndcg\@10 \|/, 'an @ after a letter (metric name) is left alone');
}

alarm 0;
$s->done;
