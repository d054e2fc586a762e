#pragma once

// Compact JSON text, from a jansson tree or written field by field
// (db::RowWriter) without building one. jansson prints a real with 17
// significant digits (0.487 → 0.48699999999999999); the API prints the
// shortest text that reads back as the same double, laid out as Python's
// repr() does (RelyLoop's FastAPI answers looked like that), so a value the
// UI stored comes back spelled the way it was sent.

#include <jansson.h>

#include <string>
#include <string_view>

namespace relyloop::json {

// Appends the compact JSON text of v (object keys in insertion order).
void write(std::string &out, const json_t *v);

// As write(), into a fresh string.
[[nodiscard]] std::string dump(const json_t *v);

// Appends a JSON string literal for s (which must be valid UTF-8).
void write_string(std::string &out, std::string_view s);

// Appends a double as the shortest round-trip text, Python repr style
// ("0.487", "1.0", "1e-05", "1e+16"); NaN and infinities become null.
void write_double(std::string &out, double v);

// Appends the text of a json/jsonb value as PostgreSQL prints it, compacted
// (whitespace outside strings dropped); PostgreSQL's output is valid JSON, so
// numbers keep their stored spelling. Returns false, appending nothing, when
// the text is not valid UTF-8.
[[nodiscard]] bool append_compact(std::string &out, std::string_view text);

// A value quoted for a log line: a JSON string literal; bytes of invalid
// UTF-8 become '?'.
[[nodiscard]] std::string quote(std::string_view s);

// Strict check of UTF-8 (no overlongs, no surrogates, ≤ U+10FFFF).
[[nodiscard]] bool valid_utf8(std::string_view s) noexcept;

// Number of code points of a valid UTF-8 string.
[[nodiscard]] size_t utf8_length(std::string_view s) noexcept;

}  // namespace relyloop::json
