#pragma once

// The worker's configuration (SPEC §3.2): each flag also read from its
// environment variable; flags win over the environment, the environment over
// the defaults. Parsed and validated by settings.cpp.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace relyloop::worker {

struct Settings {
    std::string pg_conninfo;                                   // --pg-conninfo (required)
    std::string socket_path = "/run/relyloop/worker.sock";     // --socket
    std::string secrets_dir = "/etc/relyloop/secrets";         // --secrets-dir
    std::string clone_root = "/var/lib/relyloop/repo-clones";  // --clone-root (made absolute)
    std::string github_api_url = "https://api.github.com";     // --github-api-url
    std::string github_web_url = "https://github.com";         // --github-web-url
    std::string base_url;                                      // --base-url ("" = unset)
    std::string git_author_name = "relyloop-bot";              // --git-author-name
    std::string git_author_email = "relyloop-bot@example.com"; // --git-author-email
    int threads = 4;                                           // --threads
    std::chrono::seconds job_timeout{180};                     // --job-timeout
    std::chrono::seconds lock_retry_delay{5};                  // --lock-retry-delay
    int max_lock_waits = 30;                                   // --max-lock-waits
    std::string ca_file;                                       // --ca-file ("" = system bundle)

    // Beyond SPEC §3.2 (documented in docs/worker.md): how long a claimed
    // job's lease lasts without renewal, i.e. how soon another worker takes
    // over a job whose worker died. Renewed every lease_ttl / 3.
    std::chrono::seconds lease_ttl{30};                        // --lease-ttl
    // A stable identity for pr_jobs.worker_id; default "<hostname>:<pid>".
    std::string worker_id;                                     // --worker-id
};

}  // namespace relyloop::worker
