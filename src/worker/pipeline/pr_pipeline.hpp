#pragma once

#include <memory>

#include "event_log.hpp"
#include "pipeline.hpp"
#include "settings.hpp"

namespace relyloop::worker {

// The real PR pipeline (docs/worker.md, "Pipeline steps"; libgit2, libcurl, cairo). One instance is
// shared by all job threads; run() is thread-safe. Destroy it only after every
// run() has returned (its destructor frees cairo's process-wide caches).
// Throws std::runtime_error when --ca-file cannot be used by libgit2.
[[nodiscard]] std::unique_ptr<Pipeline> make_pr_pipeline(const Settings &settings, EventLog &log);

}  // namespace relyloop::worker
