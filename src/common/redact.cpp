#include "common/redact.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "common/base64.hpp"
#include "common/json_writer.hpp"
#include "common/regex.hpp"

namespace relyloop {

namespace {

struct Pattern {
    Regex re;
    const char *replacement;
};

// Compiled once, on first use (thread-safe static init), never freed: the
// patterns live as long as the process, and stay reachable from this static
// pointer (so LeakSanitizer does not count them) even after exit handlers.
const std::array<Pattern, 5> &patterns() {
    static const std::array<Pattern, 5> *const kPatterns = new std::array<Pattern, 5>{{
        {Regex("github_pat_[A-Za-z0-9_]{20,}", Regex::kUtf8), "[REDACTED-GH-TOKEN]"},
        {Regex("gh[a-z]_[A-Za-z0-9_]{36,}", Regex::kUtf8), "[REDACTED-GH-TOKEN]"},
        {Regex("([A-Za-z][A-Za-z0-9+.-]*://[^\\s:/@]*):[^\\s@/]*@", Regex::kUtf8),
         "$1:[REDACTED-URL-PASSWORD]@"},
        // base64("x-access-token:") is exactly 20 characters, so a Basic
        // credential for a token always starts with them, whatever the token.
        {Regex("eC1hY2Nlc3MtdG9rZW46[A-Za-z0-9+/=]*", Regex::kUtf8), "[REDACTED-BASIC-AUTH]"},
        {Regex("(?i)(authorization:\\s*(?:basic|bearer|token)\\s+)[A-Za-z0-9+/=._~-]+",
               Regex::kUtf8),
         "$1[REDACTED]"},
    }};
    return *kPatterns;
}

std::string substitute(const Pattern &p, const std::string &in) {
    // Invalid UTF-8 and the like: fail closed, the caller never sees the input.
    return p.re.replace_all(in, p.replacement).value_or("[REDACTED-UNPRINTABLE]");
}

// Below: the registered secrets (redaction::register_secret).
std::string strip_registered(std::string cur);

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
    return strip_registered(std::move(cur));
}

namespace {

// The base64 of `in`, only the characters `in` fully determines
// (floor(8n/6)): the next one depends on whatever byte follows in the real
// encoded string.
std::string base64_determined(std::string_view in) {
    std::string out = base64(in);
    out.resize(in.size() * 8 / 6);
    return out;
}

// Marks in `mark` every byte of `text` that lies in a run of at least
// min(kMinSecretSlice, |needle|) bytes which is also a substring of `needle`.
// One pass over the text with the longest-common-suffix recurrence: len[j] is
// the length of the longest run ending at the current text byte and at
// needle[j]; it is len_prev[j-1] + 1 where the bytes match, else 0. Only the
// needle positions holding the current text byte are visited (an index per
// byte value), and only the non-zero entries are cleared, so the cost is
// O(|text| x occurrences of a byte in the needle) — about |text| x |needle|/40
// for a token — and O(|needle|) memory; no list of the O(n^2) slices.
void mark_slices(std::string_view text, std::string_view needle, std::vector<char> &mark) {
    const size_t n = needle.size();
    if (n == 0) return;
    const size_t threshold = std::min(kMinSecretSlice, n);
    std::vector<std::vector<uint32_t>> where(256);
    for (size_t j = 0; j < n; j++) {
        where[static_cast<unsigned char>(needle[j])].push_back(static_cast<uint32_t>(j));
    }
    std::vector<uint32_t> prev(n, 0), cur(n, 0);
    std::vector<uint32_t> prev_nz, cur_nz;
    size_t marked_to = 0;  // every position < marked_to is already decided
    for (size_t i = 0; i < text.size(); i++) {
        uint32_t best = 0;
        cur_nz.clear();
        for (uint32_t j : where[static_cast<unsigned char>(text[i])]) {
            uint32_t v = (j > 0 ? prev[j - 1] : 0) + 1;
            cur[j] = v;
            cur_nz.push_back(j);
            if (v > best) best = v;
        }
        for (uint32_t j : prev_nz) prev[j] = 0;
        prev.swap(cur);
        prev_nz.swap(cur_nz);
        if (best >= threshold) {
            for (size_t k = std::max(marked_to, i + 1 - best); k <= i; k++) mark[k] = 1;
            marked_to = i + 1;
        }
    }
}

// The literal secret, its 8+ slices and those of its base64 forms become
// "[REDACTED]" (docs/security.md).
std::string strip_secret(std::string cur, std::string_view secret) {
    if (secret.empty() || cur.empty()) {
        return cur;
    }
    std::vector<char> mark(cur.size(), 0);
    mark_slices(cur, secret, mark);
    // The base64 forms at each alignment: "x-access-token:" is 15 bytes, so
    // in a Basic credential the PAT starts on a base64 group boundary (k = 0);
    // k = 1, 2 cover any other prefix length.
    for (size_t k = 0; k < 3 && k < secret.size(); k++) {
        mark_slices(cur, base64_determined(secret.substr(k)), mark);
    }
    std::string out;
    out.reserve(cur.size());
    for (size_t i = 0; i < cur.size();) {
        if (mark[i] == 0) {
            out.push_back(cur[i++]);
            continue;
        }
        while (i < cur.size() && mark[i] != 0) i++;
        out += "[REDACTED]";
    }
    return out;
}

struct Registry {
    std::mutex mu;
    std::map<uint64_t, std::string> secrets;
    uint64_t next = 1;
    std::atomic<size_t> count{0};
};

// Never freed, like the patterns: a Secret destroyed by an exit handler must
// still find it.
Registry &registry() {
    static Registry *const r = new Registry;
    return *r;
}

std::string strip_registered(std::string cur) {
    Registry &r = registry();
    if (r.count.load(std::memory_order_acquire) == 0) {
        return cur;
    }
    std::lock_guard<std::mutex> lock(r.mu);
    for (const auto &entry : r.secrets) {
        cur = strip_secret(std::move(cur), entry.second);
    }
    return cur;
}

}  // namespace

namespace redaction {

uint64_t register_secret(std::string_view secret) {
    if (secret.size() < kMinSecretSlice) {
        return 0;
    }
    Registry &r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    uint64_t id = r.next++;
    r.secrets.emplace(id, std::string(secret));
    r.count.fetch_add(1, std::memory_order_release);
    return id;
}

void unregister_secret(uint64_t id) noexcept {
    if (id == 0) {
        return;
    }
    try {
        Registry &r = registry();
        std::lock_guard<std::mutex> lock(r.mu);
        auto it = r.secrets.find(id);
        if (it != r.secrets.end()) {
            explicit_bzero(it->second.data(), it->second.size());
            r.secrets.erase(it);
            r.count.fetch_sub(1, std::memory_order_release);
        }
    } catch (...) {
        // a failed lock leaves the entry registered: over-redaction, never a
        // leak; not logged: this layer has no log, and nothing is lost
    }
}

}  // namespace redaction

std::string redact(std::string_view text, std::string_view secret) {
    return strip_secret(redact(text), secret);
}

std::string truncate_utf8(std::string s, size_t max) {
    if (s.size() <= max) {
        return s;
    }
    size_t cut = max;
    // Step back over continuation bytes so a multi-byte character stays whole.
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) {
        cut--;
    }
    s.resize(cut);
    return s;
}

std::string redact_truncate(std::string_view text, size_t max, std::string_view secret) {
    return truncate_utf8(secret.empty() ? redact(text) : redact(text, secret), max);
}

}  // namespace relyloop
