#pragma once

// Small text rules shared by the core and the worker, written once here
// (docs/decisions.md, "One owner for each small rule"). ASCII only: none of
// them depends on the process locale.

#include <cstddef>
#include <string>
#include <string_view>

namespace relyloop {

// `s` without its trailing '/' characters, but never shorter than `keep`
// characters: keep = 0 for a URL prefix ("https://h/" → "https://h", "/" →
// ""), keep = 1 for a file system path, whose root "/" stays "/".
[[nodiscard]] constexpr std::string_view strip_trailing_slashes(std::string_view s,
                                                                std::size_t keep = 0) noexcept {
    while (s.size() > keep && s.back() == '/') {
        s.remove_suffix(1);
    }
    return s;
}

// 'A'..'Z' → 'a'..'z'; every other byte unchanged.
[[nodiscard]] constexpr char ascii_lower(char c) noexcept {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

[[nodiscard]] inline std::string ascii_lower(std::string_view s) {
    std::string out(s);
    for (char &c : out) {
        c = ascii_lower(c);
    }
    return out;
}

// Equal but for ASCII letter case.
[[nodiscard]] constexpr bool iequals_ascii(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); i++) {
        if (ascii_lower(a[i]) != ascii_lower(b[i])) {
            return false;
        }
    }
    return true;
}

}  // namespace relyloop
