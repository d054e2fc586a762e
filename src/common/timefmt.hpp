#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace relyloop {

// PostgreSQL's text form of a timestamptz, with the session pinned to
// DateStyle=ISO and TimeZone=UTC ("2026-05-11 20:13:43.1234+00"), turned into
// the API's RFC 3339 form with microseconds ("2026-05-11T20:13:43.123400+00:00").
// Anything that does not look like that text is returned unchanged.
[[nodiscard]] std::string pg_timestamp_to_rfc3339(std::string_view pg);
// The same, appended to out without allocating; false (and out untouched)
// when pg does not look like that text.
bool append_pg_timestamp_rfc3339(std::string &out, std::string_view pg);

// Parses a client-supplied RFC 3339 timestamp ("YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)",
// 'T' or a space between date and time; a space in place of '+' is accepted
// because form decoding turns a literal '+' into one). Calendar ranges are
// checked, and the value must lie in PostgreSQL's domain so that no statement
// can fail on it: offsets up to ±15:59, and the instant in years 1..9999 once
// in UTC. Returns the value normalised to UTC ("…+00:00") for a
// `$n::timestamptz` parameter, or nullopt when the text is not such a timestamp.
[[nodiscard]] std::optional<std::string> parse_rfc3339(std::string_view s);

}  // namespace relyloop
