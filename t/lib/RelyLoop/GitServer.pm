package RelyLoop::GitServer;

# A git smart-HTTP server on loopback for the pipeline tests: nginx + fcgiwrap
# + `git http-backend`, requiring HTTP Basic auth `x-access-token:<PAT>` (401
# otherwise), with bare repositories made from fixture trees.
#
#   my $git = RelyLoop::GitServer->start(dir => $t->dir, token => $pat);
#   $git->create_repo('acme/search-config',
#       files => {'clusters/prod/bm25.params.json' => qq({\n  "title.boost": 1.0\n}\n)},
#       symlinks => {'escape' => '/tmp'}, bulk_files => 5000,
#       branches => {'relyloop/study-x' => {files => {...}, message => '...'}});
#   $git->web_url;                       # http://127.0.0.1:PORT/git (the worker's --github-web-url)
#   $git->repo_url('acme/search-config') # http://127.0.0.1:PORT/git/acme/search-config
#   $git->git('acme/search-config', qw(log --format=%s main))  # git CLI on the bare repo
#   $git->stop;
#
# With stall => 1, URLs under /git/stall/ lead to a server that accepts the
# connection and never answers (a hung GitHub): $git->repo_url('stall/repo').
#
# fcgiwrap runs in its own session and is stopped by process group (its
# preforked children would otherwise keep the socket). The token is stored
# only as a SHA-512 crypt hash; the git CLI here works on the bare
# repositories directly and never sees it.

use strict;
use warnings;

use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use POSIX qw(:sys_wait_h setsid);
use Time::HiRes qw(sleep time);

use RelyLoop::Proc qw(slurp stop_pid);

my $IS_ROOT = $> == 0;
my $GIT = 'git -c user.name=Seeder -c user.email=seeder@example.com -c init.defaultBranch=main '
    . '-c core.autocrlf=false -c protocol.file.allow=always';

sub start {
    my ($class, %o) = @_;
    my $dir = ($o{dir} // die 'dir required') . '/git-server';
    make_path(map { "$dir/$_" } qw(repos conf logs tmp seeds));
    my $self = bless {dir => $dir, owner_pid => $$, port => $o{port} // _free_port()}, $class;
    $self->set_token($o{token} // die 'token required');
    $self->_start_silent if $o{stall};

    my $sock = "$dir/fcgiwrap.sock";
    unlink $sock;
    my $fpid = fork // die "fork: $!";
    if ($fpid == 0) {
        setsid();
        open STDOUT, '>>', "$dir/logs/fcgiwrap.log";
        open STDERR, '>>', "$dir/logs/fcgiwrap.log";
        exec 'fcgiwrap', '-c', '4', '-s', "unix:$sock" or POSIX::_exit(127);
    }
    $self->{fcgi_pid} = $fpid;
    my $deadline = time + 10;
    sleep 0.02 while !-S $sock && time < $deadline;
    die "fcgiwrap did not start" unless -S $sock;

    $self->_write_conf;
    my $npid = fork // die "fork: $!";
    if ($npid == 0) {
        open STDOUT, '>>', "$dir/logs/stdout.log";
        open STDERR, '>>', "$dir/logs/stderr.log";
        exec 'nginx', '-p', $dir, '-c', "$dir/conf/nginx.conf", '-e', "$dir/logs/error.log"
            or POSIX::_exit(127);
    }
    $self->{nginx_pid} = $npid;
    $deadline = time + 30;
    my $up;
    while (!$up && time < $deadline) {
        $up = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$self->{port}", Timeout => 1);
        die "git nginx exited: " . slurp("$dir/logs/error.log")
            if waitpid($npid, WNOHANG) == $npid;
        sleep 0.05 unless $up;
    }
    die "git nginx did not come up: " . slurp("$dir/logs/error.log") unless $up;
    return $self;
}

# A listener that accepts and then says nothing, for the /git/stall/ location.
sub _start_silent {
    my ($self) = @_;
    my $l = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1', LocalPort => 0,
        Proto => 'tcp', ReuseAddr => 1) or die "silent listener: $!";
    $self->{stall_port} = $l->sockport;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my @held;
        while (my $c = $l->accept) { push @held, $c }
        POSIX::_exit(0);
    }
    close $l;
    $self->{silent_pid} = $pid;
}

sub _free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0,
        Proto => 'tcp', ReuseAddr => 1) or die "free_port: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}

sub _write_conf {
    my ($self) = @_;
    my $d = $self->{dir};
    my $user = $IS_ROOT ? 'user root;' : '';
    open my $fh, '>', "$d/conf/nginx.conf" or die;
    print $fh <<"EOF";
daemon off;
$user
worker_processes 2;
error_log $d/logs/error.log info;
pid $d/logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log $d/logs/access.log;
    client_body_temp_path $d/tmp/body;
    fastcgi_temp_path $d/tmp/fastcgi;
    proxy_temp_path $d/tmp/proxy;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    server {
        listen 127.0.0.1:$self->{port};
@{[ $self->{stall_port} ? "        location ^~ /git/stall/ {
            proxy_pass http://127.0.0.1:$self->{stall_port};
            proxy_read_timeout 600s;
        }" : '' ]}
        location ~ ^/git(/.*)\$ {
            auth_basic "git";
            auth_basic_user_file $d/conf/htpasswd;
            client_max_body_size 0;
            fastcgi_buffering off;
            fastcgi_request_buffering off;
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;
            fastcgi_param GIT_PROJECT_ROOT $d/repos;
            fastcgi_param GIT_HTTP_EXPORT_ALL "";
            fastcgi_param PATH_INFO \$1;
            fastcgi_param REMOTE_USER \$remote_user;
            # auth_basic has checked it; the CGI's environment (which the token
            # sweep samples) does not need the credential
            fastcgi_param HTTP_AUTHORIZATION "";
            fastcgi_pass unix:$d/fcgiwrap.sock;
        }
    }
}
EOF
    close $fh;
}

# A new accepted PAT (nginx reads the file per request): rotation tests.
sub set_token {
    my ($self, $token) = @_;
    my @c = ('.', '/', 0 .. 9, 'a' .. 'z', 'A' .. 'Z');
    my $salt = join '', map { $c[rand @c] } 1 .. 16;
    my $hash = crypt($token, "\$6\$$salt\$");
    open my $fh, '>', "$self->{dir}/conf/htpasswd.tmp" or die;
    print $fh "x-access-token:$hash\n";
    close $fh;
    rename "$self->{dir}/conf/htpasswd.tmp", "$self->{dir}/conf/htpasswd" or die;
    return $self;
}

sub port { $_[0]{port} }
sub web_url { "http://127.0.0.1:$_[0]{port}/git" }
sub repo_url { $_[0]->web_url . "/$_[1]" }
sub repos { "$_[0]{dir}/repos" }
sub bare { "$_[0]{dir}/repos/$_[1].git" }
sub access_log { slurp("$_[0]{dir}/logs/access.log") }
sub error_log { slurp("$_[0]{dir}/logs/error.log") }

# create_repo('owner/name', files => {path => content}, symlinks => {path => target},
#             bulk_files => N, base => 'main', branches => {name => {files, symlinks, message}})
sub create_repo {
    my ($self, $name, %o) = @_;
    my $bare = $self->bare($name);
    remove_tree($bare);
    make_path($bare);
    _run("$GIT init -q --bare " . _q($bare));
    _run("$GIT -C " . _q($bare) . ' config http.receivepack true');
    (my $seed_name = $name) =~ s{/}{--}g;
    my $seed = "$self->{dir}/seeds/$seed_name";
    remove_tree($seed);
    make_path($seed);
    _run("$GIT init -q " . _q($seed));
    my $base = $o{base} // 'main';
    _run("cd " . _q($seed) . " && $GIT checkout -q -b " . _q($base));
    _write_tree($seed, $o{files} || {}, $o{symlinks} || {});
    if (my $n = $o{bulk_files}) {
        for my $i (0 .. $n - 1) {
            my $d = sprintf "%s/data/d%03d", $seed, int($i / 100);
            make_path($d) unless -d $d;
            open my $fh, '>', sprintf("%s/f%05d.json", $d, $i) or die;
            printf $fh "{\n  \"id\": %d,\n  \"name\": \"document %d\",\n  \"weight\": %.2f\n}\n",
                $i, $i, ($i % 97) / 10;
            close $fh;
        }
    }
    _write_tree($seed, {'README.md' => "# $name\n"}, {}) unless -e "$seed/README.md";
    _run("cd " . _q($seed) . " && $GIT add -A && $GIT commit -q -m 'initial config'");
    _run("cd " . _q($seed) . " && $GIT push -q " . _q($bare) . " HEAD:refs/heads/$base");
    for my $b (sort keys %{$o{branches} || {}}) {
        my $spec = $o{branches}{$b};
        _run("cd " . _q($seed) . " && $GIT checkout -q -B " . _q($b) . " " . _q($base));
        _write_tree($seed, $spec->{files} || {}, $spec->{symlinks} || {});
        my $msg = $spec->{message} // "work on $b";
        _run("cd " . _q($seed) . " && $GIT add -A && $GIT commit -q --allow-empty -F - <<'MSG'\n$msg\nMSG\n");
        _run("cd " . _q($seed) . " && $GIT push -q " . _q($bare) . " HEAD:refs/heads/" . _q($b));
    }
    _run("cd " . _q($seed) . " && $GIT checkout -q " . _q($base));
    return $bare;
}

# commit(name, files => {...}, symlinks => {...}, message => '...', branch => 'main',
#        delete => [paths]): a new commit on a branch of the bare repo (someone else's push).
sub commit {
    my ($self, $name, %o) = @_;
    (my $seed_name = $name) =~ s{/}{--}g;
    my $seed = "$self->{dir}/seeds/$seed_name";
    my $branch = $o{branch} // 'main';
    my $bare = $self->bare($name);
    _run("cd " . _q($seed) . " && $GIT fetch -q " . _q($bare) . " " . _q("+refs/heads/$branch:refs/seed/$branch")
        . " && $GIT checkout -q -B " . _q($branch) . " refs/seed/" . _q($branch));
    unlink "$seed/$_" for @{$o{delete} || []};
    _write_tree($seed, $o{files} || {}, $o{symlinks} || {});
    my $msg = $o{message} // 'update';
    _run("cd " . _q($seed) . " && $GIT add -A && $GIT commit -q --allow-empty -F - <<'MSG'\n$msg\nMSG\n");
    _run("cd " . _q($seed) . " && $GIT push -q " . _q($bare) . " HEAD:refs/heads/" . _q($branch));
    return $self;
}

# git('owner/name', @args): the git CLI on the bare repository; returns stdout.
sub git {
    my ($self, $name, @args) = @_;
    my $cmd = "$GIT --git-dir=" . _q($self->bare($name)) . ' ' . join(' ', map { _q($_) } @args);
    my $out = qx{$cmd 2>&1};
    die "git @args: $out" if $? != 0;
    return $out;
}

# git_ok(...): as git(), but undef instead of dying.
sub git_ok {
    my ($self, $name, @args) = @_;
    my $out = eval { $self->git($name, @args) };
    return $out;
}

sub branches {
    my ($self, $name) = @_;
    return sort grep { length } split /\n/,
        $self->git($name, 'for-each-ref', '--format=%(refname:short)', 'refs/heads/');
}

sub _write_tree {
    my ($root, $files, $links) = @_;
    for my $p (sort keys %$files) {
        my $f = "$root/$p";
        (my $d = $f) =~ s{/[^/]+$}{};
        make_path($d) unless -d $d;
        unlink $f if -l $f;
        open my $fh, '>:raw', $f or die "$f: $!";
        print $fh $files->{$p};
        close $fh;
    }
    for my $p (sort keys %$links) {
        my $f = "$root/$p";
        (my $d = $f) =~ s{/[^/]+$}{};
        make_path($d) unless -d $d;
        unlink $f;
        symlink($links->{$p}, $f) or die "symlink $f: $!";
    }
}

sub _q {
    my ($s) = @_;
    return $s if $s =~ m{^[A-Za-z0-9_./:=+@%-]+$};
    $s =~ s/'/'\\''/g;
    return "'$s'";
}

sub _run {
    my ($cmd) = @_;
    my $out = qx{$cmd 2>&1};
    die "command failed: $cmd\n$out" if $? != 0;
    return $out;
}

sub stop {
    my ($self) = @_;
    return if $self->{owner_pid} != $$;
    if (my $sp = delete $self->{silent_pid}) {
        stop_pid($sp, 'TERM');
    }
    if (my $n = delete $self->{nginx_pid}) {
        stop_pid($n, 'TERM');
    }
    if (my $f = delete $self->{fcgi_pid}) {
        stop_pid(-$f, 'TERM');    # the whole session: fcgiwrap -c N preforks
        kill 'KILL', -$f;
    }
}

sub DESTROY { $_[0]->stop }

1;
