#pragma once

// PGresult → JSON text. Results arrive in text format from a session pinned
// to TimeZone=UTC, DateStyle=ISO and client_encoding=UTF8 (the shim's
// connection options), so timestamps look like "2026-05-11 20:13:43.123456+00".
// Rows are written straight into the response body: no JSON tree per row.

#include <jansson.h>
#include <libpq-fe.h>

#include <string>
#include <string_view>

namespace relyloop::core::db {

// One row of a result.
class Row {
  public:
    Row(const PGresult *res, int row) noexcept : res_(res), row_(row) {}

    [[nodiscard]] bool null(int col) const noexcept { return PQgetisnull(res_, row_, col) != 0; }
    // The text of a column ("" for NULL); valid as long as the result.
    [[nodiscard]] std::string_view text(int col) const noexcept;
    [[nodiscard]] const char *c_str(int col) const noexcept;  // nullptr for NULL
    [[nodiscard]] bool boolean_value(int col) const noexcept { return text(col) == "t"; }
    [[nodiscard]] long long integer_value(int col) const noexcept;

    // Append the column as a JSON value (null for SQL NULL).
    void append_string(std::string &out, int col) const;
    void append_timestamp(std::string &out, int col) const;  // RFC 3339, microseconds
    void append_integer(std::string &out, int col) const;
    void append_real(std::string &out, int col) const;  // NaN/Infinity → null
    void append_boolean(std::string &out, int col) const;
    void append_jsonb(std::string &out, int col) const;

  private:
    const PGresult *res_;
    int row_;
};

// Writes one JSON object (with nested objects) from a row: keys are trusted
// literals, values come from columns.
//
//     RowWriter w(out, row);
//     w.open().str("id", 0).ts("created_at", 9).close();
class RowWriter {
  public:
    RowWriter(std::string &out, const Row &row) noexcept : out_(out), row_(row) {}

    RowWriter &open();                   // '{'
    RowWriter &object(const char *key);  // "key":{
    RowWriter &close();                  // '}'
    RowWriter &str(const char *key, int col);
    RowWriter &ts(const char *key, int col);
    RowWriter &integer(const char *key, int col);
    RowWriter &real(const char *key, int col);
    RowWriter &jsonb(const char *key, int col);
    RowWriter &null(const char *key);
    RowWriter &literal(const char *key, std::string_view json_text);  // trusted JSON
    // Writes "key": and returns the buffer for a value written by the caller.
    std::string &key(const char *k);

  private:
    std::string &out_;
    const Row &row_;
    bool first_[8] = {};
    int depth_ = -1;
};

// Appends "2026-05-11T20:13:43.123456+00:00" (quoted) for PostgreSQL's text
// of a timestamptz; other text goes through pg_timestamp_to_rfc3339.
void append_timestamp(std::string &out, std::string_view pg);

}  // namespace relyloop::core::db
