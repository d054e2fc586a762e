#pragma once

#include <string>
#include <string_view>

namespace relyloop {

// SPEC §9: GitHub tokens become "[REDACTED-GH-TOKEN]" and the password of a
// "scheme://user:pass@" URL becomes "[REDACTED-URL-PASSWORD]". Applied to
// every log line, error string, DB write, PR text and commit message.
// Thread-safe (the compiled patterns are shared and read-only).
[[nodiscard]] std::string redact(std::string_view text);

// As redact(), and additionally every literal occurrence of `secret` (when
// non-empty) becomes "[REDACTED]": a PAT that does not look like a GitHub
// token is still never echoed back.
[[nodiscard]] std::string redact(std::string_view text, std::string_view secret);

}  // namespace relyloop
