#!/usr/bin/perl
# GitHub REST behaviour of the pipeline against the fake (docs/worker.md, Pipeline steps 10–11):
# the retry policy (5xx, 429 Retry-After, 403 rate limits, terminal 4xx), the
# chart comment and its fallbacks (comment failure → importance table; no chart
# → table or "Parameter importance unavailable"), never fatal.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;

use RelyLoop::PipelineStack;

my $s = RelyLoop::PipelineStack->new;
my $t = $s->t;
my $git = $s->git;
my $gh = $s->gh;
my $REPO = 'acme/github-behaviour';
my $repo = $s->repo($REPO, files => {
    'clusters/prod/bm25.params.json' => RelyLoop::PipelineStack::params_text()});
my $cluster = $s->cluster($repo, 'clusters/prod');
my $tmpl = $s->template(name => 'bm25');

sub creates_for {
    my ($p) = @_;
    return grep { ($_->{json}{head} // '') eq "relyloop/study-$p->{study_id}" }
        $gh->requests(route => 'create_pull');
}

sub comments_for {
    my ($pr_url) = @_;
    my ($n) = $pr_url =~ m{/pull/(\d+)$};
    return grep { $_->{path} =~ m{/issues/\Q$n\E/comments$} } $gh->requests(route => 'create_comment');
}

sub opened {
    my ($p, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $row = $s->open_and_wait($p->{proposal_id});
    is($row->{status}, 'pr_opened', "$name: opened") or diag(explain $row);
    return $row;
}

# --- 5xx twice, then 201: three calls, backoff 1 s then 2 s ---------------------------
{
    my $p = $s->study($cluster, $tmpl);
    $gh->script(create_pull => {status => 502, body => {message => 'Bad Gateway'}},
        {status => 503, body => {message => 'Service Unavailable'}});
    opened($p, '5xx twice');
    my @c = creates_for($p);
    is(scalar @c, 3, '5xx twice then 201: three create calls');
    is_deeply([map { $_->{status} } @c], [502, 503, 201], 'statuses seen');
    my @retries = $s->events('pr_open_github_retry', $p->{proposal_id});
    is(scalar @retries, 2, 'two retries logged');
    # the backoff the worker chose, from its log: not a measured time
    is_deeply([map { [$_->{attempt}, $_->{duration_ms}] } @retries], [[1, 1000], [2, 2000]],
        'backoff 1 s after the first call, 2 s after the second');
}

# --- three 5xx: final, GITHUB_API_FAILED with GitHub's message --------------------------
{
    my $p = $s->study($cluster, $tmpl);
    $gh->script(create_pull => map { {status => 500, body => {message => "boom $_"}} } 1 .. 3);
    my $row = $s->open_and_wait($p->{proposal_id});
    is($row->{pr_open_error}, 'GITHUB_API_FAILED: 500: boom 3', 'three 5xx: the last message');
    is(scalar(creates_for($p)), 3, 'no fourth attempt');
    opened($p, 'after three 5xx');
}

# --- 429 with Retry-After -----------------------------------------------------------------
{
    my $p = $s->study($cluster, $tmpl);
    $gh->script(create_pull => {status => 429, headers => {'Retry-After' => 2},
        body => {message => 'API rate limit exceeded'}});
    opened($p, '429');
    my @c = creates_for($p);
    is(scalar @c, 2, '429 then 201');
    my @retries = $s->events('pr_open_github_retry', $p->{proposal_id});
    is_deeply([map { [$_->{duration_ms}, $_->{message}] } @retries],
        [[2000, 'rate limited (429)']], 'one retry, after Retry-After: 2 s');
}

# --- 403 rate limits: x-ratelimit-remaining 0, secondary limit, abuse ------------------------
{
    my $p = $s->study($cluster, $tmpl);
    $gh->script(create_pull =>
        {status => 403, headers => {'x-ratelimit-remaining' => 0, 'x-ratelimit-reset' => time + 2},
            body => {message => 'API rate limit exceeded for installation'}},
        {status => 403, body => {message => 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.'}});
    opened($p, '403 limits');
    my @c = creates_for($p);
    is(scalar @c, 3, 'primary limit, secondary limit, then 201');
    my @retries = $s->events('pr_open_github_retry', $p->{proposal_id});
    is_deeply([map { $_->{message} } @retries], ['rate limited (403, x-ratelimit-remaining: 0)',
        'secondary rate limit (403)'], 'two retries: the primary limit, then the secondary one');
    # x-ratelimit-reset is 1-2 s ahead (whole seconds); the worker waits at least 1 s
    my $until_reset = $retries[0]{duration_ms} // -1;
    ok($until_reset >= 1000 && $until_reset <= 2000, 'the first waits until x-ratelimit-reset')
        or diag("planned wait $until_reset ms");
    is($retries[1]{duration_ms}, 2000, 'the secondary limit backs off like a 5xx (attempt 2: 2 s)');

    my $p2 = $s->study($cluster, $tmpl);
    $gh->script(create_pull => {status => 403, body => {message => 'Resource not accessible by integration'}});
    my $row = $s->open_and_wait($p2->{proposal_id});
    is($row->{pr_open_error}, 'GITHUB_API_FAILED: 403: Resource not accessible by integration',
        'plain 403 is terminal');
    is(scalar(creates_for($p2)), 1, 'no retry of a plain 403');
    opened($p2, 'after 403');
}

# --- 422 "already exists": adopt the open PR --------------------------------------------------
{
    my $p = $s->study($cluster, $tmpl);
    # the first attempt creates the PR but its answer is a 502; the retry gets
    # 422 "already exists" → the open PR of the head is adopted
    $gh->script(create_pull => {status => 502, apply => JSON::PP::true, body => {message => 'lost'}});
    my $row = opened($p, 'lost answer');
    my @mine = grep { $_->{head}{ref} eq "relyloop/study-$p->{study_id}" } $gh->pulls;
    is(scalar @mine, 1, 'one PR exists');
    is($row->{pr_url}, $mine[0]{html_url}, 'adopted it');
}

# --- comments: chart comment fails → table; table fails too → logged -------------------------
{
    my $p = $s->study($cluster, $tmpl, importance => {'title.boost' => 0.61, tie_breaker => 0.2,
        operator => 0.1, 'field_boosts.title' => 0.05, 'field_boosts.body' => 0.03, x => 0.01,
        y => 0.001});
    $gh->script(create_comment => map { {status => 500, body => {message => 'nope'}} } 1 .. 3);
    my $row = opened($p, 'chart comment fails');
    my @cm = comments_for($row->{pr_url});
    is(scalar @cm, 4, 'three chart-comment attempts, then the table');
    like($cm[0]{json}{body}, qr/^!\[Parameter importance\]\(/, 'first the chart');
    is($cm[3]{json}{body}, "### Parameter importance\n\n| Param | Importance |\n| --- | --- |\n"
        . "| title.boost | 0.61 |\n| tie_breaker | 0.2 |\n| operator | 0.1 |\n"
        . "| field_boosts.title | 0.05 |\n| field_boosts.body | 0.03 |\n", 'top-5 table');
    ok(scalar $s->events('pr_open_comment_failed', $p->{proposal_id}), 'comment failure logged');

    my $p2 = $s->study($cluster, $tmpl);
    $gh->script(create_comment => {status => 404, body => {message => 'Not Found'}},
        {status => 422, body => {message => 'Validation Failed'}});
    $row = opened($p2, 'both comments fail');
    is($row->{pr_open_error}, undef, 'never fatal');
    my @tables = $s->events('pr_open_importance_table', $p2->{proposal_id});
    is(scalar @tables, 1, 'the table went to the log');
    like($tables[0]{message}, qr/\| title\.boost \| 1\.0 \|/, 'logged table');
}

# --- no chart: non-numeric importance (chart fails), no digest ---------------------------------
{
    my $p = $s->study($cluster, $tmpl, importance => {'title.boost' => 'high'});
    my $row = opened($p, 'chart fails');
    my $b = "relyloop/study-$p->{study_id}";
    is($git->git($REPO, 'rev-list', '--count', "main..$b"), "1\n", 'only the params commit');
    ok(scalar $s->events('pr_open_chart_failed', $p->{proposal_id}), 'pr_open_chart_failed logged');
    my @cm = comments_for($row->{pr_url});
    is(scalar @cm, 1, 'one comment');
    is($cm[0]{json}{body}, 'Parameter importance unavailable', 'unavailable note');

    my $p2 = $s->study($cluster, $tmpl, no_digest => 1);
    $row = opened($p2, 'no digest');
    is($git->git($REPO, 'rev-list', '--count', "main..relyloop/study-$p2->{study_id}"), "1\n",
        'no digest: no chart commit');
    is(join('', map { $_->{json}{body} } comments_for($row->{pr_url})),
        'Parameter importance unavailable', 'no digest: unavailable note');
    ok(!$s->events('pr_open_chart_failed', $p2->{proposal_id}), 'nothing to draw is no failure');
}

# --- a study with many trials: top 10 complete ones, best first ---------------------------------
{
    my @trials = map { [{'title.boost' => $_ / 4}, $_ / 100] } 1 .. 14;
    push @trials, [{'title.boost' => 9}, 0.99, 'failed'], [{'title.boost' => 8}, undef, 'pruned'];
    my $p = $s->study($cluster, $tmpl, trials => \@trials);
    opened($p, 'many trials');
    my ($c) = creates_for($p);
    my ($table) = $c->{json}{body} =~ /### Top trials\n\n(.*?)\n\n/s;
    my @rows = grep { /^\| \d/ } split /\n/, $table;
    is(scalar @rows, 10, 'ten rows');
    like($rows[0], qr/^\| 13 \| \{"title\.boost":3\.5\} \| 0\.14 \|$/, 'best first');
    unlike($table, qr/0\.99/, 'failed trials excluded');
}

$s->done;
