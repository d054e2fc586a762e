#pragma once

// The webhook registration runner (docs/worker.md, "Webhook registration"):
// one thread per worker, not a --threads job slot, that claims webhook_jobs
// rows (FOR UPDATE SKIP LOCKED, a lease, fenced writes — the pr_jobs
// lifecycle), lists the repository's hooks and creates ours when it is not
// there, holding the config repo's advisory lock (and one per GitHub
// repository) for those two calls. Every outcome message is redacted and
// written to config_repos.webhook_registration_error (NULL on success).
// The webhook secret is sent only in the create call's body.

#include <optional>
#include <string>

#include "event_log.hpp"
#include "periodic_thread.hpp"
#include "settings.hpp"

namespace relyloop::worker {

// The retry delays after attempts 1, 2, 3 of a transient failure; then failed.
inline constexpr int kWebhookRetryMinutes[] = {1, 5, 15};

class WebhookJobRunner {
  public:
    WebhookJobRunner(const Settings &settings, EventLog &log);
    ~WebhookJobRunner();
    WebhookJobRunner(const WebhookJobRunner &) = delete;
    WebhookJobRunner &operator=(const WebhookJobRunner &) = delete;

    void start();
    void request_stop() noexcept;
    void join() noexcept;

  private:
    void thread_main() noexcept;

    const Settings &settings_;
    EventLog &log_;
    PeriodicThread thread_;
};

}  // namespace relyloop::worker
