#include "common/uuid.hpp"

#include <sys/random.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "common/strings.hpp"

namespace relyloop {

namespace {

void fill_random(unsigned char *out, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t got = getrandom(out + done, n - done, 0);
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw std::runtime_error("getrandom failed");
        }
        done += static_cast<size_t>(got);
    }
}

// The kernel's CSPRNG, read 4 KiB at a time: one getrandom() per 256 ids
// instead of one per id (it showed in the profile of every API request,
// which mints an X-Request-ID). Per thread, and per process: nginx's master
// loads the core and then starts its worker processes as copies of itself,
// so a pool filled in the master is dropped when the pid changes and no two
// processes hand out the same bytes. (The product itself starts no process.)
void random_bytes(unsigned char *out, size_t n) {
    struct Pool {
        unsigned char buf[4096];
        size_t used = sizeof buf;
        pid_t pid = 0;
    };
    thread_local Pool pool;
    pid_t pid = getpid();
    if (pool.pid != pid) {
        pool.used = sizeof pool.buf;
        pool.pid = pid;
    }
    if (n > sizeof pool.buf) {
        fill_random(out, n);
        return;
    }
    if (sizeof pool.buf - pool.used < n) {
        fill_random(pool.buf, sizeof pool.buf);
        pool.used = 0;
    }
    std::memcpy(out, pool.buf + pool.used, n);
    explicit_bzero(pool.buf + pool.used, n);
    pool.used += n;
}

}  // namespace

std::string uuid_v7() {
    std::array<unsigned char, 16> b{};
    random_bytes(b.data(), b.size());
    auto ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
    for (int i = 0; i < 6; i++) {
        b[static_cast<size_t>(i)] = static_cast<unsigned char>(ms >> (40 - 8 * i));
    }
    b[6] = static_cast<unsigned char>(0x70 | (b[6] & 0x0f));
    b[8] = static_cast<unsigned char>(0x80 | (b[8] & 0x3f));

    std::string s;
    s.reserve(36);
    for (size_t i = 0; i < b.size(); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            s.push_back('-');
        }
        s.push_back(hex_digit(b[i] >> 4));
        s.push_back(hex_digit(b[i]));
    }
    return s;
}

bool is_uuid(std::string_view s) noexcept {
    if (s.size() != 36) {
        return false;
    }
    for (size_t i = 0; i < s.size(); i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') {
                return false;
            }
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

}  // namespace relyloop
