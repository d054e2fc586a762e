#include "api/pagination.hpp"

#include <jansson.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <iterator>

#include "common/json_writer.hpp"
#include "common/raii.hpp"
#include "common/timefmt.hpp"

namespace relyloop::core {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int b64_value(char c) {
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return -1;
}

// The JSON array inside a cursor, or nullptr.
Json cursor_array(std::string_view cursor) {
    if (cursor.size() > kMaxCursorLength) {
        return nullptr;
    }
    auto raw = base64url_decode(cursor);
    if (!raw) {
        return nullptr;
    }
    json_error_t err;
    Json j(json_loadb(raw->data(), raw->size(), JSON_REJECT_DUPLICATES, &err));
    if (!j || !json_is_array(j.get())) {
        return nullptr;
    }
    return j;
}

std::optional<std::string> id_member(const json_t *v) {
    if (!json_is_string(v)) {
        return std::nullopt;
    }
    std::string_view s(json_string_value(v), json_string_length(v));
    if (!valid_id_text(s)) {
        return std::nullopt;
    }
    return std::string(s);
}

bool all_digits(std::string_view s) {
    if (s.empty()) {
        return false;
    }
    for (char c : s) {
        if (c < '0' || c > '9') {
            return false;
        }
    }
    return true;
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    size_t i = 0;
    auto b = [&](size_t k) { return static_cast<unsigned>(static_cast<unsigned char>(bytes[k])); };
    for (; i + 3 <= bytes.size(); i += 3) {
        unsigned v = (b(i) << 16) | (b(i + 1) << 8) | b(i + 2);
        out.push_back(kAlphabet[(v >> 18) & 63]);
        out.push_back(kAlphabet[(v >> 12) & 63]);
        out.push_back(kAlphabet[(v >> 6) & 63]);
        out.push_back(kAlphabet[v & 63]);
    }
    size_t rest = bytes.size() - i;
    if (rest == 1) {
        unsigned v = b(i) << 16;
        out.push_back(kAlphabet[(v >> 18) & 63]);
        out.push_back(kAlphabet[(v >> 12) & 63]);
    } else if (rest == 2) {
        unsigned v = (b(i) << 16) | (b(i + 1) << 8);
        out.push_back(kAlphabet[(v >> 18) & 63]);
        out.push_back(kAlphabet[(v >> 12) & 63]);
        out.push_back(kAlphabet[(v >> 6) & 63]);
    }
    return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
    if (text.size() % 4 == 1) {
        return std::nullopt;
    }
    std::string out;
    out.reserve(text.size() / 4 * 3 + 2);
    unsigned acc = 0;
    int bits = 0;
    for (char c : text) {
        int v = b64_value(c);
        if (v < 0) {
            return std::nullopt;
        }
        acc = (acc << 6) | static_cast<unsigned>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xff));
        }
    }
    // Canonical form only: the unused low bits of the last symbol are zero.
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
        return std::nullopt;
    }
    return out;
}

std::string encode_list_cursor(std::string_view created_at_rfc3339, std::string_view id) {
    std::string j = "[";
    json::write_string(j, created_at_rfc3339);
    j += ',';
    json::write_string(j, id);
    j += ']';
    return base64url_encode(j);
}

std::optional<ListCursor> decode_list_cursor(std::string_view cursor) {
    Json a = cursor_array(cursor);
    if (!a || json_array_size(a.get()) != 2 || !json_is_string(json_array_get(a.get(), 0))) {
        return std::nullopt;
    }
    const json_t *ts = json_array_get(a.get(), 0);
    auto created = parse_rfc3339(std::string_view(json_string_value(ts), json_string_length(ts)));
    auto id = id_member(json_array_get(a.get(), 1));
    if (!created || !id) {
        return std::nullopt;
    }
    return ListCursor{std::move(*created), std::move(*id)};
}

std::string_view trial_sort_name(TrialSort s) noexcept {
    return kTrialSortNames[static_cast<size_t>(s)];
}

std::optional<TrialSort> parse_trial_sort(std::string_view s) noexcept {
    for (size_t i = 0; i < std::size(kTrialSortNames); i++) {
        if (s == kTrialSortNames[i]) {
            return static_cast<TrialSort>(i);
        }
    }
    return std::nullopt;
}

bool valid_float8_text(std::string_view s) noexcept {
    if (s == "NaN" || s == "Infinity" || s == "-Infinity") {
        return true;
    }
    if (s.empty() || s.size() > 64) {
        return false;
    }
    size_t i = 0;
    auto digits = [&] {
        size_t start = i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
        return i > start;
    };
    if (s[i] == '-') {
        i++;
    }
    if (!digits()) {
        return false;
    }
    if (i < s.size() && s[i] == '.') {
        i++;
        if (!digits()) {
            return false;
        }
    }
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
            i++;
        }
        if (!digits()) {
            return false;
        }
    }
    if (i != s.size()) {
        return false;
    }
    std::string z(s);
    errno = 0;
    double v = std::strtod(z.c_str(), nullptr);
    return errno != ERANGE && std::isfinite(v);
}

std::string encode_trial_cursor(TrialSort sort, const char *key, std::string_view id) {
    std::string j = "[";
    json::write_string(j, trial_sort_name(sort));
    j += ',';
    if ((sort == TrialSort::kEndedDesc || sort == TrialSort::kEndedAsc) && key != nullptr) {
        json::write_string(j, pg_timestamp_to_rfc3339(key));
    } else if (sort == TrialSort::kNumberAsc) {
        j += key != nullptr ? key : "0";
    } else if (key == nullptr) {
        j += "null";
    } else {
        json::write_string(j, key);
    }
    j += ',';
    json::write_string(j, id);
    j += ']';
    return base64url_encode(j);
}

std::optional<TrialCursor> decode_trial_cursor(std::string_view cursor, TrialSort expected) {
    Json a = cursor_array(cursor);
    if (!a || json_array_size(a.get()) != 3) {
        return std::nullopt;
    }
    const json_t *tag = json_array_get(a.get(), 0);
    const json_t *key = json_array_get(a.get(), 1);
    if (!json_is_string(tag) || parse_trial_sort(json_string_value(tag)) != expected) {
        return std::nullopt;
    }
    auto id = id_member(json_array_get(a.get(), 2));
    if (!id) {
        return std::nullopt;
    }
    TrialCursor c;
    c.id = std::move(*id);
    if (expected == TrialSort::kNumberAsc) {
        if (!json_is_integer(key) || json_integer_value(key) < -2147483648LL ||
            json_integer_value(key) > 2147483647LL) {
            return std::nullopt;
        }
        c.key = std::to_string(json_integer_value(key));
        return c;
    }
    if (json_is_null(key)) {
        return c;
    }
    if (expected == TrialSort::kEndedDesc || expected == TrialSort::kEndedAsc) {
        if (!json_is_string(key)) {
            return std::nullopt;
        }
        c.key = parse_rfc3339(std::string_view(json_string_value(key), json_string_length(key)));
        if (!c.key) {
            return std::nullopt;
        }
        return c;
    }
    if (!json_is_string(key) ||
        !valid_float8_text(std::string_view(json_string_value(key), json_string_length(key)))) {
        return std::nullopt;
    }
    c.key = std::string(json_string_value(key), json_string_length(key));
    return c;
}

std::string encode_sorted_cursor(const SortKey &key, std::string_view tag, const char *value,
                                 std::string_view id) {
    std::string j = "[";
    if (value == nullptr) {
        j += "null";
    } else if (key.type == KeyType::kTimestamp) {
        json::write_string(j, pg_timestamp_to_rfc3339(value));
    } else {
        json::write_string(j, value);
    }
    j += ',';
    json::write_string(j, id);
    j += ',';
    json::write_string(j, tag);
    j += ']';
    return base64url_encode(j);
}

std::optional<std::string> sorted_cursor_tag(std::string_view cursor) {
    Json a = cursor_array(cursor);
    if (!a || json_array_size(a.get()) != 3) {
        return std::nullopt;
    }
    const json_t *tag = json_array_get(a.get(), 2);
    if (!json_is_string(tag) || json_string_length(tag) > 64) {
        return std::nullopt;
    }
    std::string t(json_string_value(tag), json_string_length(tag));
    for (char ch : t) {
        if (!((ch >= 'a' && ch <= 'z') || ch == '_' || ch == ':')) {
            return std::nullopt;
        }
    }
    return t;
}

std::optional<SortedCursor> decode_sorted_cursor(std::string_view cursor, const SortKey &key,
                                                 std::string_view tag) {
    Json a = cursor_array(cursor);
    if (!a || json_array_size(a.get()) != 3) {
        return std::nullopt;
    }
    const json_t *t = json_array_get(a.get(), 2);
    if (!json_is_string(t) ||
        std::string_view(json_string_value(t), json_string_length(t)) != tag) {
        return std::nullopt;
    }
    auto id = id_member(json_array_get(a.get(), 1));
    if (!id) {
        return std::nullopt;
    }
    SortedCursor c;
    c.id = std::move(*id);
    const json_t *v = json_array_get(a.get(), 0);
    if (json_is_null(v)) {
        return c;
    }
    if (!json_is_string(v)) {
        return std::nullopt;
    }
    std::string_view text(json_string_value(v), json_string_length(v));
    switch (key.type) {
        case KeyType::kTimestamp:
            c.value = parse_rfc3339(text);
            if (!c.value) {
                return std::nullopt;
            }
            break;
        case KeyType::kNumber:
            if (!valid_float8_text(text)) {
                return std::nullopt;
            }
            c.value = std::string(text);
            break;
        case KeyType::kText:
            // Invalid UTF-8 is refused by PostgreSQL as a data exception (422).
            if (text.size() > 1024 || text.find('\0') != std::string_view::npos) {
                return std::nullopt;
            }
            c.value = std::string(text);
            break;
    }
    return c;
}

std::optional<bool> parse_bool_filter(const QueryArgs &args, const char *name, Problems &problems) {
    auto v = args.get(name);
    if (!v) {
        return std::nullopt;
    }
    std::string lower;
    for (char ch : *v) {
        lower.push_back(ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch - 'A' + 'a') : ch);
    }
    for (std::string_view t : {"true", "1", "yes", "on", "t", "y"}) {
        if (lower == t) {
            return true;
        }
    }
    for (std::string_view f : {"false", "0", "no", "off", "f", "n"}) {
        if (lower == f) {
            return false;
        }
    }
    problems.add(std::string("query.") + name, "Input should be a valid boolean");
    return std::nullopt;
}

void reject_unknown_params(const QueryArgs &args, std::span<const std::string_view> allowed,
                           Problems &problems) {
    for (const std::string &name : args.names()) {
        bool known = false;
        for (std::string_view a : allowed) {
            known = known || a == name;
        }
        if (!known) {
            problems.add("query." + name, "unknown parameter");
        }
    }
}

int parse_limit(const QueryArgs &args, Problems &problems) {
    auto v = args.get("limit");
    if (!v) {
        return kDefaultLimit;
    }
    std::string_view s = *v;
    if (!all_digits(s) && !(s.size() > 1 && s[0] == '-' && all_digits(s.substr(1)))) {
        problems.add("query.limit", "must be an integer");
        return kDefaultLimit;
    }
    int n = 0;
    auto r = std::from_chars(s.data(), s.data() + s.size(), n);
    if (r.ec != std::errc{} || n < 1 || n > kMaxLimit) {
        problems.add("query.limit", "must be between 1 and " + std::to_string(kMaxLimit));
        return kDefaultLimit;
    }
    return n;
}

ListParams parse_list_params(const QueryArgs &args, Problems &problems) {
    ListParams p;
    p.limit = parse_limit(args, problems);
    if (auto c = args.get("cursor")) {
        p.cursor = decode_list_cursor(*c);
        if (!p.cursor) {
            problems.add("query.cursor", "invalid cursor");
        }
    }
    if (auto s = args.get("since")) {
        p.since = parse_rfc3339(*s);
        if (!p.since) {
            problems.add("query.since", "must be an RFC 3339 timestamp");
        }
    }
    return p;
}

std::optional<std::string> parse_id_filter(const QueryArgs &args, const char *name,
                                           Problems &problems) {
    auto v = args.get(name);
    if (v && !valid_id_text(*v)) {
        problems.add(std::string("query.") + name, "must be at most 128 characters");
        return std::nullopt;
    }
    return v;
}

std::optional<std::string> parse_enum_filter(const QueryArgs &args, const char *name,
                                             std::span<const std::string_view> values,
                                             Problems &problems) {
    auto v = args.get(name);
    if (!v) {
        return v;
    }
    for (std::string_view allowed : values) {
        if (*v == allowed) {
            return v;
        }
    }
    problems.add(std::string("query.") + name, one_of_reason(values));
    return std::nullopt;
}

}  // namespace relyloop::core
