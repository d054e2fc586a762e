#include "common/validate.hpp"

#include "common/regex.hpp"
#include "common/strings.hpp"

namespace relyloop {

namespace {

// The patterns of the rules below, compiled together on first use and never
// freed, so a check running on another thread while the process exits still
// finds them.
struct Patterns {
    Regex repo_name{"[a-z0-9][a-z0-9-]*", Regex::kWhole};
    Regex auth_ref{"[A-Za-z0-9_-]+", Regex::kWhole};
    Regex branch{"[A-Za-z0-9][A-Za-z0-9._/-]*", Regex::kWhole};
    Regex template_name{"[A-Za-z0-9][A-Za-z0-9._-]*", Regex::kWhole};
    Regex stored_template{"[A-Za-z0-9][A-Za-z0-9 ._-]*", Regex::kWhole};
    Regex config_path{"[A-Za-z0-9_./-]+", Regex::kWhole};
    Regex segment{"[A-Za-z0-9._-]+", Regex::kWhole};
};

const Patterns &re() {
    static const Patterns *const kPatterns = new Patterns;
    return *kPatterns;
}

}  // namespace

bool valid_config_repo_name(std::string_view s) {
    return !s.empty() && s.size() <= 128 && re().repo_name.matches(s);
}

bool valid_auth_ref(std::string_view s) {
    return !s.empty() && s.size() <= 128 && re().auth_ref.matches(s);
}

bool valid_branch_name(std::string_view s) {
    if (s.empty() || s.size() > 128 || !re().branch.matches(s)) {
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
        std::string_view comp =
            s.substr(start, end == std::string_view::npos ? s.npos : end - start);
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
    return !s.empty() && s.size() <= 128 && re().template_name.matches(s);
}

bool valid_stored_template_name(std::string_view s) {
    return !s.empty() && s.size() <= 256 && re().stored_template.matches(s);
}

bool valid_config_path(std::string_view s) {
    if (s.empty() || s.size() > 512 || s.front() == '/' || !re().config_path.matches(s)) {
        return false;
    }
    size_t start = 0;
    for (;;) {
        size_t end = s.find('/', start);
        std::string_view seg =
            s.substr(start, end == std::string_view::npos ? s.npos : end - start);
        if (seg == "..") {
            return false;
        }
        if (end == std::string_view::npos) {
            return true;
        }
        start = end + 1;
    }
}

namespace {

bool host_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-';
}

bool v6_char(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
           c == '.';
}

bool every_char(std::string_view s, bool (*pred)(char)) {
    for (char c : s) {
        if (!pred(c)) {
            return false;
        }
    }
    return true;
}

bool valid_port(std::string_view port) {
    if (port.empty() || port.size() > 5 ||
        !every_char(port, [](char c) { return c >= '0' && c <= '9'; })) {
        return false;
    }
    long n = 0;
    for (char c : port) {
        n = n * 10 + (c - '0');
    }
    return n >= 1 && n <= 65535;
}

}  // namespace

std::optional<std::string_view> normalize_web_url(std::string_view url) noexcept {
    std::string_view rest;
    if (url.starts_with("https://")) {
        rest = url.substr(8);
    } else if (url.starts_with("http://")) {
        rest = url.substr(7);
    } else {
        return std::nullopt;
    }
    size_t slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    std::string_view path =
        slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
    bool v6 = false;
    if (!authority.empty() && authority.front() == '[') {
        size_t close = authority.find(']');
        if (close == std::string_view::npos) {
            return std::nullopt;
        }
        std::string_view addr = authority.substr(1, close - 1);
        if (addr.empty() || !every_char(addr, v6_char)) {
            return std::nullopt;
        }
        authority.remove_prefix(close + 1);
        if (!authority.empty() && authority.front() != ':') {
            return std::nullopt;
        }
        v6 = true;
    }
    size_t colon = authority.find(':');
    if (colon != std::string_view::npos && !valid_port(authority.substr(colon + 1))) {
        return std::nullopt;
    }
    if (!v6) {
        std::string_view host = authority.substr(0, colon);
        if (host.empty() || !every_char(host, host_char) || host.front() == '.' ||
            host.front() == '-') {
            return std::nullopt;
        }
    }
    for (char c : path) {
        auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f || c == '?' || c == '#' || c == '@' || c == '\\') {
            return std::nullopt;
        }
    }
    // The host is not empty, so this stops before it.
    return strip_trailing_slashes(url);
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
               re().segment.matches(seg);
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
