#pragma once

// JSON values as text for people and for files: the shortest spelling that
// reads back as the same double (2.5 → "2.5", 0.3 → "0.3", 1.0 → "1.0"), and
// value equality that treats 1 and 1.0 as the same number.

#include <jansson.h>

#include <string>
#include <string_view>

#include "common/raii.hpp"

namespace relyloop::worker {

// The shortest spelling of `d` that reads back exactly, always marked as a
// real and laid out as Python's repr() does ("1.0", "10.0", "1e+20", "2.5"):
// json::write_double, shared with the API. Non-finite → "null".
[[nodiscard]] std::string json_number_text(double d);

// Compact JSON text of any value (key order as stored), with reals spelled by
// json_number_text: json::dump, shared with the API. nullptr → "null".
[[nodiscard]] std::string json_text(const json_t *value);

// Structural equality where numbers compare by value, whatever their type
// (1 == 1.0), and objects ignore key order.
[[nodiscard]] bool json_same_value(const json_t *a, const json_t *b);

// Decodes any JSON text (objects, arrays, scalars). Empty Json on error, with
// `error` (if given) saying why.
[[nodiscard]] Json json_parse(std::string_view text, std::string *error = nullptr,
                              size_t flags = 0);

}  // namespace relyloop::worker
