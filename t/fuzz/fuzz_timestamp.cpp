// libFuzzer target: the timestamp parsers (src/common/timefmt.cpp).
// parse_rfc3339 (client input) and pg_timestamp_to_rfc3339 (PostgreSQL's
// text). Property: a timestamp parse_rfc3339 accepts, once normalised, parses
// again to the same normalised value (the normal form is a fixed point).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/timefmt.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view in(reinterpret_cast<const char *>(data), size);
    if (auto norm = relyloop::parse_rfc3339(in)) {
        auto again = relyloop::parse_rfc3339(*norm);
        if (!again) {
            std::fprintf(stderr, "normal form \"%s\" does not parse\n", norm->c_str());
            std::abort();
        }
        if (*again != *norm) {
            std::fprintf(stderr, "\"%s\" -> \"%s\"\n", norm->c_str(), again->c_str());
            std::abort();
        }
    }
    std::string out = relyloop::pg_timestamp_to_rfc3339(in);
    (void)out;
    return 0;
}
