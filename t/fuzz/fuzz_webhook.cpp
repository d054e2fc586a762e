// libFuzzer target: the webhook receiver's pure parts (src/core/api/webhook.cpp)
// on hostile input: the repository normalisation, the signature header, the
// delivery id, and the event dispatch over any JSON payload. Properties: a
// normalised repository is <owner>/<repo> of [a-z0-9._-] and no longer than
// the input; a kept delivery id is the input unchanged; the dispatch kind is
// one of five, and "merged" has a merged_at.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "api/webhook.hpp"
#include "common/raii.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    using namespace relyloop::core;
    std::string_view in(reinterpret_cast<const char *>(data), size);
    if (auto repo = webhook_repository(in)) {
        size_t slashes = 0;
        for (char c : *repo) {
            bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                      c == '-' || c == '/';
            slashes += c == '/';
            if (!ok) {
                std::fprintf(stderr, "repository \"%s\" has a bad byte\n", repo->c_str());
                std::abort();
            }
        }
        if (slashes != 1 || repo->front() == '/' || repo->back() == '/' ||
            repo->size() > in.size()) {
            std::fprintf(stderr, "repository \"%s\" is not <owner>/<repo>\n", repo->c_str());
            std::abort();
        }
    }
    (void)webhook_signature(in);
    std::string id = webhook_delivery_id(in);
    if (!id.empty() && id != in) {
        std::abort();
    }
    json_error_t err;
    relyloop::Json j(json_loadb(in.data(), in.size(), JSON_DECODE_ANY, &err));
    for (const char *event : {"pull_request", "ping", "issues"}) {
        WebhookEvent e = webhook_event(event, j.get());
        if (e.kind != "noop" && e.kind != "ping" && e.kind != "merged" && e.kind != "closed" &&
            e.kind != "reopened") {
            std::abort();
        }
        if (e.kind == "merged" && !e.merged_at) {
            std::abort();
        }
    }
    return 0;
}
