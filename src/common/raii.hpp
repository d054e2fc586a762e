#pragma once

// One deleter template, one alias per C handle (docs/decisions.md, "The core":
// C handles are owned, never freed by hand). A stateless deleter keeps
// unique_ptr the size of a plain pointer. Handles of libraries not every
// target links live in their own headers: raii_git.hpp, raii_curl.hpp,
// raii_cairo.hpp.

#include <dirent.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <netdb.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <utility>

namespace relyloop {

template <auto F>
struct c_free {
    template <typename T>
    void operator()(T *p) const noexcept {
        if (p != nullptr) {
            F(p);
        }
    }
};

// libpq
using PgConn = std::unique_ptr<PGconn, c_free<PQfinish>>;
using PgResult = std::unique_ptr<PGresult, c_free<PQclear>>;
// Text libpq allocated (an error message, an escaped string).
inline void pq_freemem(char *p) noexcept { PQfreemem(p); }
using PgText = std::unique_ptr<char, c_free<pq_freemem>>;
using PgConninfo = std::unique_ptr<PQconninfoOption, c_free<PQconninfoFree>>;
inline void pq_free_notify(PGnotify *n) noexcept { PQfreemem(n); }
using PgNotify = std::unique_ptr<PGnotify, c_free<pq_free_notify>>;

// jansson: json_decref is inline, hence the lambda.
inline void json_release(json_t *j) noexcept { json_decref(j); }
using Json = std::unique_ptr<json_t, c_free<json_release>>;

inline void free_chars(char *p) noexcept { std::free(p); }
using CString = std::unique_ptr<char, c_free<free_chars>>;

// POSIX
inline void close_dir(DIR *d) noexcept { (void)closedir(d); }
using Dir = std::unique_ptr<DIR, c_free<close_dir>>;
inline void free_addrinfo(addrinfo *a) noexcept { freeaddrinfo(a); }
using AddrInfo = std::unique_ptr<addrinfo, c_free<free_addrinfo>>;

// A file descriptor, closed once; -1 when none.
class Fd {
  public:
    Fd() noexcept = default;
    explicit Fd(int fd) noexcept : fd_(fd) {}
    Fd(Fd &&o) noexcept : fd_(o.release()) {}
    Fd &operator=(Fd &&o) noexcept {
        if (this != &o) {
            reset(o.release());
        }
        return *this;
    }
    Fd(const Fd &) = delete;
    Fd &operator=(const Fd &) = delete;
    ~Fd() { reset(); }

    [[nodiscard]] int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) {
            (void)::close(fd_);
        }
        fd_ = fd;
    }
    // close(2)'s result, for a write whose durability matters.
    int close() noexcept { return fd_ >= 0 ? ::close(std::exchange(fd_, -1)) : 0; }

  private:
    int fd_ = -1;
};

}  // namespace relyloop
