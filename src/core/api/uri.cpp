#include "api/uri.hpp"

#include "api/validation.hpp"
#include "common/json_writer.hpp"
#include "common/strings.hpp"

namespace relyloop::core {

bool percent_decode(std::string_view s, bool plus_is_space, std::string &out) {
    out.clear();
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= s.size()) {
                return false;
            }
            int hi = hex_value(s[i + 1]);
            int lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0) {
                return false;
            }
            c = static_cast<char>(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0') {
            return false;
        }
        out.push_back(c);
    }
    return json::valid_utf8(out);
}

std::optional<std::string> QueryArgs::get(std::string_view name) const {
    std::optional<std::string> found;
    bool bad = false;
    std::string key;
    std::string_view rest = raw_;
    while (!rest.empty()) {
        size_t amp = rest.find('&');
        std::string_view pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
        size_t eq = pair.find('=');
        std::string_view k = pair.substr(0, eq);
        std::string_view v =
            eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
        if (k != name) {
            // Only an encoded key can still match.
            if (k.find_first_of("%+") == std::string_view::npos || !percent_decode(k, true, key) ||
                key != name) {
                continue;
            }
        }
        std::string value;
        if (!percent_decode(v, true, value)) {
            bad = true;
            found.reset();
            continue;
        }
        bad = false;
        found = std::move(value);
    }
    if (bad) {
        fail_validation("query." + std::string(name), "invalid encoding");
    }
    if (found && found->empty()) {
        return std::nullopt;
    }
    return found;
}

std::vector<std::string> QueryArgs::names() const {
    std::vector<std::string> out;
    std::string_view rest = raw_;
    std::string key;
    while (!rest.empty()) {
        size_t amp = rest.find('&');
        std::string_view pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
        std::string_view k = pair.substr(0, pair.find('='));
        if (k.empty() || !percent_decode(k, true, key)) {
            continue;
        }
        bool seen = false;
        for (const std::string &n : out) {
            seen = seen || n == key;
        }
        if (!seen) {
            out.push_back(key);
        }
    }
    return out;
}

}  // namespace relyloop::core
