#pragma once

// The one wrapper around PCRE2 (8-bit code units) for the core and the
// worker: a pattern compiled once, owned by a Regex, and matched with match
// data of its own per call, so a Regex shared read-only is safe from any
// thread.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

struct pcre2_real_code_8;  // pcre2_code, see <pcre2.h>

namespace relyloop {

class Regex {
  public:
    enum Option : uint32_t {
        kNone = 0,
        // matches() must cover the whole subject (PCRE2_ANCHORED |
        // PCRE2_ENDANCHORED)
        kWhole = 1u << 0,
        // the pattern and the subjects are UTF-8 (PCRE2_UTF); a subject of
        // replace_all() must already be valid UTF-8: it is not checked again
        kUtf8 = 1u << 1,
    };

    // Throws std::logic_error on a pattern PCRE2 does not compile (the
    // patterns are constants of the program), std::bad_alloc without memory.
    explicit Regex(const char *pattern, uint32_t options = kNone);
    ~Regex();
    Regex(const Regex &) = delete;
    Regex &operator=(const Regex &) = delete;

    // Whether the pattern matches `subject` (all of it with kWhole).
    [[nodiscard]] bool matches(std::string_view subject) const;

    // `subject` with every match replaced by `replacement` ("$1" names a
    // group); nullopt when PCRE2 cannot substitute (e.g. invalid UTF-8).
    [[nodiscard]] std::optional<std::string> replace_all(std::string_view subject,
                                                         const char *replacement) const;

  private:
    pcre2_real_code_8 *code_;
};

}  // namespace relyloop
