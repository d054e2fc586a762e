#!/usr/bin/perl
# The PR body's study analytics (docs/analytics.md, docs/worker.md): a
# study-backed PR whose trials carry per-query metrics gets the Confidence
# block, a query_normalizer diff the Operator-side requirement block, the
# four kinds of follow-up render one line each, baseline trials stay out of
# Top trials; a manual PR has neither block.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use RelyLoop::PipelineStack;
use RelyLoop::Fixtures qw(sql_quote uuid7);

alarm 300;
binmode(Test::More->builder->$_, ":encoding(UTF-8)") for qw(output failure_output todo_output);

my $s = RelyLoop::PipelineStack->new;
my $t = $s->t;
my $gh = $s->gh;
my $REPO = 'acme/search-config';

my $params = qq({\n  "title.boost": 1.0,\n  "query_normalizer": "none"\n}\n);
my $repo = $s->repo($REPO, files => {'clusters/prod/bm25.params.json' => $params});
my $cluster = $s->cluster($repo, 'clusters/prod');
my $tmpl = $s->template(name => 'bm25', declared_params => {
    'title.boost' => {type => 'float', min => 0, max => 10},
    query_normalizer => 'string'});

sub body_of_last_pull {
    my @creates = $gh->requests(route => 'create_pull');
    return @creates ? $creates[-1]{json}{body} : '';
}

# --- the example data of the Confidence block ----------------------------------

my @series = (0.40, 0.42, 0.45, 0.44, 0.47, 0.46, 0.48, 0.47, 0.481, 0.485, 0.487, 0.486);
my @winner = (0.6, 0.5, 0.4, 0.55, 0.38);
my @runner = (0.5, 0.5, 0.45, 0.55, 0.30);
my (%wq, %rq);
for my $i (0 .. 4) {
    $wq{'q' . ($i + 1)} = {'ndcg@10' => $winner[$i], 'map' => 0.1};
    $rq{'q' . ($i + 1)} = {'ndcg@10' => $runner[$i]};
}
my @per_query;
$per_query[10] = \%wq;
$per_query[11] = \%rq;

my $template_id = '0196c0de-0000-7000-8000-00000000abcd';
my $study = $s->study($cluster, $tmpl,
    objective => {metric => 'ndcg', k => 10, direction => 'maximize'},
    trials => [map { [{"title.boost" => 0.05 + $_ / 10}, $series[$_]] } 0 .. $#series],
    best => 10,
    per_query => \@per_query,
    queries => {q1 => 'blue jeans', q2 => 'socks', q3 => 'red shoes', q4 => 'hat', q5 => 'scarf'},
    config_diff => {'title.boost' => {from => 1.0, to => 2.5},
        query_normalizer => {from => 'none', to => 'lowercase+trim'}},
    followups => [
        'Try varying `title.boost` next.',
        {kind => 'narrow', rationale => 'Winner sits mid-range',
            search_space => {params => {boost => {type => 'float', low => 1.5, high => 3.5}}}},
        {kind => 'widen', rationale => "Edges were\nhit",
            search_space => {params => {k => {type => 'int', low => 1, high => 5},
                op => {type => 'categorical', choices => ['AND', 'OR']}}}},
        {kind => 'swap_template', rationale => 'Try the phrase template', template_id => $template_id,
            search_space => {params => {qn => {type => 'normalizer_pipeline',
                steps => ['lowercase', 'trim']}}}},
    ]);
my ($sid, $pid) = @{$study}{qw(study_id proposal_id)};

# An upstream baseline trial: better than every search trial, without
# per-query data. It is neither a Top trial nor part of the analytics.
my $baseline = uuid7();
$t->psql('INSERT INTO trials (id, study_id, optuna_trial_number, params, primary_metric, metrics, '
    . "status, is_baseline) VALUES (" . sql_quote($baseline) . ', ' . sql_quote($sid)
    . q[, 99, '{"title.boost": 1.0}', 0.9, '{"ndcg@10": 0.9}', 'complete', true);]
    . 'UPDATE studies SET baseline_trial_id = ' . sql_quote($baseline) . ' WHERE id = ' . sql_quote($sid));

my $row = $s->open_and_wait($pid);
is($row->{status}, 'pr_opened', 'study-backed proposal opened') or diag(explain($s->job($pid)));
my $body = body_of_last_pull();
utf8::decode($body) unless utf8::is_utf8($body);

my $confidence = "### Confidence\n\n"
    . "- ndcg\@10: 0.487 (95% CI 0.416-0.560, N=5 queries)\n"
    . "- Queries: 2 improved \x{b7} 2 unchanged \x{b7} 1 regressed (vs runner_up)\n"
    . "- Queries that regressed: `red shoes` (0.450 \x{2192} 0.400)\n"
    . "- Runner-up gap 0.001 (sharp_peak)\n"
    . "- Late-trial 1\x{3c3} = 0.007\n"
    . "- Convergence: late_rising (best at trial 10 of 12)\n\n";
ok(index($body, $confidence . "### Config diff\n") >= 0, 'Confidence block as in the example, before Config diff')
    or diag($body);

my $operator = "### Operator-side requirement\n\n"
    . 'RelyLoop measured the gain above against a query-time normalizer it applied before the query '
    . 'reached the engine. To reproduce the gain in production, your query-serving layer **MUST** '
    . "apply the same normalizer to incoming queries before they hit the engine.\n\n"
    . "**Chosen normalizer:** `lowercase+trim`\n\n"
    . "Reference implementation \x{2014} apply the SAME steps in your query layer:\n\n"
    . "#### Python\n\n```python\n"
    . "def normalize_query(query_text: str) -> str:\n    q = query_text\n    q = q.lower()\n"
    . "    q = q.strip()\n    return q\n```\n\n"
    . "#### JavaScript / TypeScript\n\n```javascript\n"
    . "function normalizeQuery(queryText) {\n  let q = queryText;\n  q = q.toLowerCase();\n"
    . "  q = q.trim();\n  return q;\n}\n```\n\n";
ok(index($body, $operator . "### Top trials\n") >= 0, 'Operator-side block, right before Top trials')
    or diag($body);

my @order = map { index($body, $_) } ('## RelyLoop relevance proposal', '### Metrics',
    '### Confidence', '### Config diff', '### Operator-side requirement', '### Top trials',
    '### Suggested follow-ups', "---\nGenerated by relyloop-pr");
ok(!(grep { $_ < 0 } @order), 'every section present');
is_deeply([sort { $a <=> $b } @order], \@order, 'sections in order');

like($body, qr/^\| 10 \| \{"title\.boost":1\.05\} \| 0\.487 \|$/m, 'winner first in Top trials');
unlike($body, qr/^\| 99 \|/m, 'the baseline trial is not a Top trial');
my ($top) = $body =~ /### Top trials\n\n(.*?)\n\n/s;
is(scalar(() = $top =~ /^\| \d+ \|/mg), 10, 'ten Top trials');

my $followups = "### Suggested follow-ups\n\n"
    . "- Try varying `title.boost` next.\n"
    . "- **narrow:** Winner sits mid-range (`boost` [1.5, 3.5])\n"
    . "- **widen:** Edges were hit (`k` [1, 5], `op` {AND, OR})\n"
    . "- **swap_template:** Try the phrase template (template `$template_id`; `qn` steps {lowercase, trim})\n\n";
ok(index($body, $followups . "---\n") >= 0, 'follow-ups of the four kinds, one line each') or diag($body);

# --- "none", an unknown choice, no per-query data -------------------------------

my $plain = $s->study($cluster, $tmpl,
    objective => {metric => 'ndcg', k => 10},
    trials => [[{'title.boost' => 2.5}, 0.487], [{'title.boost' => 0.8}, 0.412]],
    config_diff => {query_normalizer => {from => 'lowercase', to => 'none'},
        'title.boost' => {from => 1.0, to => 2.5}});
is($s->open_and_wait($plain->{proposal_id})->{status}, 'pr_opened', '"none" proposal opened');
$body = body_of_last_pull();
utf8::decode($body) unless utf8::is_utf8($body);
ok(index($body, "### Config diff\n\n| Param | From | To |\n| --- | --- | --- |\n"
    . "| query_normalizer | \"lowercase\" | \"none\" |\n| title.boost | 1 | 2.5 |\n\n"
    . "### Operator-side requirement\n\n**Chosen normalizer:** `none`. No production-side change is "
    . "required \x{2014} the loop confirmed the un-normalized query already wins.\n\n### Top trials\n") >= 0,
    'no-step Operator-side text') or diag($body);
ok(index($body, "### Confidence\n\n- Runner-up gap 0.075 (sharp_peak)\n\n### Config diff") >= 0,
    'without per-query data only the lines that apply') or diag($body);
ok(!$s->events('pr_body_unknown_normalizer', $plain->{proposal_id}), 'no event for "none"');

my $odd = $s->study($cluster, $tmpl,
    config_diff => {query_normalizer => {from => 'none', to => 'lowercase+shout'},
        'title.boost' => {from => 1.0, to => 2.5}});
is($s->open_and_wait($odd->{proposal_id})->{status}, 'pr_opened', 'unknown-choice proposal opened');
$body = body_of_last_pull();
like($body, qr/\*\*Chosen normalizer:\*\* `none`\. No production-side change/, 'unknown choice: no-step text');
unlike($body, qr/### Confidence/, 'objective without k: no Confidence block');
is(scalar $s->events('pr_body_unknown_normalizer', $odd->{proposal_id}), 1,
    'pr_body_unknown_normalizer logged');

# --- manual ------------------------------------------------------------------------

my $mid = $s->manual($cluster, $tmpl, {query_normalizer => {from => 'none', to => 'lowercase+trim'}});
is($s->open_and_wait($mid)->{status}, 'pr_opened', 'manual proposal opened');
$body = body_of_last_pull();
like($body, qr/\A## RelyLoop manual proposal\n/, 'manual body');
unlike($body, qr/### Confidence/, 'manual: no Confidence');
unlike($body, qr/### Operator-side requirement/, 'manual: no Operator-side requirement');

$s->done;
