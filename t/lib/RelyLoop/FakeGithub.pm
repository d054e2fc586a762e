package RelyLoop::FakeGithub;

# The scriptable fake GitHub REST API (t/tools/fake_github.py) from Perl.
#
#   my $gh = RelyLoop::FakeGithub->start(dir => $t->dir, token => $pat,
#                                        web_url => $git->web_url, git_root => $git->repos);
#   $gh->script(create_pull => {status => 500}, {status => 500});   # then the default 201
#   my @posts = $gh->requests(route => 'create_pull');
#   $gh->stop;
#
# The token reaches the fake through its control endpoint, never its argv.

use strict;
use warnings;

use File::Basename qw(dirname);
use File::Path qw(make_path);
use HTTP::Tiny;
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);

use RelyLoop::Proc qw(slurp stop_pid);

my $TOOL = dirname(__FILE__) . '/../../tools/fake_github.py';
my $JSON = JSON::PP->new->canonical->allow_nonref;

sub start {
    my ($class, %o) = @_;
    my $dir = ($o{dir} // die 'dir required') . '/fake-github';
    make_path($dir);
    my $port_file = "$dir/port";
    unlink $port_file;
    my @args = ('python3', $TOOL, '--port', $o{port} // 0, '--port-file', $port_file,
        '--web-url', $o{web_url} // 'https://github.com');
    push @args, '--api-prefix', $o{api_prefix} if $o{api_prefix};
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', "$dir/stdout.log";
        open STDERR, '>>', "$dir/stderr.log";
        exec @args or POSIX::_exit(127);
    }
    my $self = bless {pid => $pid, dir => $dir, owner_pid => $$,
        api_prefix => $o{api_prefix} // '',
        ua => HTTP::Tiny->new(timeout => 30, keep_alive => 0)}, $class;
    my $deadline = time + 15;
    while (!-s $port_file && time < $deadline) {
        die "fake_github exited: " . slurp("$dir/stderr.log") if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }
    die "fake_github did not start" unless -s $port_file;
    $self->{port} = slurp($port_file) + 0;
    $self->config(token => $o{token} // '', ($o{git_root} ? (git_root => $o{git_root}) : ()));
    return $self;
}

sub pid { $_[0]{pid} }
sub port { $_[0]{port} }
sub base { "http://127.0.0.1:$_[0]{port}" }
# The --github-api-url to give the worker.
sub api_url { $_[0]->base . $_[0]{api_prefix} }

sub _control {
    my ($self, $method, $path, $body) = @_;
    my $res = $self->{ua}->request($method, $self->base . "/_control/$path",
        defined $body ? {content => $JSON->encode($body),
            headers => {'Content-Type' => 'application/json'}} : {});
    die "fake_github $path: $res->{status} $res->{content}" unless $res->{success};
    return $JSON->decode($res->{content});
}

sub config { my ($self, %c) = @_; $self->_control(POST => 'config', \%c); $self }

# script(ROUTE => {status, body|raw, headers, delay, passthrough}, ...)
sub script {
    my ($self, $route, @responses) = @_;
    $self->_control(POST => 'script', {route => $route, responses => \@responses});
    return $self;
}

# requests(route => 'create_pull', method => 'POST'): the recorded API requests,
# oldest first; each {method, path, query, headers (lower-case), body, route,
# status, json (the decoded body)}.
sub requests {
    my ($self, %f) = @_;
    my @r = @{$self->_control(GET => 'requests')};
    for my $k (keys %f) {
        @r = grep { defined $_->{$k} && $_->{$k} eq $f{$k} } @r;
    }
    for (@r) {
        $_->{json} = eval { $JSON->decode($_->{body}) } if length($_->{body} // '');
    }
    return @r;
}

sub pulls { @{$_[0]->_control(GET => 'pulls')} }
sub hooks { @{$_[0]->_control(GET => 'hooks')} }

# set_pull(repo => 'o/r', number => 7, state => 'closed', merged => 1,
# merged_at => '2026-...Z'): creates or changes a PR; its updated_at moves on.
sub set_pull {
    my ($self, %p) = @_;
    $p{merged} = $p{merged} ? JSON::PP::true : JSON::PP::false if exists $p{merged};
    return $self->_control(POST => 'pull', \%p);
}
sub comments { @{$_[0]->_control(GET => 'comments')} }

# reset() clears everything; reset(requests => 1) only the log, etc.
sub reset {
    my ($self, %what) = @_;
    $self->_control(POST => 'reset', \%what);
    return $self;
}

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    return if $self->{owner_pid} != $$;
    stop_pid($pid, 'TERM');
}

sub DESTROY { $_[0]->stop }

1;
