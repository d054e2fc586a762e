#!/usr/bin/perl
# Every query parameter the served OpenAPI document lists for a list endpoint
# is honoured (a check below shows its effect on a data set where ignoring it
# would show), and any other parameter is a 422 (docs/api.md, "Lists"). The
# lists' filters, sorts (each order walked page by page: every row once, in
# order, X-Total-Count on every page) and q (full text, rank order).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use RelyLoop::Test;
use RelyLoop::Fixtures;

my $t = setup();

# --- data -----------------------------------------------------------------------------

my $repo = create_repo($t);
my %cl;
for my $c (['products-es', 'elasticsearch', 'prod', 'es_basic', 'https://es.example.com'],
    ['products-products-os', 'opensearch', 'staging', 'opensearch_basic', 'https://os.example.com'],
    ['catalog-solr', 'solr', 'dev', 'solr_basic', 'https://solr.example.com/solr'],
    ['catalog-es', 'elasticsearch', 'dev', 'es_apikey', 'https://es2.example.com'],
    ['logs-es', 'elasticsearch', 'staging', 'es_basic', 'https://logs.example.com'])
{
    my $r = api($t, POST => '/api/v1/clusters', json => {name => $c->[0], engine_type => $c->[1],
        environment => $c->[2], auth_kind => $c->[3], base_url => $c->[4], credentials_ref => 'k'});
    is($r->{status}, 201, "cluster $c->[0]") or diag($r->{body});
    $cl{$c->[0]} = $r->{json};
}
my $base = base_rows($t, cluster => $cl{'products-es'});
my @tmpl = ($base->{template});
for my $n (['products search', 1], ['products search', 2], ['catalog match', 1]) {
    push @tmpl, create_template($t, name => $n->[0], version => $n->[1]);
}
my $solr_tmpl = uuid7();
$t->psql('INSERT INTO query_templates (id, name, engine_type, body, declared_params, version) '
    . 'VALUES (' . sql_quote($solr_tmpl) . ", 'solr edismax', 'solr', 'q={{q}}', '{}', 1)");
my @studies;
for my $s (['products boost', 'products', 'completed', 0.5], ['catalog recall', 'catalog', 'failed', undef],
    ['products products phrase', 'products', 'running', 0.7], ['logs', 'logs', 'completed', 0.2])
{
    push @studies, insert_study($t, $base, name => $s->[0], target => $s->[1], status => $s->[2],
        defined $s->[3] ? (best_metric => $s->[3]) : (),
        $s->[2] =~ /completed|failed/ ? (completed_at => '2026-02-0' . (1 + @studies) . 'T00:00:00Z') : ());
}
$t->psql('UPDATE studies SET cluster_id = ' . sql_quote($cl{'logs-es'}{id}) . " WHERE name = 'logs'");
my $sid = $studies[0];
for my $i (0 .. 6) {
    insert_trial($t, $sid, optuna_trial_number => $i, primary_metric => 0.1 * $i,
        $i == 3 || $i == 5 ? () : (ended_at => '2026-03-01T00:00:0' . ($i % 3) . 'Z'));
}
my $mid_ts = '2026-03-01T00:00:01Z';
my $n_after_mid = $t->psql("SELECT count(*) FROM trials WHERE study_id = " . sql_quote($sid)
    . " AND ended_at >= '$mid_ts'");
insert_proposal($t, cluster_id => $cl{'products-es'}{id}, template_id => $tmpl[0]{id},
    study_id => $sid, status => 'superseded');
insert_proposal($t, cluster_id => $cl{'catalog-es'}{id}, template_id => $tmpl[1]{id},
    status => 'pending', pr_state => 'open');

# --- helpers ----------------------------------------------------------------------------

sub get_list {
    my ($path, $name) = @_;
    my $r = api($t, GET => $path);
    my @rows = list_ok($r, $name // $path);
    return (\@rows, header($r, 'x-total-count'));
}

# Walks every page of $path with limit 2: each row once, X-Total-Count on each
# page equal to the rows walked. Returns the rows.
sub walk {
    my ($path, $name) = @_;
    my $w = walk_pages($t, $path, 2);
    ok(!$w->{error}, "$name: walk") or diag($w->{error});
    my %seen;
    ok(!grep({ $seen{$_}++ } @{$w->{ids}}), "$name: no row twice");
    my $n = scalar @{$w->{ids}};
    ok(!grep({ ($_->{total} // '') ne $n } @{$w->{pages}}), "$name: X-Total-Count $n on every page");
    return $w->{rows} // [map { {id => $_} } @{$w->{ids}}];
}

# The rows of $path in the order of key ($get->(row)) ASC NULLS FIRST / DESC
# NULLS LAST, then id DESC; $num for numeric keys.
sub order_ok {
    my ($rows, $get, $dir, $num, $name) = @_;
    my @bad;
    for my $i (1 .. $#$rows) {
        my ($x, $y) = ($rows->[$i - 1], $rows->[$i]);
        my ($a1, $b1) = ($get->($x), $get->($y));
        my $c = !defined $a1 || !defined $b1 ? (defined $a1 ? 1 : defined $b1 ? -1 : 0)
            : $num ? $a1 <=> $b1 : $a1 cmp $b1;
        $c = -$c if $dir eq 'desc';
        $c ||= $y->{id} cmp $x->{id};
        push @bad, $i if $c > 0;
    }
    ok(!@bad, "$name: in order") or diag('out of order at row ' . join(',', @bad)
        . ': ' . json_encode([map { $get->($_) } @$rows]));
}

sub sort_check {
    my ($path, $keys) = @_;
    return sub {
        my ($param) = @_;
        for my $key (sort keys %$keys) {
            for my $dir (qw(asc desc)) {
                my $sep = $path =~ /\?/ ? '&' : '?';
                my $rows = walk("$path${sep}sort=$key:$dir", "$path sort=$key:$dir");
                my $f = $keys->{$key};
                order_ok($rows, sub { $_[0]{$f->[0]} }, $dir, $f->[1], "$path sort=$key:$dir");
            }
        }
        my $sep = $path =~ /\?/ ? '&' : '?';
        validation_ok(api($t, GET => "$path${sep}sort=nope:asc"), qr/query\.sort:/, "$path sort=nope:asc");
    };
}

sub enum_check {
    my ($path, $field, $want) = @_;    # $want: value → expected count
    return sub {
        for my $v (sort keys %$want) {
            my ($rows, $total) = get_list("$path?$field=$v&limit=200");
            is($total, $want->{$v}, "$path?$field=$v: X-Total-Count $want->{$v}");
            ok(!grep({ ($_->{$field} // '') ne $v } @$rows), "$path?$field=$v: only such rows");
        }
        validation_ok(api($t, GET => "$path?$field=nope"), qr/\Qquery.$field\E:/, "$path?$field=nope");
    };
}

sub q_check {
    my ($path, $first, $want) = @_;    # the best-ranked row's name, the matches' names
    return sub {
        my ($rows, $total) = get_list("$path?q=products&limit=200", "$path?q=products");
        is($total, scalar @$want, "$path?q=products: X-Total-Count");
        is_deeply([sort map { $_->{name} } @$rows], [sort @$want], "$path?q=products: the matches");
        is($rows->[0]{name}, $first, "$path?q=products: the best rank first");
        my $walked = walk("$path?q=products", "$path?q=products walk");
        is(scalar @$walked, scalar @$want, "$path?q=products: the walk visits every match");
        ($rows) = get_list("$path?q=products&sort=name:asc&limit=200");
        is_deeply([map { $_->{name} } @$rows], [sort @$want], "$path?q=products&sort=name:asc");
        validation_ok(api($t, GET => "$path?q=x"), qr/query\.q:/, "$path?q=x (too short)");
        validation_ok(api($t, GET => "$path?q=" . ('x' x 201)), qr/query\.q:/, "$path?q too long");
    };
}

my $future = '2099-01-01T00:00:00Z';
sub generic {
    my ($path) = @_;
    my $sep = $path =~ /\?/ ? '&' : '?';
    return {
        limit => sub {
            my ($rows) = get_list("$path${sep}limit=1");
            is(scalar @$rows, 1, "$path limit=1: one row");
            validation_ok(api($t, GET => "$path${sep}limit=0"), qr/query\.limit:/, "$path limit=0");
        },
        cursor => sub {
            my (undef, $total) = get_list($path);
            my $rows = walk($path, "$path cursor walk");
            is(scalar @$rows, $total, "$path: the cursor walk visits X-Total-Count rows");
            validation_ok(api($t, GET => "$path${sep}cursor=bad!"), qr/query\.cursor:/, "$path bad cursor");
        },
        since => sub {
            my (undef, $total) = get_list("$path${sep}since=$future");
            is($total, 0, "$path since=future: nothing");
            (undef, $total) = get_list("$path${sep}since=2000-01-01T00:00:00Z");
            ok($total > 0, "$path since=past: rows");
            validation_ok(api($t, GET => "$path${sep}since=soon"), qr/query\.since:/, "$path since=soon");
        },
    };
}

my $TRIALS = "/api/v1/studies/$sid/trials";
my %CHECK = (
    '/api/v1/config-repos' => generic('/api/v1/config-repos'),
    '/api/v1/clusters' => {%{generic('/api/v1/clusters')},
        engine_type => enum_check('/api/v1/clusters', 'engine_type',
            {elasticsearch => 3, opensearch => 1, solr => 1}),
        environment => enum_check('/api/v1/clusters', 'environment', {prod => 1, staging => 2, dev => 2}),
        sort => sort_check('/api/v1/clusters', {name => ['name'], created_at => ['created_at'],
            environment => ['environment']}),
        q => q_check('/api/v1/clusters', 'products-products-os',
            ['products-es', 'products-products-os']),
    },
    '/api/v1/query-templates' => {%{generic('/api/v1/query-templates')},
        engine_type => enum_check('/api/v1/query-templates', 'engine_type',
            {elasticsearch => 4, solr => 1}),
        sort => sort_check('/api/v1/query-templates', {name => ['name'], created_at => ['created_at'],
            engine_type => ['engine_type'], version => ['version', 1]}),
        q => sub {
            my ($rows, $total) = get_list('/api/v1/query-templates?q=products&limit=200');
            is($total, 2, 'templates q=products: two versions');
            ok(!grep({ $_->{name} ne 'products search' } @$rows), 'templates q=products: the matches');
            validation_ok(api($t, GET => '/api/v1/query-templates?q=x'), qr/query\.q:/, 'templates q=x');
        },
    },
    '/api/v1/studies' => {%{generic('/api/v1/studies')},
        status => enum_check('/api/v1/studies', 'status', {completed => 2, failed => 1, running => 1,
            queued => 0}),
        cluster_id => sub {
            my ($rows, $total) = get_list("/api/v1/studies?cluster_id=$cl{'logs-es'}{id}");
            is($total, 1, 'studies cluster_id: one');
            is($rows->[0]{name}, 'logs', 'studies cluster_id: that one');
        },
        target => sub {
            my ($rows, $total) = get_list('/api/v1/studies?target=products');
            is($total, 2, 'studies target=products: two');
            ok(!grep({ $_->{target} ne 'products' } @$rows), 'studies target: exact');
            (undef, $total) = get_list('/api/v1/studies?target=product');
            is($total, 0, 'studies target is exact, not a prefix');
            validation_ok(api($t, GET => '/api/v1/studies?target=' . ('t' x 257)), qr/query\.target:/,
                'target over 256');
        },
        sort => sort_check('/api/v1/studies', {name => ['name'], created_at => ['created_at'],
            completed_at => ['completed_at'], best_metric => ['best_metric', 1], status => ['status']}),
        q => q_check('/api/v1/studies', 'products products phrase',
            ['products boost', 'products products phrase']),
    },
    $TRIALS => {limit => generic($TRIALS)->{limit}, cursor => generic($TRIALS)->{cursor},
        since => sub {
            my ($rows, $total) = get_list("$TRIALS?since=$mid_ts&limit=200");
            is($total, $n_after_mid, "trials since: X-Total-Count counts ended_at >= since");
            is(scalar @$rows, $n_after_mid, 'trials since: those rows');
            validation_ok(api($t, GET => "$TRIALS?since=soon"), qr/query\.since:/, 'trials since=soon');
        },
        sort => sub {
            for my $s (['ended_at_desc', 'desc'], ['ended_at_asc', 'asc']) {
                my $rows = walk("$TRIALS?sort=$s->[0]", "trials sort=$s->[0]");
                is(scalar @$rows, 7, "trials sort=$s->[0]: all seven, NULL ended_at included");
                my @nn = grep { defined $_->{ended_at} } @$rows;
                is_deeply([map { defined $_->{ended_at} ? 1 : 0 } @$rows], [(1) x @nn, (0) x (7 - @nn)],
                    "trials sort=$s->[0]: NULL ended_at last");
                my @e = map { $_->{ended_at} } @nn;
                my @want = $s->[1] eq 'asc' ? sort @e : reverse sort @e;
                is_deeply(\@e, \@want, "trials sort=$s->[0]: ended_at order");
            }
            my $rows = walk("$TRIALS?sort=optuna_trial_number_asc", 'trials by number');
            is_deeply([map { $_->{optuna_trial_number} } @$rows], [0 .. 6], 'trials by number');
            $rows = walk("$TRIALS?sort=primary_metric_asc", 'trials by metric asc');
            is_deeply([map { $_->{optuna_trial_number} } @$rows], [0 .. 6], 'trials by metric asc');
            $rows = walk("$TRIALS?sort=primary_metric_desc", 'trials by metric desc');
            is_deeply([map { $_->{optuna_trial_number} } @$rows], [reverse 0 .. 6], 'trials by metric desc');
            my $r = api($t, GET => "$TRIALS?sort=ended_at_desc&limit=2");
            error_ok(api($t, GET => "$TRIALS?sort=ended_at_asc&cursor=" . esc($r->{json}{next_cursor})),
                422, 'VALIDATION_ERROR', 'trials: an ended_at_desc cursor with ended_at_asc');
            validation_ok(api($t, GET => "$TRIALS?sort=ended_at"), qr/query\.sort:/, 'trials sort=ended_at');
        },
    },
    '/api/v1/proposals' => {%{generic('/api/v1/proposals')},
        status => enum_check('/api/v1/proposals', 'status', {superseded => 1, pending => 1, rejected => 0}),
        cluster_id => sub {
            my ($rows, $total) = get_list("/api/v1/proposals?cluster_id=$cl{'catalog-es'}{id}");
            is($total, 1, 'proposals cluster_id');
        },
        study_id => sub {
            my (undef, $total) = get_list("/api/v1/proposals?study_id=$sid&include_superseded=1");
            is($total, 1, 'proposals study_id');
            (undef, $total) = get_list("/api/v1/proposals?study_id=$sid");
            is($total, 0, 'proposals study_id: superseded hidden by default');
        },
        template_id => sub {
            my (undef, $total) = get_list("/api/v1/proposals?template_id=$tmpl[1]{id}");
            is($total, 1, 'proposals template_id');
        },
        include_superseded => sub {
            my (undef, $total) = get_list('/api/v1/proposals?include_superseded=yes');
            is($total, 2, 'include_superseded=yes: both');
            (undef, $total) = get_list('/api/v1/proposals?include_superseded=no');
            is($total, 1, 'include_superseded=no: one');
        },
        source => sub {
            my ($rows) = get_list('/api/v1/proposals?source=manual');
            is(scalar @$rows, 1, 'source=manual');
            ok(!defined $rows->[0]{study_id}, 'source=manual: no study');
            my (undef, $total) = get_list('/api/v1/proposals?source=study&include_superseded=1');
            is($total, 1, 'source=study');
        },
        is_last_merged => sub {
            my (undef, $total) = get_list('/api/v1/proposals?is_last_merged=true');
            is($total, 0, 'is_last_merged=true: none live');
            (undef, $total) = get_list('/api/v1/proposals?is_last_merged=false');
            is($total, 1, 'is_last_merged=false');
        },
        sort => sort_check('/api/v1/proposals?include_superseded=1', {created_at => ['created_at'],
            status => ['status'], pr_state => ['pr_state']}),
    },
);

# --- the document drives the checks --------------------------------------------------------

my $doc = api($t, GET => '/api/v1/openapi.json')->{json};
ok(ref $doc eq 'HASH', 'the OpenAPI document');
my %listed;
for my $path (sort keys %{$doc->{paths}}) {
    my $get = $doc->{paths}{$path}{get} or next;
    my @q;
    for my $p (@{$get->{parameters} || []}) {
        if ($p->{'$ref'}) {
            my ($name) = $p->{'$ref'} =~ m{^#/components/parameters/(\w+)$};
            $p = $doc->{components}{parameters}{$name};
        }
        push @q, $p->{name} if ($p->{in} // '') eq 'query';
    }
    next unless grep { $_ eq 'limit' } @q;    # the lists
    my $real = $path =~ s/\{id\}/$sid/r;
    $listed{$real} = 1;
    ok($CHECK{$real}, "a check for $real") or next;
    for my $param (@q) {
        my $check = $CHECK{$real}{$param};
        ok($check, "$real: '$param' listed and checked") or next;
        subtest "$real ?$param" => sub { $check->($param) };
    }
    is_deeply([sort keys %{$CHECK{$real}}], [sort @q], "$real: the document lists every checked parameter");
    for my $extra (qw(zz_unlisted offset page Limit)) {
        my $sep = $real =~ /\?/ ? '&' : '?';
        validation_ok(api($t, GET => "$real${sep}$extra=1"), qr/\Qquery.$extra\E: unknown parameter/,
            "$real ?$extra: not listed → 422");
    }
}
is_deeply([sort keys %listed], [sort keys %CHECK], 'every list endpoint is in the document');

responses_ok();
$t->done;
