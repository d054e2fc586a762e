// libFuzzer target: the worker socket protocol (src/common/worker_protocol.cpp):
// the line framer fed in arbitrary pieces, and parse_request on every line.
// Properties: parse_request never throws and yields either a request or an
// error; the framer never hands out more bytes than it was fed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "protocol.hpp"

using relyloop::worker::LineFramer;
using relyloop::worker::parse_request;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view in(reinterpret_cast<const char *>(data), size);

    // The whole input as one line (the common case).
    auto whole = parse_request(in);
    if (whole.request.has_value() == !whole.error.empty()) std::abort();
    if (whole.request && whole.request->op == relyloop::worker::RequestOp::kEnqueue &&
        whole.request->proposal_id.empty()) {
        std::abort();
    }

    // Through a small framer, in pieces whose sizes come from the input.
    LineFramer framer(256);
    size_t fed = 0, taken = 0;
    for (size_t i = 0; i < size;) {
        size_t n = 1 + data[i] % 37;
        if (n > size - i) n = size - i;
        framer.feed(in.substr(i, n));
        fed += n;
        i += n;
        std::string line;
        for (;;) {
            auto st = framer.next(&line);
            if (st == LineFramer::Status::kNeedMore) break;
            if (st == LineFramer::Status::kTooLong) return 0;  // answered and closed
            taken += line.size() + 1;
            if (line.size() > 256 || taken > fed + 1) std::abort();
            auto r = parse_request(line);
            if (r.request.has_value() == !r.error.empty()) std::abort();
        }
    }
    return 0;
}
