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

// ' ', '\t', '\n', '\v', '\f', '\r': std::isspace in the "C" locale.
[[nodiscard]] constexpr bool is_ascii_space(char c) noexcept {
    return c == ' ' || (c >= '\t' && c <= '\r');
}

// `s` without leading and trailing ASCII white space.
[[nodiscard]] constexpr std::string_view trim_ascii_space(std::string_view s) noexcept {
    while (!s.empty() && is_ascii_space(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_ascii_space(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

// `s` without leading and trailing HTTP optional white space (' ', '\t').
[[nodiscard]] constexpr std::string_view trim_ows(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
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

// The lower-case hexadecimal digit of the low four bits of `v`.
[[nodiscard]] constexpr char hex_digit(unsigned v) noexcept { return "0123456789abcdef"[v & 0x0f]; }

// The value of one hexadecimal digit (either case), or -1.
[[nodiscard]] constexpr int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// `n` bytes as lower-case hexadecimal, two digits a byte.
[[nodiscard]] inline std::string hex_lower(const unsigned char *p, std::size_t n) {
    std::string s;
    s.reserve(n * 2);
    for (std::size_t i = 0; i < n; i++) {
        s.push_back(hex_digit(p[i] >> 4));
        s.push_back(hex_digit(p[i]));
    }
    return s;
}

}  // namespace relyloop
