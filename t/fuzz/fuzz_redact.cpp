// libFuzzer target: redaction (docs/security.md, "Redaction rules").
// Property: no slice of 8 or more characters of the PAT, nor of the
// PAT-determined part of its Basic credential, survives redact(text, PAT) or
// redact_truncate(text, n, PAT) — whatever the text. Aborts otherwise.
//
// Input: byte 0 picks the PAT (a classic, a fine-grained or a non-GitHub
// shaped one); then a small program: each op byte either appends literal
// bytes from the input or a slice of the PAT / of one of its base64 forms, so
// the fuzzer builds texts full of near-tokens.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/base64.hpp"
#include "common/redact.hpp"

namespace {

const std::string kPats[] = {
    "ghp_Kq3ZrT8vLw1NpXy5BcD7eFgH2jM4sU6aWxYz",
    "github_pat_11ABCDEFG0123456789abc_QwErTyUiOpAsDfGhJkLzXcVbNm0123456789QwErTyUiOpAsDfGhJkLzXcV",
    "zz-test-token-0123456789-not-github-shaped",
    "aaaaaaaaaaaaaaaaaaaaaaaab",  // self-overlapping: slices everywhere
};

std::string b64(std::string_view in) { return relyloop::base64(in); }

// The characters of b64(prefix + pat) that only the PAT determines.
std::string determined(std::string_view prefix, std::string_view pat) {
    std::string enc = b64(std::string(prefix) + std::string(pat));
    size_t from = (prefix.size() + 2) / 3 * 4;
    size_t to = (prefix.size() + pat.size()) / 3 * 4;
    return to > from ? enc.substr(from, to - from) : "";
}

void check(const std::string &out, std::string_view needle, const std::string &in,
           const char *what) {
    for (size_t i = 0; i + relyloop::kMinSecretSlice <= needle.size(); i++) {
        std::string_view s = needle.substr(i, relyloop::kMinSecretSlice);
        if (out.find(s) != std::string::npos) {
            std::fprintf(stderr, "%s: slice \"%.*s\" survived\nin:  %s\nout: %s\n", what,
                         static_cast<int>(s.size()), s.data(), in.c_str(), out.c_str());
            std::abort();
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const std::string &pat = kPats[data[0] % (sizeof kPats / sizeof kPats[0])];
    const std::string sources[] = {pat,
                                   b64("x-access-token:" + pat),
                                   b64(pat),
                                   b64("a" + pat),
                                   b64("ab" + pat),
                                   "Authorization: Basic ",
                                   "[REDACTED]"};
    std::string text;
    size_t i = 1;
    while (i < size && text.size() < 1024) {
        uint8_t op = data[i++];
        if (op < 128 || i >= size) {
            // literal run of (op % 16 + 1) bytes
            size_t n = std::min<size_t>(op % 16 + 1, size - i);
            text.append(reinterpret_cast<const char *>(data + i), n);
            i += n;
        } else {
            const std::string &src = sources[(op - 128) % (sizeof sources / sizeof sources[0])];
            size_t a = data[i++] % src.size();
            size_t len = i < size ? 1 + data[i++] % (src.size() - a) : src.size() - a;
            text += src.substr(a, len);
        }
    }
    const std::string cred = determined("x-access-token:", pat);
    std::string out = relyloop::redact(text, pat);
    check(out, pat, text, "redact");
    check(out, cred, text, "redact (basic)");
    for (const char *prefix : {"", "a", "ab"})
        check(out, determined(prefix, pat), text, "redact (b64)");
    std::string cut = relyloop::redact_truncate(text, size % (text.size() + 1), pat);
    check(cut, pat, text, "redact_truncate");
    check(cut, cred, text, "redact_truncate (basic)");
    // Without the PAT: anything GitHub-shaped or Basic-shaped still goes.
    if (pat.starts_with("gh")) {
        std::string plain = relyloop::redact(text);
        if (plain.find(pat) != std::string::npos) {
            std::fprintf(stderr, "redact(text): the token survived\nin: %s\n", text.c_str());
            std::abort();
        }
    }
    return 0;
}
