#pragma once

#include <optional>
#include <string>

namespace relyloop {

// One parameter of a parameterized SQL statement, in libpq's text format:
// std::nullopt is SQL NULL. The core's statements (src/core) and the worker's
// queries (src/worker/db.hpp) both take it.
using Param = std::optional<std::string>;

}  // namespace relyloop
