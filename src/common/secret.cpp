#include "common/secret.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "common/raii.hpp"
#include "common/redact.hpp"
#include "common/validate.hpp"

namespace relyloop {

Secret::Secret(std::string value)
    : value_(std::move(value)), registration_(redaction::register_secret(value_)) {}

Secret::Secret(Secret &&other) noexcept
    : value_(std::move(other.value_)), registration_(other.registration_) {
    other.registration_ = 0;
    other.wipe();
}

Secret &Secret::operator=(Secret &&other) noexcept {
    if (this != &other) {
        wipe();
        value_ = std::move(other.value_);
        registration_ = other.registration_;
        other.registration_ = 0;
        other.wipe();
    }
    return *this;
}

Secret::~Secret() { wipe(); }

void Secret::wipe() noexcept {
    redaction::unregister_secret(registration_);
    registration_ = 0;
    if (!value_.empty()) {
        explicit_bzero(value_.data(), value_.size());
        value_.clear();
    }
}

const char *secret_status_text(SecretStatus s) noexcept {
    switch (s) {
        case SecretStatus::kOk:
            return "ok";
        case SecretStatus::kInvalidRef:
            return "invalid auth_ref";
        case SecretStatus::kMissing:
            return "no such file in the secrets directory";
        case SecretStatus::kOutsideDir:
            return "resolves outside the secrets directory";
        case SecretStatus::kNotRegular:
            return "not a regular file";
        case SecretStatus::kEmpty:
            return "the file is empty";
        case SecretStatus::kUnreadable:
            return "the file cannot be read";
    }
    return "unknown";
}

namespace {

constexpr size_t kMaxSecretBytes = 16 * 1024;

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// The real path of <dir>/<ref> into real_file (PATH_MAX bytes): kOk only when
// ref is a valid reference and the file, links resolved, lies inside dir's
// real path (docs/security.md). May throw bad_alloc; callers catch.
SecretStatus resolve_inside(std::string_view dir, std::string_view ref, char *real_file) {
    if (!valid_auth_ref(ref)) {
        return SecretStatus::kInvalidRef;
    }
    char real_dir[PATH_MAX];
    std::string dir_s(dir);
    if (realpath(dir_s.c_str(), real_dir) == nullptr) {
        return SecretStatus::kMissing;
    }
    std::string path = dir_s + "/" + std::string(ref);
    if (realpath(path.c_str(), real_file) == nullptr) {
        return errno == EACCES ? SecretStatus::kUnreadable : SecretStatus::kMissing;
    }
    std::string prefix(real_dir);
    if (prefix != "/") {
        prefix += '/';
    }
    if (std::strncmp(real_file, prefix.c_str(), prefix.size()) != 0) {
        return SecretStatus::kOutsideDir;
    }
    return SecretStatus::kOk;
}

}  // namespace

SecretStatus check_secret_file(std::string_view dir, std::string_view ref, Secret *out) noexcept {
    try {
        char real_file[PATH_MAX];
        SecretStatus where = resolve_inside(dir, ref, real_file);
        if (where != SecretStatus::kOk) {
            return where;
        }
        // Open the resolved path without following a link swapped in since.
        Fd fd(open(real_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
        if (!fd) {
            return errno == ENOENT ? SecretStatus::kMissing : SecretStatus::kUnreadable;
        }
        struct stat st {};
        if (fstat(fd.get(), &st) != 0) {
            return SecretStatus::kUnreadable;
        }
        if (!S_ISREG(st.st_mode)) {
            return SecretStatus::kNotRegular;
        }
        if (out == nullptr) {
            return SecretStatus::kOk;
        }
        if (static_cast<size_t>(st.st_size) > kMaxSecretBytes) {
            return SecretStatus::kUnreadable;
        }
        std::string buf(kMaxSecretBytes + 1, '\0');
        size_t have = 0;
        for (;;) {
            ssize_t n = read(fd.get(), buf.data() + have, buf.size() - have);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0) {
                explicit_bzero(buf.data(), buf.size());
                return SecretStatus::kUnreadable;
            }
            if (n == 0) {
                break;
            }
            have += static_cast<size_t>(n);
            if (have == buf.size()) {
                explicit_bzero(buf.data(), buf.size());
                return SecretStatus::kUnreadable;
            }
        }
        fd.reset();
        size_t b = 0, e = have;
        while (b < e && is_space(buf[b])) {
            b++;
        }
        while (e > b && is_space(buf[e - 1])) {
            e--;
        }
        if (b == e) {
            explicit_bzero(buf.data(), buf.size());
            return SecretStatus::kEmpty;
        }
        *out = Secret(buf.substr(b, e - b));
        explicit_bzero(buf.data(), buf.size());
        return SecretStatus::kOk;
    } catch (...) {
        return SecretStatus::kUnreadable;  // the status is the report: callers report it
    }
}

SecretStatus stat_secret_file(std::string_view dir, std::string_view ref) noexcept {
    try {
        char real_file[PATH_MAX];
        SecretStatus where = resolve_inside(dir, ref, real_file);
        if (where != SecretStatus::kOk) {
            return where;
        }
        struct stat st {};
        if (lstat(real_file, &st) != 0) {
            return errno == ENOENT ? SecretStatus::kMissing : SecretStatus::kUnreadable;
        }
        if (!S_ISREG(st.st_mode)) {
            return SecretStatus::kNotRegular;
        }
        if (st.st_size == 0) {
            return SecretStatus::kEmpty;
        }
        if (static_cast<size_t>(st.st_size) > kMaxSecretBytes) {
            return SecretStatus::kUnreadable;
        }
        return SecretStatus::kOk;
    } catch (...) {
        return SecretStatus::kUnreadable;  // the status is the report: callers report it
    }
}

}  // namespace relyloop
