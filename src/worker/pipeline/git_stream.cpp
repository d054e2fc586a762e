#include "pipeline/git_stream.hpp"

#include <fcntl.h>
#include <git2.h>
#include <git2/sys/stream.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

#include "common/c_callback.hpp"
#include "common/error.hpp"
#include "common/raii.hpp"

namespace relyloop::git {

namespace {

thread_local const std::atomic<bool> *t_cancel = nullptr;

constexpr int kSliceMs = 200;

struct TimedSocket {
    git_stream parent;  // first: libgit2 sees a git_stream *
    std::string host;
    std::string port;
    Fd fd;
};

TimedSocket *self(git_stream *s) { return reinterpret_cast<TimedSocket *>(s); }

bool cancelled() { return t_cancel != nullptr && t_cancel->load(std::memory_order_relaxed); }

int net_error(const std::string &what) {
    git_error_set_str(GIT_ERROR_NET, what.c_str());
    return -1;
}

// Nothing may cross libgit2: an exception in a stream callback fails the
// call with libgit2's error set to its text, which the failed operation
// reports.
template <typename R, typename F>
R guarded(F &&f) noexcept {
    CallbackFault fault;
    R rc = guard_callback(&fault, static_cast<R>(-1), std::forward<F>(f));
    if (fault.set()) {
        git_error_set_str(GIT_ERROR_NET, fault.what());
    }
    return rc;
}

// Waits for `events` on fd: 1 ready, 0 timed out, -1 cancelled or failed.
int wait_fd(int fd, short events, std::chrono::milliseconds budget, const char *what) {
    auto deadline = std::chrono::steady_clock::now() + budget;
    for (;;) {
        if (cancelled()) {
            return net_error(std::string(what) + ": cancelled");
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return 0;
        }
        pollfd p{fd, events, 0};
        int n = poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), kSliceMs)));
        if (n > 0) {
            return 1;
        }
        if (n < 0 && errno != EINTR) {
            return net_error(std::string(what) + ": " + errno_text(errno));
        }
    }
}

int connect_socket(TimedSocket *s) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo *raw_res = nullptr;
    int gai = getaddrinfo(s->host.c_str(), s->port.c_str(), &hints, &raw_res);
    if (gai != 0) {
        return net_error("failed to resolve address for " + s->host + ": " + gai_strerror(gai));
    }
    AddrInfo res(raw_res);
    std::string last = "no address";
    for (addrinfo *ai = res.get(); ai != nullptr; ai = ai->ai_next) {
        Fd fd(
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
        if (!fd) {
            last = errno_text(errno);
            continue;
        }
        int rc = connect(fd.get(), ai->ai_addr, ai->ai_addrlen);
        if (rc < 0 && errno == EINPROGRESS) {
            int w = wait_fd(fd.get(), POLLOUT, kConnectTimeout, "connect");
            if (w < 0) {
                return -1;
            }
            int err = 0;
            socklen_t len = sizeof err;
            if (w == 0) {
                err = ETIMEDOUT;
            } else if (getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
                err = errno;
            }
            rc = err == 0 ? 0 : -1;
            errno = err;
        }
        if (rc == 0) {
            int one = 1;
            (void)setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            s->fd = std::move(fd);
            return 0;
        }
        last = errno_text(errno);
    }
    return net_error("failed to connect to " + s->host + ":" + s->port + ": " + last);
}

int do_connect(git_stream *stream) noexcept {
    return guarded<int>([&] { return connect_socket(self(stream)); });
}

ssize_t read_socket(git_stream *stream, void *data, size_t len) {
    TimedSocket *s = self(stream);
    for (;;) {
        ssize_t n = recv(s->fd.get(), data, len, 0);
        if (n >= 0) {
            return n;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return net_error(std::string("could not read from the socket: ") + errno_text(errno));
        }
        int w = wait_fd(s->fd.get(), POLLIN, kIdleTimeout, "read");
        if (w < 0) {
            return -1;
        }
        if (w == 0) {
            return net_error("the git server sent nothing for " +
                             std::to_string(kIdleTimeout.count()) + " s");
        }
    }
}

ssize_t do_read(git_stream *stream, void *data, size_t len) noexcept {
    return guarded<ssize_t>([&] { return read_socket(stream, data, len); });
}

ssize_t write_socket(git_stream *stream, const char *data, size_t len) {
    TimedSocket *s = self(stream);
    for (;;) {
        ssize_t n = send(s->fd.get(), data, len, MSG_NOSIGNAL);
        if (n >= 0) {
            return n;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return net_error(std::string("could not write to the socket: ") + errno_text(errno));
        }
        int w = wait_fd(s->fd.get(), POLLOUT, kIdleTimeout, "write");
        if (w < 0) {
            return -1;
        }
        if (w == 0) {
            return net_error("the git server accepted nothing for " +
                             std::to_string(kIdleTimeout.count()) + " s");
        }
    }
}

ssize_t do_write(git_stream *stream, const char *data, size_t len, int) noexcept {
    return guarded<ssize_t>([&] { return write_socket(stream, data, len); });
}

int do_close(git_stream *stream) noexcept {
    TimedSocket *s = self(stream);
    s->fd.reset();
    return 0;
}

void do_free(git_stream *stream) noexcept {
    do_close(stream);
    delete self(stream);
}

int do_init(git_stream **out, const char *host, const char *port) noexcept {
    auto *s = new (std::nothrow) TimedSocket();
    if (s == nullptr) {
        git_error_set_oom();
        return -1;
    }
    if (guarded<int>([&] {
            s->host = host;
            s->port = port;
            return 0;
        }) < 0) {
        delete s;
        return -1;
    }
    s->parent.version = GIT_STREAM_VERSION;
    s->parent.encrypted = 0;
    s->parent.proxy_support = 0;
    s->parent.connect = do_connect;
    s->parent.read = do_read;
    s->parent.write = do_write;
    s->parent.close = do_close;
    s->parent.free = do_free;
    *out = &s->parent;
    return 0;
}

}  // namespace

void register_timed_stream() {
    static git_stream_registration registration = {GIT_STREAM_VERSION, do_init, nullptr};
    if (git_stream_register(GIT_STREAM_STANDARD, &registration) < 0) {
        throw std::runtime_error("libgit2: cannot register the socket stream");
    }
}

StreamCancelScope::StreamCancelScope(const std::atomic<bool> *cancel) noexcept
    : previous_(t_cancel) {
    t_cancel = cancel;
}

StreamCancelScope::~StreamCancelScope() { t_cancel = previous_; }

}  // namespace relyloop::git
