#include "common/regex.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>
#include <new>
#include <stdexcept>

namespace relyloop {

namespace {

using MatchData = std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)>;

MatchData match_data(const pcre2_code *code) {
    MatchData md(pcre2_match_data_create_from_pattern(code, nullptr), pcre2_match_data_free);
    if (!md) {
        throw std::bad_alloc();
    }
    return md;
}

}  // namespace

Regex::Regex(const char *pattern, uint32_t options) {
    uint32_t flags = 0;
    if ((options & kWhole) != 0) {
        flags |= PCRE2_ANCHORED | PCRE2_ENDANCHORED;
    }
    if ((options & kUtf8) != 0) {
        flags |= PCRE2_UTF;
    }
    int err = 0;
    PCRE2_SIZE off = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED, flags, &err,
                          &off, nullptr);
    if (code_ == nullptr) {
        if (err == PCRE2_ERROR_NOMEMORY) {
            throw std::bad_alloc();
        }
        throw std::logic_error(std::string("regex: bad pattern ") + pattern);
    }
}

Regex::~Regex() { pcre2_code_free(code_); }

bool Regex::matches(std::string_view subject) const {
    MatchData md = match_data(code_);
    return pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), 0, 0,
                       md.get(), nullptr) >= 0;
}

std::optional<std::string> Regex::replace_all(std::string_view subject,
                                              const char *replacement) const {
    MatchData md = match_data(code_);
    std::string out(subject.size() + 64, '\0');
    for (int tries = 0; tries < 4; tries++) {
        PCRE2_SIZE out_len = out.size();
        int rc = pcre2_substitute(
            code_, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), 0,
            PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH | PCRE2_NO_UTF_CHECK,
            md.get(), nullptr, reinterpret_cast<PCRE2_SPTR>(replacement), PCRE2_ZERO_TERMINATED,
            reinterpret_cast<PCRE2_UCHAR *>(out.data()), &out_len);
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
    return std::nullopt;
}

}  // namespace relyloop
