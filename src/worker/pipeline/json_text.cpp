#include "pipeline/json_text.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace relyloop::worker {

std::string json_number_text(double d) {
    if (!std::isfinite(d)) {
        return "null";
    }
    char buf[40];
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(buf, sizeof buf, "%.*g", precision, d);
        if (std::strtod(buf, nullptr) == d) {
            break;
        }
    }
    std::string out(buf);
    // "%g" drops the fraction of integral values; keep the value a JSON real
    // so that a float param stays recognisably a float ("1.0", not "1").
    if (out.find_first_of(".eEn") == std::string::npos) {
        out += ".0";
    }
    return out;
}

namespace {

void append_string(std::string &out, const char *s, size_t len) {
    Json tmp(json_stringn(s, len));
    CString text(tmp ? json_dumps(tmp.get(), JSON_ENCODE_ANY) : nullptr);
    if (text) {
        out += text.get();
    } else {
        out += "\"\"";
    }
}

void append_value(std::string &out, const json_t *v) {
    if (v == nullptr) {
        out += "null";
        return;
    }
    switch (json_typeof(v)) {
        case JSON_NULL:
            out += "null";
            break;
        case JSON_TRUE:
            out += "true";
            break;
        case JSON_FALSE:
            out += "false";
            break;
        case JSON_INTEGER:
            out += std::to_string(json_integer_value(v));
            break;
        case JSON_REAL:
            out += json_number_text(json_real_value(v));
            break;
        case JSON_STRING:
            append_string(out, json_string_value(v), json_string_length(v));
            break;
        case JSON_ARRAY: {
            out += '[';
            for (size_t i = 0; i < json_array_size(v); i++) {
                if (i > 0) {
                    out += ',';
                }
                append_value(out, json_array_get(v, i));
            }
            out += ']';
            break;
        }
        case JSON_OBJECT: {
            out += '{';
            bool first = true;
            const char *key = nullptr;
            json_t *member = nullptr;
            // jansson keeps insertion order (2.13+), i.e. the source order.
            json_object_foreach(const_cast<json_t *>(v), key, member) {
                if (!first) {
                    out += ',';
                }
                first = false;
                append_string(out, key, std::strlen(key));
                out += ':';
                append_value(out, member);
            }
            out += '}';
            break;
        }
    }
}

}  // namespace

std::string json_text(const json_t *value) {
    std::string out;
    append_value(out, value);
    return out;
}

bool json_same_value(const json_t *a, const json_t *b) {
    if (a == nullptr || b == nullptr) {
        return a == b;
    }
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b)) {
            return json_integer_value(a) == json_integer_value(b);
        }
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b)) {
        return false;
    }
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b)) {
            return false;
        }
        for (size_t i = 0; i < json_array_size(a); i++) {
            if (!json_same_value(json_array_get(a, i), json_array_get(b, i))) {
                return false;
            }
        }
        return true;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b)) {
            return false;
        }
        const char *key = nullptr;
        json_t *member = nullptr;
        json_object_foreach(const_cast<json_t *>(a), key, member) {
            if (!json_same_value(member, json_object_get(b, key))) {
                return false;
            }
        }
        return true;
    }
    return json_equal(const_cast<json_t *>(a), const_cast<json_t *>(b)) != 0;
}

Json json_parse(std::string_view text, std::string *error, size_t flags) {
    json_error_t err;
    Json out(json_loadb(text.data(), text.size(), JSON_DECODE_ANY | flags, &err));
    if (!out && error != nullptr) {
        *error = std::string(err.text) + " (line " + std::to_string(err.line) + ", column " +
                 std::to_string(err.column) + ")";
    }
    return out;
}

}  // namespace relyloop::worker
