#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace relyloop {

// A PAT in memory. It prints as "***", converts to nothing implicitly, and is
// zeroed when destroyed. reveal() is for the auth header/credential only.
class Secret {
  public:
    Secret() = default;
    // Registers the value with the redactor for the Secret's lifetime
    // (common/redact.hpp: every redact() then removes it).
    explicit Secret(std::string value);
    Secret(const Secret &) = delete;
    Secret &operator=(const Secret &) = delete;
    Secret(Secret &&other) noexcept;
    Secret &operator=(Secret &&other) noexcept;
    ~Secret();

    [[nodiscard]] const std::string &reveal() const noexcept { return value_; }
    [[nodiscard]] bool empty() const noexcept { return value_.empty(); }

  private:
    void wipe() noexcept;

    std::string value_;
    uint64_t registration_ = 0;
};

enum class SecretStatus {
    kOk,
    kInvalidRef,  // auth_ref is not ^[A-Za-z0-9_-]+$
    kMissing,     // no such file (or the secrets dir itself is missing)
    kOutsideDir,  // resolves (through a symlink) outside the secrets dir
    kNotRegular,  // a directory, socket, ...
    kEmpty,       // only whitespace after trimming
    kUnreadable,  // permission denied, too large, I/O error
};

[[nodiscard]] const char *secret_status_text(SecretStatus s) noexcept;

// Resolves <dir>/<ref> (realpath) and checks that it stays inside dir and is a
// regular file. With `out` set, the file is read fresh (rotation needs no
// restart), trimmed, and must be non-empty. A small local read: the only file
// access the module does on nginx's event loop.
[[nodiscard]] SecretStatus check_secret_file(std::string_view dir, std::string_view ref,
                                             Secret *out) noexcept;

// What nginx may check of a PAT file without being able to read it: the
// resolved <dir>/<ref> stays inside dir (realpath needs only search
// permission on the directory), is a regular file, and is not empty. Never
// opens the file: nginx's user has no read permission on PATs (docs/security.md);
// the worker reads and validates the contents (check_secret_file).
[[nodiscard]] SecretStatus stat_secret_file(std::string_view dir, std::string_view ref) noexcept;

}  // namespace relyloop
