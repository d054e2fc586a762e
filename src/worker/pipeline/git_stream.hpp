#pragma once

// A socket stream for libgit2 that a job can stop. libgit2 1.5 has no network
// timeouts (they arrived in 1.7), and its progress callbacks only run while
// bytes flow: a git server that accepts a connection and then goes silent
// would hold a job thread in recv() forever, past --job-timeout. Registered
// as libgit2's GIT_STREAM_STANDARD (its TLS stream runs on top of it), this
// stream waits in poll() slices of 200 ms, gives up when the running job's
// cancel flag is set, and after kConnectTimeout / kIdleTimeout. It also sets
// TCP_NODELAY, as git's own curl transport does.

#include <atomic>
#include <chrono>

namespace relyloop::git {

inline constexpr std::chrono::seconds kConnectTimeout{15};
inline constexpr std::chrono::seconds kIdleTimeout{120};

// Once per process (configure_libgit2 calls it). Throws std::runtime_error.
void register_timed_stream();

// While alive, libgit2 network I/O on this thread stops when *cancel is set.
class StreamCancelScope {
  public:
    explicit StreamCancelScope(const std::atomic<bool> *cancel) noexcept;
    ~StreamCancelScope();
    StreamCancelScope(const StreamCancelScope &) = delete;
    StreamCancelScope &operator=(const StreamCancelScope &) = delete;

  private:
    const std::atomic<bool> *previous_;
};

}  // namespace relyloop::git
