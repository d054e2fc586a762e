#pragma once

#include <string>
#include <string_view>

namespace relyloop {

// A fresh UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits.
// Lowercase, hyphenated, 36 characters.
[[nodiscard]] std::string uuid_v7();

// True for a lowercase or uppercase hyphenated UUID of any version.
[[nodiscard]] bool is_uuid(std::string_view s) noexcept;

}  // namespace relyloop
