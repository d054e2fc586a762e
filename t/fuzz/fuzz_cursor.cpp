// libFuzzer target: cursor decoding (src/core/api/pagination.cpp), a value
// any client can tamper with. Properties: a decoded list cursor's timestamp
// is a normalised timestamp parse_rfc3339 accepts again; what is decoded
// re-encodes and decodes to the same values; base64url round-trips.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "api/pagination.hpp"
#include "common/timefmt.hpp"

using namespace relyloop::core;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view in(reinterpret_cast<const char *>(data), size);

    if (auto raw = base64url_decode(in)) {
        if (base64url_encode(*raw) != in) {
            std::fprintf(stderr, "base64url is not canonical\n");
            std::abort();
        }
    }
    if (auto c = decode_list_cursor(in)) {
        if (!relyloop::parse_rfc3339(c->created_at)) {
            std::fprintf(stderr, "cursor timestamp \"%s\" not a timestamp\n",
                         c->created_at.c_str());
            std::abort();
        }
    }
    for (TrialSort s : {TrialSort::kMetricDesc, TrialSort::kMetricAsc, TrialSort::kNumberAsc}) {
        auto c = decode_trial_cursor(in, s);
        if (!c) continue;
        std::string again = encode_trial_cursor(s, c->key ? c->key->c_str() : nullptr, c->id);
        auto d = decode_trial_cursor(again, s);
        if (!d || d->key != c->key || d->id != c->id) {
            std::fprintf(stderr, "trial cursor does not round-trip\n");
            std::abort();
        }
    }
    return 0;
}
