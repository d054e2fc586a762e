#include "common/redact.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>
#include <stdexcept>
#include <vector>

#include "common/json_writer.hpp"

namespace relyloop {

namespace {

struct Pattern {
    pcre2_code *code;
    const char *replacement;
};

pcre2_code *compile(const char *re) {
    int err = 0;
    PCRE2_SIZE off = 0;
    pcre2_code *code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re), PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF, &err, &off, nullptr);
    if (code == nullptr) {
        throw std::logic_error("redact: bad pattern");
    }
    return code;
}

// Compiled once, on first use (thread-safe static init), never freed: the
// patterns live as long as the process, and stay reachable from this static
// pointer (so LeakSanitizer does not count them) even after exit handlers.
const std::vector<Pattern> &patterns() {
    static const std::vector<Pattern> *const kPatterns = new std::vector<Pattern>{
        {compile("github_pat_[A-Za-z0-9_]{20,}"), "[REDACTED-GH-TOKEN]"},
        {compile("gh[a-z]_[A-Za-z0-9_]{36,}"), "[REDACTED-GH-TOKEN]"},
        {compile("([A-Za-z][A-Za-z0-9+.-]*://[^\\s:/@]*):[^\\s@/]*@"),
         "$1:[REDACTED-URL-PASSWORD]@"},
    };
    return *kPatterns;
}

std::string substitute(const Pattern &p, const std::string &in) {
    using MatchData = std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)>;
    MatchData md(pcre2_match_data_create_from_pattern(p.code, nullptr), pcre2_match_data_free);
    if (!md) {
        throw std::bad_alloc();
    }
    std::string out(in.size() + 64, '\0');
    for (int tries = 0; tries < 4; tries++) {
        PCRE2_SIZE out_len = out.size();
        int rc = pcre2_substitute(
            p.code, reinterpret_cast<PCRE2_SPTR>(in.data()), in.size(), 0,
            PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH | PCRE2_NO_UTF_CHECK,
            md.get(), nullptr, reinterpret_cast<PCRE2_SPTR>(p.replacement),
            PCRE2_ZERO_TERMINATED, reinterpret_cast<PCRE2_UCHAR *>(out.data()), &out_len);
        if (rc >= 0) {
            out.resize(out_len);
            return out;
        }
        if (rc == PCRE2_ERROR_NOMEMORY) {
            out.resize(out_len + 1);
            continue;
        }
        break;
    }
    // Invalid UTF-8 and the like: fail closed, the caller never sees the input.
    return "[REDACTED-UNPRINTABLE]";
}

}  // namespace

std::string redact(std::string_view text) {
    std::string cur(text);
    if (!json::valid_utf8(cur)) {
        // Keep the printable ASCII only, then redact: a stray byte must not
        // make the whole message vanish, nor let a token through.
        std::string ascii;
        for (char c : cur) {
            auto u = static_cast<unsigned char>(c);
            ascii.push_back(u >= 0x20 && u < 0x7f ? c : (c == '\n' || c == '\t' ? c : '?'));
        }
        cur = std::move(ascii);
    }
    for (const Pattern &p : patterns()) {
        cur = substitute(p, cur);
    }
    return cur;
}

std::string redact(std::string_view text, std::string_view secret) {
    std::string cur = redact(text);
    if (secret.empty()) {
        return cur;
    }
    for (size_t pos = cur.find(secret); pos != std::string::npos;
         pos = cur.find(secret, pos + 10)) {
        cur.replace(pos, secret.size(), "[REDACTED]");
    }
    return cur;
}

}  // namespace relyloop
