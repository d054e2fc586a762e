#include "db/rows.hpp"

#include <charconv>
#include <cstdlib>
#include <string>

#include "common/json_writer.hpp"
#include "common/timefmt.hpp"

namespace relyloop::core::db {

namespace {

// Replaces every byte that does not start a valid UTF-8 sequence by U+FFFD,
// so a response stays valid JSON whatever the database holds.
std::string sanitize_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 8);
    size_t i = 0;
    while (i < s.size()) {
        size_t len = 1;
        auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0xf0) {
            len = 4;
        } else if (c >= 0xe0) {
            len = 3;
        } else if (c >= 0xc0) {
            len = 2;
        }
        if (i + len <= s.size() && json::valid_utf8(s.substr(i, len))) {
            out.append(s.substr(i, len));
            i += len;
        } else {
            out += "\xef\xbf\xbd";
            i++;
        }
    }
    return out;
}

void append_text(std::string &out, std::string_view s) {
    if (json::valid_utf8(s)) {
        json::write_string(out, s);
    } else {
        json::write_string(out, sanitize_utf8(s));
    }
}

}  // namespace

void append_timestamp(std::string &out, std::string_view pg) {
    out.push_back('"');
    if (append_pg_timestamp_rfc3339(out, pg)) {
        out.push_back('"');  // digits and separators only: nothing to escape
        return;
    }
    out.pop_back();
    append_text(out, pg);
}

std::string_view Row::text(int col) const noexcept {
    const char *v = PQgetvalue(res_, row_, col);
    if (v == nullptr) {
        return {};
    }
    return {v, static_cast<size_t>(PQgetlength(res_, row_, col))};
}

const char *Row::c_str(int col) const noexcept {
    return null(col) ? nullptr : PQgetvalue(res_, row_, col);
}

long long Row::integer_value(int col) const noexcept {
    std::string_view t = text(col);
    long long v = 0;
    std::from_chars(t.data(), t.data() + t.size(), v);
    return v;
}

void Row::append_string(std::string &out, int col) const {
    if (null(col)) {
        out += "null";
        return;
    }
    append_text(out, text(col));
}

void Row::append_timestamp(std::string &out, int col) const {
    if (null(col)) {
        out += "null";
        return;
    }
    db::append_timestamp(out, text(col));
}

void Row::append_integer(std::string &out, int col) const {
    if (null(col)) {
        out += "null";
        return;
    }
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, integer_value(col));
    out.append(buf, r.ptr);
}

void Row::append_real(std::string &out, int col) const {
    if (null(col)) {
        out += "null";
        return;
    }
    // strtod reads PostgreSQL's "NaN"/"Infinity" too; write_double makes
    // them null (JSON has no such values).
    json::write_double(out, std::strtod(PQgetvalue(res_, row_, col), nullptr));
}

void Row::append_boolean(std::string &out, int col) const {
    out += null(col) ? "null" : (boolean_value(col) ? "true" : "false");
}

void Row::append_jsonb(std::string &out, int col) const {
    if (null(col) || !json::append_compact(out, text(col))) {
        out += "null";
    }
}

std::string &RowWriter::key(const char *k) {
    if (!first_[depth_]) {
        out_.push_back(',');
    }
    first_[depth_] = false;
    out_.push_back('"');
    out_ += k;
    out_ += "\":";
    return out_;
}

RowWriter &RowWriter::open() {
    out_.push_back('{');
    first_[++depth_] = true;
    return *this;
}

RowWriter &RowWriter::object(const char *k) {
    key(k);
    return open();
}

RowWriter &RowWriter::close() {
    out_.push_back('}');
    depth_--;
    return *this;
}

RowWriter &RowWriter::str(const char *k, int col) {
    row_.append_string(key(k), col);
    return *this;
}

RowWriter &RowWriter::ts(const char *k, int col) {
    row_.append_timestamp(key(k), col);
    return *this;
}

RowWriter &RowWriter::integer(const char *k, int col) {
    row_.append_integer(key(k), col);
    return *this;
}

RowWriter &RowWriter::real(const char *k, int col) {
    row_.append_real(key(k), col);
    return *this;
}

RowWriter &RowWriter::jsonb(const char *k, int col) {
    row_.append_jsonb(key(k), col);
    return *this;
}

RowWriter &RowWriter::null(const char *k) {
    key(k) += "null";
    return *this;
}

RowWriter &RowWriter::literal(const char *k, std::string_view json_text) {
    key(k) += json_text;
    return *this;
}

}  // namespace relyloop::core::db
