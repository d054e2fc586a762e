#pragma once

// The worker's configuration (docs/worker.md, "Configuration"): each flag also read from its
// environment variable; flags win over the environment, the environment over
// the defaults. Parsed and validated by settings.cpp.

#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/defaults.hpp"

namespace relyloop::worker {

struct Settings {
    std::string pg_conninfo;                                    // --pg-conninfo (required)
    std::string socket_path = defaults::kWorkerSocket;          // --socket
    std::string secrets_dir = defaults::kSecretsDir;            // --secrets-dir
    std::string clone_root = "/var/lib/relyloop/repo-clones";   // --clone-root (made absolute)
    std::string github_api_url = "https://api.github.com";      // --github-api-url
    std::string github_web_url = defaults::kGithubWebUrl;       // --github-web-url
    std::string base_url;                                       // --base-url ("" = unset)
    std::string git_author_name = "relyloop-bot";               // --git-author-name
    std::string git_author_email = "relyloop-bot@example.com";  // --git-author-email
    int threads = 4;                                            // --threads
    std::chrono::seconds job_timeout{180};                      // --job-timeout
    std::chrono::seconds lock_retry_delay{5};                   // --lock-retry-delay
    int max_lock_waits = 30;                                    // --max-lock-waits
    std::string ca_file;                                        // --ca-file ("" = system bundle)

    // An extra flag (docs/worker.md): how long a claimed
    // job's lease lasts without renewal, i.e. how soon another worker takes
    // over a job whose worker died. Renewed every lease_ttl / 3.
    std::chrono::seconds lease_ttl{30};  // --lease-ttl
    // A stable identity for pr_jobs.worker_id; default "<hostname>:<pid>".
    std::string worker_id;  // --worker-id
    // Extra: on SIGTERM, running jobs get this long to finish
    // before they are cancelled and released; default min(job_timeout, 20 s).
    std::chrono::seconds shutdown_grace{20};  // --shutdown-grace
    // Extra: a socket client that sends nothing for this long is
    // disconnected.
    std::chrono::seconds client_idle_timeout{30};  // --client-idle-timeout
    // Extra: run jobs through the local commit only; push nothing,
    // open no PR, record what would have been sent (docs/worker.md).
    bool dry_run = false;  // --dry-run
    // Extra: serve GET /metrics (docs/metrics.md) on this
    // ADDR:PORT; "" = off.
    std::string metrics_listen;  // --metrics-listen
    // The PR state reconciler's period in minutes; 0 = off (docs/worker.md).
    int pr_poll_minutes = 15;  // --pr-poll-minutes
    // Where GitHub delivers webhooks; default <base-url>/webhooks/github,
    // "" = unset (webhook registration then fails with a clear message).
    std::string webhook_url;  // --webhook-url
};

enum class Command { kDaemon, kMigrate, kCheck, kHelp, kVersion };

struct ParsedCommandLine {
    Command command = Command::kDaemon;
    Settings settings;
    // Things worth a warning at start (e.g. the default author email).
    std::vector<std::string> warnings;
};

// A bad flag, value or sub-command: the message names it; exit status 2.
class UsageError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Reads one environment variable; nullptr when unset.
using EnvLookup = std::function<const char *(const char *name)>;

// Flags (`--name value` or `--name=value`) win over the environment, the
// environment over the defaults; empty environment values count as unset.
// `args` excludes argv[0]. The clone root is made absolute against `cwd`
// (the process's working directory when empty). Throws UsageError.
[[nodiscard]] ParsedCommandLine parse_command_line(const std::vector<std::string> &args,
                                                   const EnvLookup &env,
                                                   const std::string &cwd = {});

// The --help text.
[[nodiscard]] std::string usage_text();

}  // namespace relyloop::worker
