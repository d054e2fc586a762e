#pragma once

// No exception crosses a C library (docs/decisions.md, "No exception across a
// C boundary"). A callback handed to libcurl, libgit2, libpq or cairo runs its
// body through guard_callback(): an exception becomes the library's error
// code, and its text is kept in a CallbackFault for the code that made the
// library call, which reports it once after the call returns.

#include <cstdio>
#include <exception>
#include <utility>

namespace relyloop {

class CallbackFault {
  public:
    // Only the first fault is kept: later ones are its consequences.
    void record(const char *what) noexcept {
        if (!set_) {
            std::snprintf(what_, sizeof what_, "%s", what != nullptr ? what : "");
            set_ = true;
        }
    }
    [[nodiscard]] bool set() const noexcept { return set_; }
    [[nodiscard]] const char *what() const noexcept { return what_; }

  private:
    char what_[256] = {};  // fixed: recording must not allocate
    bool set_ = false;
};

// f() when it returns; on_error, with the fault recorded, when it throws.
template <typename R, typename F>
R guard_callback(CallbackFault *fault, R on_error, F &&f) noexcept {
    try {
        return std::forward<F>(f)();
    } catch (const std::exception &e) {
        if (fault != nullptr) fault->record(e.what());
    } catch (...) {
        if (fault != nullptr) fault->record("unknown exception");
    }
    return on_error;
}

}  // namespace relyloop
