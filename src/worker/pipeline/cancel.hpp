#pragma once

#include <exception>

namespace relyloop::worker {

// Thrown from deep inside a pipeline step (libgit2/libcurl callbacks, retry
// sleeps) when JobContext::cancel is set; run() turns it into kCancelled.
class Cancelled : public std::exception {
  public:
    [[nodiscard]] const char *what() const noexcept override { return "cancelled"; }
};

}  // namespace relyloop::worker
