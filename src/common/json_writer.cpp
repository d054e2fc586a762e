#include "common/json_writer.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>

#include "common/strings.hpp"

namespace relyloop::json {

namespace {

void write_integer(std::string &out, json_int_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(v));
    out.append(buf, r.ptr);
}

}  // namespace

void write_string(std::string &out, std::string_view s) {
    out.push_back('"');
    size_t run = 0;  // start of the pending run of bytes that need no escape
    for (size_t i = 0; i < s.size(); i++) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        out.append(s.data() + run, i - run);
        run = i + 1;
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            default:
                out += "\\u00";
                out.push_back(hex_digit(c >> 4));
                out.push_back(hex_digit(c));
        }
    }
    out.append(s.data() + run, s.size() - run);
    out.push_back('"');
}

void write_double(std::string &out, double v) {
    if (!std::isfinite(v)) {
        out += "null";
        return;
    }
    // Shortest round-trip digits in scientific form, e.g. "-4.87e-01".
    char buf[40];
    auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
    std::string_view sci(buf, static_cast<size_t>(r.ptr - buf));
    bool negative = !sci.empty() && sci.front() == '-';
    if (negative) {
        sci.remove_prefix(1);
        out.push_back('-');
    }
    size_t e = sci.find('e');
    std::string digits;
    for (char c : sci.substr(0, e)) {
        if (c != '.') {
            digits.push_back(c);
        }
    }
    int exp = std::atoi(std::string(sci.substr(e + 1)).c_str());
    auto ndigits = static_cast<int>(digits.size());
    if (exp >= -4 && exp < 16) {
        if (exp >= 0) {
            if (ndigits <= exp + 1) {
                out += digits;
                out.append(static_cast<size_t>(exp + 1 - ndigits), '0');
                out += ".0";
            } else {
                out.append(digits, 0, static_cast<size_t>(exp + 1));
                out.push_back('.');
                out.append(digits, static_cast<size_t>(exp + 1));
            }
        } else {
            out += "0.";
            out.append(static_cast<size_t>(-exp - 1), '0');
            out += digits;
        }
        return;
    }
    out.push_back(digits[0]);
    if (ndigits > 1) {
        out.push_back('.');
        out.append(digits, 1);
    }
    out.push_back('e');
    out.push_back(exp < 0 ? '-' : '+');
    int a = exp < 0 ? -exp : exp;
    if (a < 10) {
        out.push_back('0');
    }
    out += std::to_string(a);
}

void write(std::string &out, const json_t *v) {
    switch (json_typeof(v)) {
        case JSON_OBJECT: {
            out.push_back('{');
            bool first = true;
            const char *key;
            size_t key_len;
            json_t *val;
            // jansson keeps insertion order.
            json_object_keylen_foreach(const_cast<json_t *>(v), key, key_len, val) {
                if (!first) {
                    out.push_back(',');
                }
                first = false;
                write_string(out, std::string_view(key, key_len));
                out.push_back(':');
                write(out, val);
            }
            out.push_back('}');
            return;
        }
        case JSON_ARRAY: {
            out.push_back('[');
            size_t n = json_array_size(v);
            for (size_t i = 0; i < n; i++) {
                if (i != 0) {
                    out.push_back(',');
                }
                write(out, json_array_get(v, i));
            }
            out.push_back(']');
            return;
        }
        case JSON_STRING:
            write_string(out, std::string_view(json_string_value(v), json_string_length(v)));
            return;
        case JSON_INTEGER:
            write_integer(out, json_integer_value(v));
            return;
        case JSON_REAL:
            write_double(out, json_real_value(v));
            return;
        case JSON_TRUE:
            out += "true";
            return;
        case JSON_FALSE:
            out += "false";
            return;
        case JSON_NULL:
            out += "null";
            return;
    }
    out += "null";
}

std::string dump(const json_t *v) {
    std::string out;
    out.reserve(512);
    write(out, v);
    return out;
}

bool append_compact(std::string &out, std::string_view text) {
    if (!valid_utf8(text)) {
        return false;
    }
    out.reserve(out.size() + text.size());
    bool in_string = false;
    bool escaped = false;
    for (char c : text) {
        if (in_string) {
            out.push_back(c);
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
            out.push_back(c);
        } else if (c != ' ' && c != '\n' && c != '\t' && c != '\r') {
            out.push_back(c);
        }
    }
    return true;
}

std::string quote(std::string_view s) {
    std::string out;
    if (valid_utf8(s)) {
        write_string(out, s);
        return out;
    }
    std::string ascii(s);
    for (char &c : ascii) {
        if (static_cast<unsigned char>(c) >= 0x80) {
            c = '?';
        }
    }
    write_string(out, ascii);
    return out;
}

bool valid_utf8(std::string_view s) noexcept {
    size_t i = 0;
    const size_t n = s.size();
    while (i < n) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n) {
            return false;
        }
        for (size_t k = 1; k < len; k++) {
            auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (cc & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += len;
    }
    return true;
}

size_t utf8_length(std::string_view s) noexcept {
    size_t n = 0;
    for (char c : s) {
        if ((static_cast<unsigned char>(c) & 0xc0) != 0x80) {
            n++;
        }
    }
    return n;
}

}  // namespace relyloop::json
