package RelyLoop::PipelineStack;

# The whole open_pr path for the t/pipeline_*.t tests: PostgreSQL, the
# worker, nginx with the module, a git smart-HTTP server that requires the
# PAT, and the fake GitHub — all from RelyLoop::Test, RelyLoop::GitServer and
# RelyLoop::FakeGithub.
#
#   use RelyLoop::PipelineStack;
#   my $s = RelyLoop::PipelineStack->new(base_url => 'https://relyloop.example.com');
#   my $repo = $s->repo('acme/search-config', files => {...});
#   my $cluster = $s->cluster($repo, 'clusters/prod');
#   my $tmpl = $s->template(name => 'bm25', declared_params => {...});
#   my $seed = $s->seed($cluster, $tmpl);              # study + pending proposal
#   my $row = $s->open_and_wait($seed->{proposal_id});  # the proposal row afterwards
#   $s->done;

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);

use RelyLoop::Test qw(json_encode json_decode);
use RelyLoop::Fixtures qw(api uuid7 uniq_name sql_quote sql_json);
use RelyLoop::GitServer;
use RelyLoop::FakeGithub;

# Distinctive, and shaped like a fine-grained PAT so that the redactor's
# regex AND the literal check both have to work.
our $DEFAULT_PAT = 'github_pat_11RELYLOOPTESTpipeline_' . join('', map { ('A' .. 'Z', 0 .. 9)[($_ * 7) % 36] } 1 .. 40);

sub new {
    my ($class, %o) = @_;
    my $t = RelyLoop::Test->new(%{$o{test} || {}}, $o{db_kind} ? (db_kind => $o{db_kind}) : ());
    my $self = bless {t => $t, pat => $o{pat} // $DEFAULT_PAT, auth_ref => 'acme-pat',
        author_name => 'RelyLoop Bot', author_email => 'relyloop-bot@test.invalid',
        worker_args => $o{worker_args} || [], base_url => $o{base_url},
        worker_env => $o{worker_env} || _env_from_outside($t)}, $class;
    $t->start_pg->migrate;
    $self->{git} = RelyLoop::GitServer->start(dir => $t->dir, token => $self->{pat},
        stall => $o{stall});
    $self->{gh} = RelyLoop::FakeGithub->start(dir => $t->dir, token => $self->{pat},
        web_url => $self->{git}->web_url, git_root => $self->{git}->repos);
    $t->write_secret($self->{auth_ref}, "$self->{pat}\n");
    my $prev = $t->{on_stop};
    $t->{on_stop} = sub {
        $prev->() if $prev;
        $self->{gh}->stop if $self->{gh};
        $self->{git}->stop if $self->{git};
    };
    $self->start_worker unless $o{no_worker};
    $t->start_nginx(environment => 'development', %{$o{nginx} || {}},
        directives => {relyloop_github_web_url => $self->{git}->web_url,
            %{$o{nginx_directives} || {}}});
    return $self;
}

sub t { $_[0]{t} }
sub git { $_[0]{git} }
sub gh { $_[0]{gh} }
sub pat { $_[0]{pat} }
sub auth_ref { $_[0]{auth_ref} }

sub worker_args {
    my ($self, %o) = @_;
    my @a = ('--github-web-url', $self->{git}->web_url, '--github-api-url', $self->{gh}->api_url,
        '--git-author-name', $self->{author_name}, '--git-author-email', $self->{author_email},
        '--lock-retry-delay', 1, '--job-timeout', $o{job_timeout} // 60);
    my $base = exists $o{base_url} ? $o{base_url} : $self->{base_url};
    push @a, '--base-url', $base if defined $base;
    push @a, '--threads', $o{threads} if $o{threads};
    return (@a, @{$self->{worker_args}}, @{$o{args} || []});
}

# start_worker(name => 'worker', base_url => ..., threads => N, args => [...])
sub start_worker {
    my ($self, %o) = @_;
    my %env = (%{$self->{worker_env}}, %{$o{env} || {}});
    $self->{t}->start_worker(name => $o{name} // 'worker', args => [$self->worker_args(%o)],
        (%env ? (env => \%env) : ()), ($o{no_wait} ? (no_wait => 1) : ()));
    return $self;
}

# RELYLOOP_PIPELINE_ASAN_FULL=1: full stack unwinding in the worker's leak
# reports (slower; for chasing a leak in a library without frame pointers).
# The reports go to logs/, where the harness's final check reads them.
sub _env_from_outside {
    my ($t) = @_;
    return {} unless $ENV{RELYLOOP_PIPELINE_ASAN_FULL};
    return {ASAN_OPTIONS => 'detect_leaks=1:halt_on_error=1:abort_on_error=0:'
        . 'fast_unwind_on_malloc=0:log_path=' . $t->dir . '/logs/asan-full'};
}

sub restart_worker {
    my ($self, %o) = @_;
    my $name = $o{name} // 'worker';
    $self->{t}->stop_worker($name);
    $self->{restarts}{$name}++;
    # keep the earlier log: the harness appends to logs/<name>.log
    return $self->start_worker(%o);
}

# --- fixtures -----------------------------------------------------------------

sub params_text {
    return qq({\n  "title.boost": 1.0,\n  "tie_breaker": 0.3,\n  "operator": "OR",\n)
         . qq(  "field_boosts": {\n    "title": 2.0,\n    "body": 0.5\n  }\n}\n);
}

# repo('owner/name', files => {...}, pr_base_branch => 'main', create_repo options...):
# the bare repository and its config_repos row (through the API).
sub repo {
    my ($self, $name, %o) = @_;
    my $base = delete $o{pr_base_branch} // 'main';
    my $row = delete $o{row} || {};
    $self->{git}->create_repo($name, base => $base, %o) unless delete $o{no_bare};
    (my $api_name = lc $name) =~ s{[^a-z0-9-]+}{-}g;
    my $res = api($self->{t}, POST => '/api/v1/config-repos', json => {
        name => uniq_name($api_name), repo_url => $self->{git}->repo_url($name),
        auth_ref => $self->{auth_ref}, pr_base_branch => $base, default_branch => $base, %$row});
    die "config repo: $res->{status} $res->{body}" unless $res->{status} == 201;
    return {%{$res->{json}}, full_name => $name};
}

sub cluster {
    my ($self, $repo, $config_path, %o) = @_;
    my $res = api($self->{t}, POST => '/api/v1/clusters', json => {
        name => uniq_name('cluster'), engine_type => 'elasticsearch', environment => 'prod',
        base_url => 'https://es.example.com:9200', auth_kind => 'es_apikey',
        credentials_ref => 'es-cred',
        ($repo ? (config_repo_id => $repo->{id}) : ()),
        (defined $config_path ? (config_path => $config_path) : ()), %o});
    die "cluster: $res->{status} $res->{body}" unless $res->{status} == 201;
    return $res->{json};
}

sub template {
    my ($self, %o) = @_;
    my $res = api($self->{t}, POST => '/api/v1/query-templates', json => {
        name => $o{name} // uniq_name('bm25'), engine_type => 'elasticsearch',
        body => '{"query": {"match": {"title": {"query": "{{q}}", "boost": "{{title.boost}}"}}}}',
        declared_params => $o{declared_params} // {
            'title.boost' => {type => 'float', min => 0, max => 10},
            tie_breaker => 'float', operator => {type => 'categorical', values => ['AND', 'OR']},
            'field_boosts.title' => 'float', 'field_boosts.body' => 'float',
            'fuzziness.max_expansions' => 'int', 'use_synonyms' => 'bool'},
        (exists $o{version} ? (version => $o{version}) : ())});
    die "template: $res->{status} $res->{body}" unless $res->{status} == 201;
    return $res->{json};
}

# seed($cluster, $template): a completed study with a pending proposal
# (title.boost 1.0 → 2.5, trials 0.487 and 0.412, two follow-ups) — the shape
# the seed endpoint had before it followed upstream HEAD's values (boost);
# t/upstream_rows.t opens a PR from the endpoint's own seed.
# Returns {study_id, proposal_id}.
sub seed {
    my ($self, $cluster, $tmpl) = @_;
    my $seed = $self->study($cluster, $tmpl, name => 'e2e-seed-' . substr(uuid7(), 0, 8),
        followups => ['Explore title.boost between 2.5 and 4.0',
            'Tune description.boost with title.boost fixed at 2.5']);
    # "from": 1.0 spelled as the seed spelled it (Perl's JSON would write 1).
    $self->{t}->psql(q{UPDATE proposals SET config_diff = '{"title.boost": {"from": 1.0, "to": 2.5}}' }
        . 'WHERE id = ' . sql_quote($seed->{proposal_id}));
    return $seed;
}

# study($cluster, $template, config_diff => {...}, importance => {...}, followups => [...],
#       trials => [[params, metric, status]...], name => ..., per_query => [pqm of trial i
#       or undef...], queries => {id => text}, best => index of the winner (default 0)):
# a study, its trials and digest, and a pending proposal — by SQL, for shapes the seed
# endpoint does not make.
sub study {
    my ($self, $cluster, $tmpl, %o) = @_;
    my $t = $self->{t};
    my ($qs, $jl, $sid, $pid) = (uuid7(), uuid7(), uuid7(), uuid7());
    my $name = $o{name} // uniq_name('study');
    my @trials = @{$o{trials} || [[{'title.boost' => 2.5}, 0.487], [{'title.boost' => 0.8}, 0.412]]};
    my $sql = 'INSERT INTO query_sets (id, name, cluster_id) VALUES ('
        . join(',', map { sql_quote($_) } $qs, uniq_name('qs'), $cluster->{id}) . ");\n"
        . 'INSERT INTO judgment_lists (id, name, query_set_id, cluster_id, target, rubric, status) VALUES ('
        . join(',', map { sql_quote($_) } $jl, uniq_name('jl'), $qs, $cluster->{id}, 'products',
            '', 'complete') . ");\n"
        . join('', map { 'INSERT INTO queries (id, query_set_id, query_text) VALUES ('
            . join(',', map { sql_quote($_) } $_, $qs, $o{queries}{$_}) . ");\n" }
            sort keys %{$o{queries} || {}})
        . 'INSERT INTO studies (id, name, cluster_id, target, template_id, query_set_id, '
        . "judgment_list_id, status, optuna_study_name, search_space, config, best_metric, objective) VALUES ("
        . join(',', map { sql_quote($_) } $sid, $name, $cluster->{id}, 'products', $tmpl->{id},
            $qs, $jl, 'completed', "optuna-$sid") . ", '{}', '{}', 0.487, "
        . sql_json($o{objective} // {metric => 'ndcg@10', direction => 'maximize'}) . ");\n";
    my $best;
    for my $i (0 .. $#trials) {
        my ($params, $metric, $status) = @{$trials[$i]};
        my $tid = uuid7();
        $best = $tid if $i == ($o{best} // 0);
        $sql .= 'INSERT INTO trials (id, study_id, optuna_trial_number, params, primary_metric, '
            . 'metrics, status, per_query_metrics) VALUES (' . join(',', sql_quote($tid),
                sql_quote($sid), $i, sql_json($params), defined $metric ? $metric : 'NULL',
                sql_json({'ndcg@10' => $metric}), sql_quote($status // 'complete'),
                sql_json(($o{per_query} || [])->[$i])) . ");\n";
    }
    $sql .= 'UPDATE studies SET best_trial_id = ' . sql_quote($best) . ' WHERE id = ' . sql_quote($sid) . ";\n";
    unless ($o{no_digest}) {
        $sql .= 'INSERT INTO digests (id, study_id, narrative, parameter_importance, '
            . 'recommended_config, suggested_followups, generated_by) VALUES ('
            . join(',', sql_quote(uuid7()), sql_quote($sid), sql_quote('narrative'),
                sql_json($o{importance} // {'title.boost' => 1.0}), sql_json({}),
                # strings are wrapped as text items, other values stored as given
                sql_json([map { ref $_ ? $_ : {kind => 'text', rationale => $_, search_space => undef} }
                    @{$o{followups} || ['Widen the range']}]),
                sql_quote('test')) . ");\n";
    }
    $sql .= 'INSERT INTO proposals (id, study_id, cluster_id, template_id, config_diff, '
        . 'metric_delta, status) VALUES (' . join(',', sql_quote($pid), sql_quote($sid),
            sql_quote($cluster->{id}), sql_quote($tmpl->{id}),
            sql_json($o{config_diff} // {'title.boost' => {from => 1.0, to => 2.5}}),
            sql_json($o{metric_delta} // {'ndcg@10' => {baseline => 0.412, achieved => 0.487,
                delta_pct => 18.2}}), sql_quote('pending')) . ");\n";
    $t->psql($sql);
    return {study_id => $sid, proposal_id => $pid, study_name => $name};
}

# manual($cluster, $template, {param => {from, to}}): POST /api/v1/proposals.
sub manual {
    my ($self, $cluster, $tmpl, $diff, %o) = @_;
    my $res = api($self->{t}, POST => '/api/v1/proposals', json => {cluster_id => $cluster->{id},
        template_id => $tmpl->{id}, config_diff => $diff, %o});
    die "manual proposal: $res->{status} $res->{body}" unless $res->{status} == 201;
    return $res->{json}{id};
}

# --- running ------------------------------------------------------------------

sub open_pr {
    my ($self, $id) = @_;
    return api($self->{t}, POST => "/api/v1/proposals/$id/open_pr");
}

# The proposal row: {status, pr_url, pr_state, pr_open_error}.
sub proposal {
    my ($self, $id) = @_;
    my @r = $self->{t}->psql("SELECT status, coalesce(pr_url, '<null>'), coalesce(pr_state, "
        . "'<null>'), coalesce(replace(pr_open_error, E'\\n', ' '), '<null>') FROM proposals WHERE id = "
        . sql_quote($id));
    return undef unless @r;
    my %row;
    @row{qw(status pr_url pr_state pr_open_error)} = map { $_ eq '<null>' ? undef : $_ } @{$r[0]};
    return \%row;
}

# The newest job of the proposal: {state, attempts, last_event, last_error}.
sub job {
    my ($self, $id) = @_;
    my @r = $self->{t}->psql("SELECT state, attempts, coalesce(last_event, ''), "
        . "coalesce(replace(last_error, E'\\n', ' '), '') FROM pr_jobs WHERE proposal_id = "
        . sql_quote($id) . ' ORDER BY created_at DESC, id DESC LIMIT 1');
    return undef unless @r;
    my %j;
    @j{qw(state attempts last_event last_error)} = @{$r[0]};
    return \%j;
}

# Waits until the newest job of the proposal has finished; returns the row.
# A job still unfinished after $timeout seconds fails the test (what follows
# must not read the previous case's state as its own).
sub wait_done {
    my ($self, $id, $timeout) = @_;
    $timeout //= 60;
    my $ok = RelyLoop::Test::wait_for(sub {
        my $j = $self->job($id);
        $j && ($j->{state} eq 'succeeded' || $j->{state} eq 'failed');
    }, $timeout);
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ok(0, "the job of proposal $id finished within $timeout s")
        or diag('its job: ' . json_encode($self->job($id))) unless $ok;
    return $self->proposal($id);
}

sub open_and_wait {
    my ($self, $id, $timeout) = @_;
    my $res = $self->open_pr($id);
    is($res->{status}, 202, "open_pr $id accepted") or diag($res->{body});
    return $self->wait_done($id, $timeout);
}

# The worker's JSON events named $name (all workers' logs), optionally for one proposal.
sub events {
    my ($self, $name, $proposal_id) = @_;
    my @out;
    opendir(my $dh, $self->{t}->dir . '/logs') or return;
    for my $f (sort grep { /\.log$/ } readdir $dh) {
        for my $line (split /\n/, $self->{t}->slurp($self->{t}->dir . "/logs/$f")) {
            next unless $line =~ /^\{/;
            my $e = json_decode($line) or next;
            next unless ($e->{event} // '') eq $name;
            next if defined $proposal_id && ($e->{proposal_id} // '') ne $proposal_id;
            push @out, $e;
        }
    }
    closedir $dh;
    return @out;
}

# The PNG's width and height from its IHDR chunk.
sub png_size {
    my ($data) = @_;
    return (0, 0) unless length($data) >= 24 && substr($data, 0, 8) eq "\x89PNG\r\n\x1a\n"
        && substr($data, 12, 4) eq 'IHDR';
    return unpack('NN', substr($data, 16, 8));
}

sub done { $_[0]{t}->done }

1;
