#include "commands.hpp"
#include "pipeline/pr_pipeline.hpp"

int main(int argc, char **argv) {
    return relyloop::worker::worker_main(
        argc, argv,
        [](const relyloop::worker::Settings &settings, relyloop::worker::EventLog &log) {
            return relyloop::worker::make_pr_pipeline(settings, log);
        });
}
