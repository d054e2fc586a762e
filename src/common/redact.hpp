#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace relyloop {

// docs/security.md, "Redaction rules": GitHub tokens become "[REDACTED-GH-TOKEN]"
// and the password of a
// "scheme://user:pass@" URL becomes "[REDACTED-URL-PASSWORD]". Applied to
// every log line, error string, DB write, PR text and commit message.
// Thread-safe (the compiled patterns are shared and read-only).
[[nodiscard]] std::string redact(std::string_view text);

// As redact(), and additionally `secret` (a PAT; when non-empty) becomes
// "[REDACTED]": the literal token, every slice of it of kMinSecretSlice or
// more characters (what survives when someone else cut the text inside the
// token), and the same for its base64 forms at each of the three byte
// alignments (the Basic-auth credential "x-access-token:<PAT>" and any other
// base64 wrapping). The rule and its cost are in docs/security.md.
[[nodiscard]] std::string redact(std::string_view text, std::string_view secret);

// The shortest slice of a secret that redact(text, secret) removes.
inline constexpr size_t kMinSecretSlice = 8;

// The process-wide set of secrets in memory: while registered, a secret is
// removed by every redact() call, the one-argument form included, exactly
// as redact(text, secret) removes it. relyloop::Secret registers its value
// for its lifetime (docs/security.md), so a message that reaches the log or
// the database through a path that did not pass the PAT still loses it.
// Secrets shorter than kMinSecretSlice are not registered.
namespace redaction {
[[nodiscard]] uint64_t register_secret(std::string_view secret);  // 0: not registered
void unregister_secret(uint64_t id) noexcept;
}  // namespace redaction

// Redact first, then cut to at most `max` bytes on a UTF-8 boundary: the
// only way external text (GitHub bodies, libgit2/libcurl/libpq messages) may
// be shortened, so a cut can never split a token before the redactor saw it.
[[nodiscard]] std::string redact_truncate(std::string_view text, size_t max,
                                          std::string_view secret = {});

// Cuts `s` to at most `max` bytes without splitting a UTF-8 sequence. For
// text that has already passed redact().
[[nodiscard]] std::string truncate_utf8(std::string s, size_t max);

}  // namespace relyloop
