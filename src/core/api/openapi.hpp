#pragma once

#include <string>

namespace relyloop::core {

// The embedded document, "@VERSION@" not yet replaced.
[[nodiscard]] const char *openapi_template() noexcept;

// The served body: the document with the version, as compact JSON. Built
// once per process on first use.
[[nodiscard]] const std::string &openapi_body();

}  // namespace relyloop::core
