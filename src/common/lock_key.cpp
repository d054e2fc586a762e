#include "common/lock_key.hpp"

#include <blake2.h>

#include <stdexcept>
#include <string>

namespace relyloop {

int64_t config_repo_lock_key(std::string_view config_repo_id) {
    std::string msg = "config-repo:";
    msg.append(config_repo_id);
    uint8_t digest[8];
    if (blake2b(digest, msg.data(), nullptr, sizeof digest, msg.size(), 0) != 0) {
        throw std::runtime_error("blake2b failed");
    }
    uint64_t v = 0;
    for (uint8_t byte : digest) {
        v = (v << 8) | byte;
    }
    return static_cast<int64_t>(v);
}

}  // namespace relyloop
