// Placeholder until the PR pipeline lands (src/worker/pipeline/*).
#include "pipeline/pr_pipeline.hpp"

namespace relyloop::worker {

namespace {

class NotBuiltPipeline final : public Pipeline {
public:
    PipelineResult run(const JobContext &) noexcept override {
        PipelineResult r;
        r.outcome = PipelineOutcome::kFailed;
        r.code = ErrorCode::kInternalError;
        r.message = "the PR pipeline is not built yet";
        return r;
    }
};

}  // namespace

std::unique_ptr<Pipeline> make_pr_pipeline(const Settings &, EventLog &) {
    return std::make_unique<NotBuiltPipeline>();
}

}  // namespace relyloop::worker
