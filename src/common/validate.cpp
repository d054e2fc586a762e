#include "common/validate.hpp"

#include "common/strings.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>
#include <stdexcept>

namespace relyloop {

namespace {

// A pattern compiled once per process and matched with per-call match data,
// so it is safe from any thread.
class Regex {
public:
    explicit Regex(const char *re) {
        int err = 0;
        PCRE2_SIZE off = 0;
        code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re), PCRE2_ZERO_TERMINATED,
                              PCRE2_ANCHORED | PCRE2_ENDANCHORED, &err, &off, nullptr);
        if (code_ == nullptr) {
            throw std::logic_error("validate: bad pattern");
        }
    }
    Regex(const Regex &) = delete;
    Regex &operator=(const Regex &) = delete;

    [[nodiscard]] bool full_match(std::string_view s) const {
        using MatchData = std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)>;
        MatchData md(pcre2_match_data_create_from_pattern(code_, nullptr), pcre2_match_data_free);
        if (!md) {
            throw std::bad_alloc();
        }
        return pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0, 0,
                           md.get(), nullptr) >= 0;
    }

private:
    pcre2_code *code_ = nullptr;  // lives as long as the process
};

const Regex &re_repo_name() { static const Regex r("[a-z0-9][a-z0-9-]*"); return r; }
const Regex &re_auth_ref() { static const Regex r("[A-Za-z0-9_-]+"); return r; }
const Regex &re_branch() { static const Regex r("[A-Za-z0-9][A-Za-z0-9._/-]*"); return r; }
const Regex &re_template() { static const Regex r("[A-Za-z0-9][A-Za-z0-9._-]*"); return r; }
const Regex &re_stored_template() { static const Regex r("[A-Za-z0-9][A-Za-z0-9 ._-]*"); return r; }
const Regex &re_config_path() { static const Regex r("[A-Za-z0-9_./-]+"); return r; }
const Regex &re_segment() { static const Regex r("[A-Za-z0-9._-]+"); return r; }

}  // namespace

bool valid_config_repo_name(std::string_view s) {
    return !s.empty() && s.size() <= 128 && re_repo_name().full_match(s);
}

bool valid_auth_ref(std::string_view s) {
    return !s.empty() && s.size() <= 128 && re_auth_ref().full_match(s);
}

bool valid_branch_name(std::string_view s) {
    if (s.empty() || s.size() > 128 || !re_branch().full_match(s)) {
        return false;
    }
    if (s.find("..") != std::string_view::npos || s.find("//") != std::string_view::npos ||
        s.find("/.") != std::string_view::npos || s.back() == '/' || s.back() == '.') {
        return false;
    }
    // No component may end with ".lock" (git check-ref-format).
    size_t start = 0;
    while (start <= s.size()) {
        size_t end = s.find('/', start);
        std::string_view comp = s.substr(start, end == std::string_view::npos ? s.npos : end - start);
        if (comp.ends_with(".lock")) {
            return false;
        }
        if (end == std::string_view::npos) {
            break;
        }
        start = end + 1;
    }
    return true;
}

bool valid_template_name(std::string_view s) {
    return !s.empty() && s.size() <= 128 && re_template().full_match(s);
}

bool valid_stored_template_name(std::string_view s) {
    return !s.empty() && s.size() <= 256 && re_stored_template().full_match(s);
}

bool valid_config_path(std::string_view s) {
    if (s.empty() || s.size() > 512 || s.front() == '/' || !re_config_path().full_match(s)) {
        return false;
    }
    size_t start = 0;
    for (;;) {
        size_t end = s.find('/', start);
        std::string_view seg = s.substr(start, end == std::string_view::npos ? s.npos : end - start);
        if (seg == "..") {
            return false;
        }
        if (end == std::string_view::npos) {
            return true;
        }
        start = end + 1;
    }
}

std::optional<RepoCoordinates> parse_repo_url(std::string_view url, std::string_view web_url) {
    web_url = strip_trailing_slashes(web_url);
    if (web_url.empty() || url.size() > 512 || !url.starts_with(web_url) ||
        url.size() <= web_url.size() || url[web_url.size()] != '/') {
        return std::nullopt;
    }
    std::string_view rest = url.substr(web_url.size() + 1);
    size_t slash = rest.find('/');
    if (slash == std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view owner = rest.substr(0, slash);
    std::string_view repo = rest.substr(slash + 1);
    if (repo.ends_with(".git")) {
        repo.remove_suffix(4);
    }
    auto ok = [](std::string_view seg) {
        return !seg.empty() && seg.size() <= 100 && seg != "." && seg != ".." &&
               re_segment().full_match(seg);
    };
    if (!ok(owner) || !ok(repo)) {
        return std::nullopt;
    }
    return RepoCoordinates{std::string(owner), std::string(repo)};
}

namespace {

// Consumes `part` (case-insensitively) from the front of `s`.
bool take(std::string_view &s, std::string_view part) {
    if (s.size() < part.size() || !iequals_ascii(s.substr(0, part.size()), part)) return false;
    s.remove_prefix(part.size());
    return true;
}

}  // namespace

bool valid_pull_url(std::string_view url, std::string_view web_url, std::string_view owner,
                    std::string_view repo, long long number) {
    web_url = strip_trailing_slashes(web_url);
    if (web_url.empty() || owner.empty() || repo.empty() || number <= 0 || url.size() > 2048) {
        return false;
    }
    std::string_view rest = url;
    return take(rest, web_url) && take(rest, "/") && take(rest, owner) && take(rest, "/") &&
           take(rest, repo) && take(rest, "/pull/") && rest == std::to_string(number);
}

}  // namespace relyloop
