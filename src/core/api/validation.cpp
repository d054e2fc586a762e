#include "api/validation.hpp"

#include <algorithm>

#include "common/error.hpp"
#include "common/json_writer.hpp"
#include "common/strings.hpp"

namespace relyloop::core {

namespace {

bool all_space(std::string_view s) {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

bool contains(std::span<const std::string_view> values, std::string_view v) {
    return std::find(values.begin(), values.end(), v) != values.end();
}

std::string_view key_of(const char *key, size_t len) { return {key, len}; }

// Parameter and metric names: 1..256 code points.
void check_name_key(std::string_view key, const std::string &location, const std::string &loc,
                    std::string_view what, Problems &problems) {
    if (key.empty()) {
        problems.add(location, std::string(what) + " names must not be empty");
    } else if (json::utf8_length(key) > 256) {
        problems.add(loc, std::string(what) + " name must be at most 256 characters");
    }
}

// Calls fn(loc, value) for every member of a name-keyed object (parameters,
// metrics), after checking the name.
template <typename F>
void each_named(const json_t *obj, const std::string &location, std::string_view what,
                Problems &problems, F &&fn) {
    const char *key;
    size_t key_len;
    json_t *value;
    json_object_keylen_foreach(const_cast<json_t *>(obj), key, key_len, value) {
        std::string_view k = key_of(key, key_len);
        std::string loc = location + "." + std::string(k);
        check_name_key(k, location, loc, what, problems);
        fn(loc, value);
    }
}

// The same for members that must be objects: fn(reader), then unread fields
// are reported.
template <typename F>
void each_named_object(const json_t *obj, const std::string &location, std::string_view what,
                       Problems &problems, F &&fn) {
    each_named(obj, location, what, problems, [&](const std::string &loc, const json_t *value) {
        if (!json_is_object(value)) {
            problems.add(loc, type_reason(JSON_OBJECT));
            return;
        }
        ObjectReader r(value, loc, problems);
        fn(r);
        r.finish();
    });
}

// The member when it is a number, else nullptr (a non-number is reported).
const json_t *optional_number(ObjectReader &r, const char *name) {
    const json_t *v = r.get(name);
    if (v != nullptr && !json_is_null(v) && !json_is_number(v)) {
        r.problems().add(r.path(name), "must be a number");
    }
    return v != nullptr && json_is_number(v) ? v : nullptr;
}

}  // namespace

void Problems::add(std::string location, std::string_view reason) {
    location += ": ";
    location += reason;
    items_.push_back(std::move(location));
}

std::string Problems::message() const {
    std::string m(kValidationPrefix);
    for (size_t i = 0; i < items_.size(); i++) {
        if (i != 0) {
            m += "; ";
        }
        m += items_[i];
    }
    return m;
}

void Problems::raise_if_any() const {
    if (!items_.empty()) {
        throw Error(ErrorCode::kValidationError, message());
    }
}

void fail_validation(std::string location, std::string_view reason) {
    Problems p;
    p.add(std::move(location), reason);
    throw Error(ErrorCode::kValidationError, p.message());
}

Json parse_body_object(std::string_view body, bool required) {
    if (all_space(body)) {
        if (required) {
            fail_validation("body", "field required");
        }
        return Json(json_object());
    }
    json_error_t err;
    Json j(json_loadb(body.data(), body.size(), JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err));
    if (!j) {
        fail_validation("body", std::string("invalid JSON: ") + err.text + " (line " +
                                    std::to_string(err.line) + ", column " +
                                    std::to_string(err.column) + ")");
    }
    if (!json_is_object(j.get())) {
        fail_validation("body", "must be an object");
    }
    return j;
}

const char *type_reason(json_type expected) {
    switch (expected) {
        case JSON_OBJECT:
            return "must be an object";
        case JSON_ARRAY:
            return "must be an array";
        case JSON_STRING:
            return "must be a string";
        case JSON_INTEGER:
            return "must be an integer";
        case JSON_REAL:
            return "must be a number";
        case JSON_TRUE:
        case JSON_FALSE:
            return "must be a boolean";
        case JSON_NULL:
            return "must be null";
    }
    return "has the wrong type";
}

std::string one_of_reason(std::span<const std::string_view> values) {
    std::string r = "must be one of: ";
    for (size_t i = 0; i < values.size(); i++) {
        if (i != 0) {
            r += ", ";
        }
        r += values[i];
    }
    return r;
}

bool valid_id_text(std::string_view s) noexcept {
    return !s.empty() && s.size() <= 4 * kMaxIdChars && s.find('\0') == std::string_view::npos &&
           json::valid_utf8(s) && json::utf8_length(s) <= kMaxIdChars;
}

bool json_media_type(std::string_view s) noexcept {
    size_t semi = s.find(';');
    if (!iequals_ascii(trim_ows(s.substr(0, semi)), "application/json")) {
        return false;
    }
    bool charset_seen = false;
    while (semi != std::string_view::npos) {
        s.remove_prefix(semi + 1);
        semi = s.find(';');
        std::string_view param = trim_ows(s.substr(0, semi));
        if (param.empty()) {
            continue;  // "application/json;" and ";;" are harmless
        }
        size_t eq = param.find('=');
        if (eq == std::string_view::npos || charset_seen ||
            !iequals_ascii(trim_ows(param.substr(0, eq)), "charset")) {
            return false;
        }
        std::string_view value = trim_ows(param.substr(eq + 1));
        if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
            value = value.substr(1, value.size() - 2);
        }
        if (!iequals_ascii(value, "utf-8") && !iequals_ascii(value, "utf8")) {
            return false;
        }
        charset_seen = true;
    }
    return true;
}

ObjectReader::ObjectReader(const json_t *obj, std::string location, Problems &problems)
    : obj_(obj), location_(std::move(location)), problems_(problems) {}

std::string ObjectReader::path(std::string_view name) const {
    std::string p = location_;
    p += '.';
    p += name;
    return p;
}

const json_t *ObjectReader::get(const char *name) {
    known_.emplace_back(name);
    return json_object_get(obj_, name);
}

bool ObjectReader::check_string(std::string_view name, std::string_view s, const StringRule &rule) {
    size_t n = json::utf8_length(s);
    if (n < rule.min_chars) {
        problems_.add(path(name),
                      rule.min_chars == 1
                          ? std::string("must not be empty")
                          : "must be at least " + std::to_string(rule.min_chars) + " characters");
        return false;
    }
    if (n > rule.max_chars) {
        problems_.add(path(name),
                      "must be at most " + std::to_string(rule.max_chars) + " characters");
        return false;
    }
    if (rule.check != nullptr && !rule.check(s)) {
        problems_.add(path(name), rule.check_reason != nullptr ? rule.check_reason : "is invalid");
        return false;
    }
    return true;
}

// The field's value when it is there and of the expected type; nullptr when
// it is absent (or null, for an optional field), with a missing required
// field or a wrong type reported.
const json_t *ObjectReader::present(const char *name, bool required, json_type type) {
    const json_t *v = get(name);
    if (v == nullptr || (json_is_null(v) && !required)) {
        if (required) {
            problems_.add(path(name), "field required");
        }
        return nullptr;
    }
    bool ok = type == JSON_TRUE ? json_is_boolean(v) : json_typeof(v) == type;
    if (!ok) {
        problems_.add(path(name), type_reason(type));
        return nullptr;
    }
    return v;
}

std::optional<std::string> ObjectReader::string(const char *name, bool required,
                                                const StringRule &rule) {
    const json_t *v = present(name, required, JSON_STRING);
    if (v == nullptr) {
        return std::nullopt;
    }
    std::string_view s(json_string_value(v), json_string_length(v));
    if (!check_string(name, s, rule)) {
        return std::nullopt;
    }
    return std::string(s);
}

std::optional<std::string> ObjectReader::one_of(const char *name, bool required,
                                                std::span<const std::string_view> values) {
    const json_t *v = present(name, required, JSON_STRING);
    if (v == nullptr) {
        return std::nullopt;
    }
    std::string_view s(json_string_value(v), json_string_length(v));
    if (!contains(values, s)) {
        problems_.add(path(name), one_of_reason(values));
        return std::nullopt;
    }
    return std::string(s);
}

std::optional<long long> ObjectReader::integer(const char *name, bool required, long long min,
                                               long long max) {
    const json_t *v = present(name, required, JSON_INTEGER);
    if (v == nullptr) {
        return std::nullopt;
    }
    long long n = json_integer_value(v);
    if (n < min) {
        problems_.add(path(name), "must be greater than or equal to " + std::to_string(min));
        return std::nullopt;
    }
    if (n > max) {
        problems_.add(path(name), "must be less than or equal to " + std::to_string(max));
        return std::nullopt;
    }
    return n;
}

std::optional<bool> ObjectReader::boolean(const char *name, bool required) {
    const json_t *v = present(name, required, JSON_TRUE);
    if (v == nullptr) {
        return std::nullopt;
    }
    return json_is_true(v);
}

const json_t *ObjectReader::object(const char *name, bool required) {
    return present(name, required, JSON_OBJECT);
}

Patch ObjectReader::patch_string(const char *name, const StringRule &rule) {
    const json_t *v = get(name);
    if (v == nullptr) {
        return {};
    }
    if (json_is_null(v)) {
        return {true, std::nullopt};
    }
    if (!json_is_string(v)) {
        problems_.add(path(name), type_reason(JSON_STRING));
        return {};
    }
    std::string_view s(json_string_value(v), json_string_length(v));
    if (!check_string(name, s, rule)) {
        return {};
    }
    return {true, std::string(s)};
}

void ObjectReader::finish() {
    const char *key;
    size_t key_len;
    json_t *val;
    json_object_keylen_foreach(const_cast<json_t *>(obj_), key, key_len, val) {
        std::string_view k = key_of(key, key_len);
        if (std::find(known_.begin(), known_.end(), k) == known_.end()) {
            problems_.add(path(k), "extra fields not permitted");
        }
    }
}

void validate_declared_params(const json_t *params, const std::string &location,
                              Problems &problems) {
    each_named(
        params, location, "parameter", problems, [&](const std::string &loc, const json_t *hint) {
            if (json_is_string(hint)) {
                std::string_view t(json_string_value(hint), json_string_length(hint));
                if (!contains(kParamTypes, t)) {
                    problems.add(loc, one_of_reason(kParamTypes));
                }
                return;
            }
            if (!json_is_object(hint)) {
                problems.add(loc, "must be a type name or an object");
                return;
            }
            ObjectReader r(hint, loc, problems);
            auto type = r.one_of("type", true, kParamTypes);
            const json_t *mn = optional_number(r, "min");
            const json_t *mx = optional_number(r, "max");
            const json_t *values = r.get("values");
            bool has_values = values != nullptr && !json_is_null(values);
            if (has_values && !json_is_array(values)) {
                problems.add(r.path("values"), type_reason(JSON_ARRAY));
            } else if (type == "categorical") {
                if (!has_values) {
                    problems.add(r.path("values"), "field required");
                } else if (json_array_size(values) == 0) {
                    problems.add(r.path("values"), "must not be empty");
                }
            }
            if (mn != nullptr && mx != nullptr && json_number_value(mn) > json_number_value(mx)) {
                problems.add(loc, "min must not be greater than max");
            }
            r.finish();
        });
}

void validate_config_diff(const json_t *diff, const std::string &location, Problems &problems) {
    if (json_object_size(diff) == 0) {
        problems.add(location, "must not be empty");
        return;
    }
    each_named_object(diff, location, "parameter", problems, [&](ObjectReader &r) {
        r.get("from");
        if (r.get("to") == nullptr) {
            problems.add(r.path("to"), "field required");
        }
    });
}

}  // namespace relyloop::core
