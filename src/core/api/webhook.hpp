#pragma once

// POST /webhooks/github (docs/webhooks.md). The pure parts are exposed for
// the unit tests.

#include <jansson.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "api/handler.hpp"

namespace relyloop::core {

// repository.full_name trimmed, lower-cased, one trailing ".git" removed;
// nullopt unless it is <owner>/<repo> of [a-z0-9._-]+.
[[nodiscard]] std::optional<std::string> webhook_repository(std::string_view full_name);

// X-Hub-Signature-256: "sha256=" + 64 hex digits (either case) → 32 bytes.
[[nodiscard]] std::optional<std::array<unsigned char, 32>> webhook_signature(
    std::string_view header);

// HMAC-SHA256(key, body) compared with expected in constant time (OpenSSL).
[[nodiscard]] bool webhook_signature_matches(std::string_view key, std::string_view body,
                                             const std::array<unsigned char, 32> &expected);

// X-GitHub-Delivery kept when it matches ^[A-Za-z0-9-]{1,64}$, else "".
[[nodiscard]] std::string webhook_delivery_id(std::string_view header);

// The dispatch of docs/webhooks.md: kind is ping, merged, closed, reopened
// or noop; timestamps normalised for a timestamptz parameter.
struct WebhookEvent {
    std::string kind = "noop";
    std::string html_url;
    std::optional<std::string> merged_at;
    std::optional<std::string> updated_at;
};
[[nodiscard]] WebhookEvent webhook_event(std::string_view gh_event, const json_t *payload);

[[nodiscard]] std::unique_ptr<Handler> make_webhook_handler(std::string_view delivery,
                                                            std::string_view event,
                                                            std::string_view signature);

}  // namespace relyloop::core
