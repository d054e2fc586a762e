package RelyLoop::Fixtures;

# Shared fixtures and assertions for the API integration tests (t/api_*.t).
#
#   use RelyLoop::Fixtures;
#   my $t = setup();                       # PostgreSQL, migrate, worker, nginx
#   my $repo = create_repo($t);            # through the API (psql fallback)
#   my $res = api($t, GET => "/api/v1/config-repos/$repo->{id}");
#   error_ok($res, 404, 'CONFIG_REPO_NOT_FOUND', 'unknown id');
#   responses_ok();                        # every response had X-Request-ID, JSON
#   $t->done;
#
# Assertions follow docs/api.md: the error envelope, timestamps, list pages.

use strict;
use warnings;

use Exporter qw(import);
use IO::Socket::INET;
use JSON::PP;
use MIME::Base64 qw(encode_base64 decode_base64);
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);

use RelyLoop::Proc qw(wait_pid);
use RelyLoop::Test qw(json_encode json_decode);

our @EXPORT = qw(
    setup api responses_ok json_encode json_decode
    uniq_name uuid7 sql_quote sql_json esc b64url b64url_decode header
    create_repo create_cluster create_template base_rows insert_study insert_trial
    insert_proposal seed_completed
    error_ok validation_ok ts_ok uuid7_ok num_is has_keys list_ok walk_pages
    ka_connect ka_request ka_read psql_bg wait_pid lock_held pg_backends
);

my @ANOMALIES;
my $SEQ = 0;

# --- setup --------------------------------------------------------------------

# setup(nginx options...): a fresh PostgreSQL, the schema, the worker and nginx.
# worker => {start_worker options} goes to the worker.
sub setup {
    my (%opts) = @_;
    my $worker = delete $opts{worker} || {};
    my $t = RelyLoop::Test->new;
    $t->start_pg->migrate->start_worker(%$worker)->start_nginx(%opts);
    return $t;
}

# api($t, METHOD => path, json => ..., body => ..., headers => {...}): $t->http
# plus the checks every response must pass (docs/api.md): an X-Request-ID, and
# a JSON body for everything but 204. Failures are collected and reported by
# responses_ok() so that a missing header cannot hide among the other tests.
sub api {
    my ($t, $method, $path, %opts) = @_;
    my $res = $t->http($method, $path, %opts);
    my $what = "$method $path";
    if ($res->{status} == 599) {
        push @ANOMALIES, "$what: transport error: " . ($res->{body} // '');
        return $res;
    }
    push @ANOMALIES, "$what: no X-Request-ID ($res->{status})"
        unless defined header($res, 'x-request-id') && length header($res, 'x-request-id');
    if ($res->{status} != 204) {
        my $ct = header($res, 'content-type') // '';
        push @ANOMALIES, "$what: Content-Type '$ct' ($res->{status})"
            unless $ct =~ m{^application/json\b}i;
        push @ANOMALIES, "$what: body is not JSON ($res->{status}): "
            . substr($res->{body} // '', 0, 200)
            unless defined $res->{json};
    }
    push @ANOMALIES, "$what: 500 " . substr($res->{body} // '', 0, 300)
        if $res->{status} == 500;
    return $res;
}

sub responses_ok {
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ok(!@ANOMALIES, 'every response carried X-Request-ID and a JSON body, no 500')
        or diag(join "\n", @ANOMALIES[0 .. ($#ANOMALIES > 19 ? 19 : $#ANOMALIES)]);
    @ANOMALIES = ();
}

# A header of a response (lower-case name); repeated headers joined with ", ".
sub header {
    my ($res, $name) = @_;
    my $v = $res->{headers}{lc $name};
    return ref $v eq 'ARRAY' ? join(', ', @$v) : $v;
}

# --- small helpers ------------------------------------------------------------

sub uniq_name {
    my ($prefix) = @_;
    $SEQ++;
    return ($prefix // 'x') . "-$$-$SEQ";
}

# A UUIDv7 string minted here, for rows inserted with psql.
sub uuid7 {
    my $ms = int(time * 1000);
    my @r = map { int(rand(256)) } 1 .. 10;
    my $hex = sprintf('%012x', $ms);
    $hex .= sprintf('%02x', 0x70 | ($r[0] & 0x0f)) . sprintf('%02x', $r[1]);
    $hex .= sprintf('%02x', 0x80 | ($r[2] & 0x3f)) . sprintf('%02x', $r[3]);
    $hex .= join '', map { sprintf '%02x', $_ } @r[4 .. 9];
    return join '-', substr($hex, 0, 8), substr($hex, 8, 4), substr($hex, 12, 4),
        substr($hex, 16, 4), substr($hex, 20, 12);
}

sub sql_quote {
    my ($v) = @_;
    return 'NULL' unless defined $v;
    $v =~ s/'/''/g;
    return "'$v'";
}

sub sql_json { defined $_[0] ? sql_quote(json_encode($_[0])) . '::jsonb' : 'NULL' }

# Percent-encodes everything but unreserved characters (RFC 3986).
sub esc {
    my ($s) = @_;
    $s =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

sub b64url {
    my ($s) = @_;
    my $b = encode_base64($s, '');
    $b =~ tr{+/}{-_};
    $b =~ s/=+\z//;
    return $b;
}

sub b64url_decode {
    my ($s) = @_;
    $s =~ tr{-_}{+/};
    $s .= '=' x ((4 - length($s) % 4) % 4);
    return decode_base64($s);
}

# --- assertions ---------------------------------------------------------------

# error_ok($res, STATUS, CODE, NAME, retryable => bool, message => qr//):
# exactly {"detail": {"error_code", "message", "retryable"}}.
# retryable defaults to true for 503 and false otherwise.
sub error_ok {
    my ($res, $status, $code, $name, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $j = $res->{json};
    my $retryable = exists $o{retryable} ? $o{retryable} : $status == 503;
    my @why;
    push @why, "status $res->{status}, want $status" if $res->{status} != $status;
    if (ref $j ne 'HASH' || join(',', sort keys %$j) ne 'detail' || ref $j->{detail} ne 'HASH') {
        push @why, 'not a {"detail": {...}} envelope';
    } else {
        my $d = $j->{detail};
        my $keys = join ',', sort keys %$d;
        push @why, "detail keys are {$keys}" if $keys ne 'error_code,message,retryable';
        push @why, 'error_code ' . ($d->{error_code} // 'undef') . ", want $code"
            if ($d->{error_code} // '') ne $code;
        push @why, 'message is empty' unless defined $d->{message} && !ref $d->{message}
            && length $d->{message};
        if (!JSON::PP::is_bool($d->{retryable})) {
            push @why, 'retryable is not a JSON boolean';
        } elsif (!!$d->{retryable} != !!$retryable) {
            push @why, 'retryable is ' . ($d->{retryable} ? 'true' : 'false');
        }
        push @why, "message '" . ($d->{message} // '') . "' does not match $o{message}"
            if $o{message} && ($d->{message} // '') !~ $o{message};
    }
    ok(!@why, "$name: $status $code")
        or diag(join('; ', @why) . "\n  body: " . substr($res->{body} // '', 0, 600));
    return !@why;
}

# validation_ok($res, FIELDS, NAME): 422 VALIDATION_ERROR whose message is
# "Request validation failed: ..." naming each of FIELDS ('name' means
# 'body.name'; a Regexp is matched as it is).
sub validation_ok {
    my ($res, $fields, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @pats = map {
        ref $_ eq 'Regexp' ? $_ : qr/(?:^|[\s;:])\Qbody.$_\E(?:[.:\[\s]|$)/
    } (ref $fields eq 'ARRAY' ? @$fields : (defined $fields ? ($fields) : ()));
    my $msg = ref $res->{json} eq 'HASH' && ref $res->{json}{detail} eq 'HASH'
        ? $res->{json}{detail}{message} // '' : '';
    my $ok = error_ok($res, 422, 'VALIDATION_ERROR', $name,
        message => qr/^Request validation failed: \S/);
    for my $p (@pats) {
        like($msg, $p, "$name: the message names the field") or $ok = 0;
    }
    return $ok;
}

# RFC 3339, UTC, six fractional digits, "+00:00" (docs/api.md's form).
sub ts_ok {
    my ($v, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return like($v // 'undef', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$/,
        "$name is RFC 3339 UTC with microseconds");
}

sub uuid7_ok {
    my ($v, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return like($v // 'undef', qr/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
        "$name is a UUIDv7");
}

sub num_is {
    my ($got, $want, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = defined $got && !ref $got && $got =~ /^-?[\d.eE+-]+$/ && abs($got - $want) < 1e-9;
    ok($ok, $name) or diag('got ' . (defined $got ? json_encode($got) : 'undef') . ", want $want");
    return $ok;
}

# has_keys($obj, [keys], NAME): an object that has (at least) these keys.
sub has_keys {
    my ($obj, $keys, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    if (ref $obj ne 'HASH') {
        fail("$name is an object");
        return 0;
    }
    my @missing = grep { !exists $obj->{$_} } @$keys;
    ok(!@missing, "$name has its fields") or diag('missing: ' . join(', ', @missing)
        . '; got: ' . join(', ', sort keys %$obj));
    return !@missing;
}

# list_ok($res, NAME, total => N): a 200 list page (docs/api.md); returns its rows.
sub list_ok {
    my ($res, $name, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $j = $res->{json};
    my @why;
    push @why, "status $res->{status}" if $res->{status} != 200;
    if (ref $j ne 'HASH') {
        push @why, 'body is not an object';
    } else {
        push @why, 'data is not an array' if ref $j->{data} ne 'ARRAY';
        push @why, 'no next_cursor key' unless exists $j->{next_cursor};
        push @why, 'has_more is not a boolean' unless JSON::PP::is_bool($j->{has_more});
        push @why, 'has_more and next_cursor disagree'
            if JSON::PP::is_bool($j->{has_more}) && (!!$j->{has_more} != defined $j->{next_cursor});
    }
    my $tc = header($res, 'x-total-count');
    push @why, 'X-Total-Count ' . ($tc // 'missing') unless defined $tc && $tc =~ /^\d+$/;
    if (defined $o{total} && defined $tc && $tc ne $o{total}) {
        push @why, "X-Total-Count $tc, want $o{total}";
    }
    ok(!@why, "$name: a list page") or diag(join('; ', @why) . "\n  body: "
        . substr($res->{body} // '', 0, 400));
    return ref $j eq 'HASH' && ref $j->{data} eq 'ARRAY' ? @{$j->{data}} : ();
}

# walk_pages($t, PATH, LIMIT): follows next_cursor from the first page to the
# last. Returns {ids => [...], pages => [{n, has_more, total}...], error => str}.
# Each page must be a valid list page with at most LIMIT rows; every page but
# the last exactly LIMIT rows.
sub walk_pages {
    my ($t, $path, $limit, %o) = @_;
    my $sep = $path =~ /\?/ ? '&' : '?';
    my (@ids, @pages, $cursor, $error);
    my $max = $o{max_pages} // 2000;
    my @rows;
    while (1) {
        my $url = "$path${sep}limit=$limit" . (defined $cursor ? '&cursor=' . esc($cursor) : '');
        my $res = api($t, GET => $url);
        my $j = $res->{json};
        if ($res->{status} != 200 || ref $j ne 'HASH' || ref $j->{data} ne 'ARRAY') {
            $error = "GET $url: $res->{status} " . substr($res->{body} // '', 0, 300);
            last;
        }
        push @rows, @{$j->{data}};
        push @ids, map { $_->{id} } @{$j->{data}};
        push @pages, {n => scalar @{$j->{data}}, has_more => $j->{has_more} ? 1 : 0,
            cursor => $j->{next_cursor}, total => header($res, 'x-total-count')};
        if (@{$j->{data}} > $limit) {
            $error = "page of " . scalar(@{$j->{data}}) . " rows over limit $limit";
            last;
        }
        last unless $j->{has_more};
        if (!defined $j->{next_cursor}) {
            $error = 'has_more true without next_cursor';
            last;
        }
        if (@{$j->{data}} != $limit) {
            $error = 'a page before the last has ' . scalar(@{$j->{data}}) . " rows, not $limit";
            last;
        }
        $cursor = $j->{next_cursor};
        if (@pages >= $max) {
            $error = "more than $max pages";
            last;
        }
    }
    return {ids => \@ids, rows => \@rows, pages => \@pages, error => $error};
}

# --- fixtures through the API (psql fallback keeps other files testable) ------

sub _fixture {
    my ($t, $what, $path, $body, $fallback) = @_;
    my $res = api($t, POST => $path, json => $body);
    return $res->{json} if $res->{status} == 201 && ref $res->{json} eq 'HASH';
    fail("fixture: POST $path → 201 ($what)");
    diag("got $res->{status}: " . substr($res->{body} // '', 0, 400));
    return $fallback->();
}

sub create_repo {
    my ($t, %o) = @_;
    my $name = $o{name} // uniq_name('repo');
    my $auth = $o{auth_ref} // 'pat-fixture';
    $t->write_secret($auth, "github_pat_fixture_token_0123456789abcdefghij\n")
        unless -e $t->dir . "/secrets/$auth";
    my %body = (name => $name, repo_url => $o{repo_url} // "https://github.com/acme/$name",
        auth_ref => $auth, map { exists $o{$_} ? ($_ => $o{$_}) : () }
        qw(default_branch pr_base_branch webhook_secret_ref));
    return _fixture($t, 'config repo', '/api/v1/config-repos', \%body, sub {
        my $id = uuid7();
        $t->psql("INSERT INTO config_repos (id, name, provider, repo_url, auth_ref) VALUES ("
            . join(',', map { sql_quote($_) } $id, $name, 'github', $body{repo_url}, $auth) . ')');
        return {%body, id => $id, provider => 'github'};
    });
}

sub create_cluster {
    my ($t, %o) = @_;
    my %body = (
        name => uniq_name('cluster'),
        engine_type => 'elasticsearch',
        environment => 'dev',
        base_url => 'https://es.example.com:9200',
        auth_kind => 'es_apikey',
        credentials_ref => 'es-cred',
        %o,
    );
    return _fixture($t, 'cluster', '/api/v1/clusters', \%body, sub {
        my $id = uuid7();
        $t->psql('INSERT INTO clusters (id, name, engine_type, environment, base_url, auth_kind, '
            . 'credentials_ref, config_repo_id, config_path) VALUES ('
            . join(',', map { sql_quote($_) } $id, @body{qw(name engine_type environment base_url
            auth_kind credentials_ref config_repo_id config_path)}) . ')');
        return {%body, id => $id};
    });
}

sub create_template {
    my ($t, %o) = @_;
    my %body = (
        name => uniq_name('tmpl'),
        engine_type => 'elasticsearch',
        body => '{"query": {"multi_match": {"query": "{{q}}", '
            . '"fields": ["title^{{title.boost}}", "body"]}}}',
        declared_params => {'title.boost' => {type => 'float', min => 0, max => 10}},
        %o,
    );
    return _fixture($t, 'template', '/api/v1/query-templates', \%body, sub {
        my $id = uuid7();
        $t->psql('INSERT INTO query_templates (id, name, engine_type, body, declared_params, version) '
            . 'VALUES (' . join(',', map { sql_quote($_) } $id, @body{qw(name engine_type body)})
            . ',' . sql_json($body{declared_params}) . ',' . ($body{version} // 1) . ')');
        return {%body, id => $id, version => $body{version} // 1};
    });
}

# A cluster and a template (API), a query set and a judgment list (psql): what
# a study row needs.
sub base_rows {
    my ($t, %o) = @_;
    my $cluster = $o{cluster} // create_cluster($t);
    my $template = $o{template} // create_template($t);
    my ($qs, $jl) = (uuid7(), uuid7());
    $t->psql('INSERT INTO query_sets (id, name, cluster_id) VALUES ('
        . join(',', map { sql_quote($_) } $qs, uniq_name('qs'), $cluster->{id}) . ");\n"
        . 'INSERT INTO judgment_lists (id, name, query_set_id, cluster_id, target, rubric, status) VALUES ('
        . join(',', map { sql_quote($_) } $jl, uniq_name('jl'), $qs, $cluster->{id}, 'products',
            '', 'complete') . ')');
    return {cluster => $cluster, template => $template, cluster_id => $cluster->{id},
        template_id => $template->{id}, query_set_id => $qs, judgment_list_id => $jl};
}

# insert_study($t, $base, status => ..., created_at => ..., ...): returns the id.
sub insert_study {
    my ($t, $base, %c) = @_;
    my $id = delete $c{id} // uuid7();
    my %row = (
        id => $id,
        name => uniq_name('study'),
        cluster_id => $base->{cluster_id},
        target => 'products',
        template_id => $base->{template_id},
        query_set_id => $base->{query_set_id},
        judgment_list_id => $base->{judgment_list_id},
        status => 'queued',
        optuna_study_name => "optuna-$id",
        search_space => {},
        objective => {},
        config => {},
        %c,
    );
    my @cols = sort keys %row;
    $t->psql('INSERT INTO studies (' . join(',', @cols) . ') VALUES ('
        . join(',', map { ref $row{$_} ? sql_json($row{$_}) : sql_quote($row{$_}) } @cols) . ')');
    return $id;
}

sub insert_trial {
    my ($t, $study_id, %c) = @_;
    my $id = delete $c{id} // uuid7();
    my %row = (id => $id, study_id => $study_id, optuna_trial_number => 0, params => {},
        metrics => {}, status => 'complete', %c);
    my @cols = sort keys %row;
    $t->psql('INSERT INTO trials (' . join(',', @cols) . ') VALUES ('
        . join(',', map { ref $row{$_} ? sql_json($row{$_}) : sql_quote($row{$_}) } @cols) . ')');
    return $id;
}

sub insert_proposal {
    my ($t, %c) = @_;
    my $id = delete $c{id} // uuid7();
    my %row = (id => $id, config_diff => {'title.boost' => {from => 1, to => 2}},
        status => 'pending', %c);
    my @cols = sort keys %row;
    $t->psql('INSERT INTO proposals (' . join(',', @cols) . ') VALUES ('
        . join(',', map { ref $row{$_} ? sql_json($row{$_}) : sql_quote($row{$_}) } @cols) . ')');
    return $id;
}

sub seed_completed {
    my ($t, %body) = @_;
    return api($t, POST => '/api/v1/_test/studies/seed-completed', json => \%body);
}

# --- a raw keepalive client: one socket, many requests --------------------------

sub ka_connect {
    my ($t) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $t->nginx_port, Timeout => 10)
        or die "connect: $!";
    # a read that waits longer than that is a hang: it returns undef (EAGAIN)
    return RelyLoop::Test::socket_timeout($s, 60);
}

# ka_request($sock, METHOD, PATH, body => ..., headers => {...}) → {status,
# headers, body, json} or undef when the server closed the connection.
sub ka_request {
    my ($s, $method, $path, %o) = @_;
    my $body = $o{body};
    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\n";
    my %h = %{$o{headers} || {}};
    $h{'Content-Type'} //= 'application/json' if defined $body;
    $h{'Content-Length'} = length $body if defined $body;
    $req .= "$_: $h{$_}\r\n" for sort keys %h;
    $req .= "\r\n" . ($body // '');
    print $s $req unless $o{no_send};
    return ka_read($s);
}

sub ka_read {
    my ($s) = @_;
    my $head = '';
    while ($head !~ /\r\n\r\n/) {
        my $n = sysread($s, my $buf, 1);
        return undef unless $n;
        $head .= $buf;
    }
    my ($status) = $head =~ m{^HTTP/1\.[01] (\d{3})};
    my %h;
    for my $line (split /\r\n/, $head) {
        next unless $line =~ /^([^:]+):\s*(.*)$/;
        my $k = lc $1;
        $h{$k} = exists $h{$k} ? "$h{$k}, $2" : $2;
    }
    my $body = '';
    if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        while (1) {
            my $line = _read_line($s) // return undef;
            my $len = hex($line);
            last if $len == 0;
            my $chunk = _read_n($s, $len);
            return undef unless defined $chunk;
            $body .= $chunk;
            _read_line($s);
        }
        _read_line($s);
    } elsif (defined $h{'content-length'}) {
        $body = _read_n($s, $h{'content-length'}) // return undef;
    }
    return {status => $status, headers => \%h, body => $body,
        json => length $body ? json_decode($body) : undef};
}

sub _read_line {
    my ($s) = @_;
    my $line = '';
    while ($line !~ /\r\n\z/) {
        my $n = sysread($s, my $c, 1);
        return undef unless $n;
        $line .= $c;
    }
    $line =~ s/\r\n\z//;
    return $line;
}

sub _read_n {
    my ($s, $n) = @_;
    my $out = '';
    while (length $out < $n) {
        my $r = sysread($s, my $buf, $n - length $out);
        return undef unless $r;
        $out .= $buf;
    }
    return $out;
}

# --- PostgreSQL helpers ---------------------------------------------------------

# psql_bg($t, SQL): runs SQL in a background psql (its own file, so the
# harness's psql stays usable); returns the pid.
sub psql_bg {
    my ($t, $sql) = @_;
    my $file = $t->dir . "/bg-$$-" . ++$SEQ . '.sql';
    open my $fh, '>', $file or die;
    print $fh $sql;
    close $fh;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        # its session may be terminated on purpose: keep psql's complaint in a file
        open STDERR, '>>', "$file.log" or POSIX::_exit(1);
        exec 'psql', '-X', '-q', '-At', '-h', '127.0.0.1', '-p', $t->pg_port, '-U', 'postgres',
            '-d', 'relyloop', '-f', $file, '-o', '/dev/null' or POSIX::_exit(1);
    }
    return $pid;
}

# True once an ACCESS EXCLUSIVE lock on TABLE is granted.
sub lock_held {
    my ($t, $table) = @_;
    return $t->psql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        . "WHERE c.relname = '$table' AND l.mode = 'AccessExclusiveLock' AND l.granted") > 0;
}

# The module's backends: [[pid, client_port, state, query]...].
sub pg_backends {
    my ($t) = @_;
    return $t->psql("SELECT pid, client_port, state, replace(left(query, 80), '|', '/') "
        . "FROM pg_stat_activity WHERE application_name = 'relyloop-nginx'");
}

1;
