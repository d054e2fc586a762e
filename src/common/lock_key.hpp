#pragma once

#include <cstdint>
#include <string_view>

namespace relyloop {

// RelyLoop's per-config-repo advisory lock key (docs/worker.md, "Jobs"): BLAKE2b with an
// 8-byte digest of "config-repo:" + config_repo_id, read big-endian as a
// signed int64, so RelyLoop and relyloop-pr workers can share one database.
[[nodiscard]] int64_t config_repo_lock_key(std::string_view config_repo_id);

}  // namespace relyloop
