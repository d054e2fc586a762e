#pragma once

// The defaults that more than one part applies — the nginx directives
// (docs/directives.md), the core behind them, the worker's flags
// (docs/worker.md) — written once. The C shim reads them as the RL_DEFAULT_*
// macros of relyloop/core.h, which src/core/core.cpp checks against these at
// compile time. A default only one part knows stays with that part: the
// worker's in struct Settings (src/worker/settings.hpp), the pool's where the
// shim merges its directives.

namespace relyloop::defaults {

// relyloop_worker_socket / --socket
inline constexpr char kWorkerSocket[] = "/run/relyloop/worker.sock";
// relyloop_secrets_dir / --secrets-dir
inline constexpr char kSecretsDir[] = "/etc/relyloop/secrets";
// relyloop_github_web_url / --github-web-url
inline constexpr char kGithubWebUrl[] = "https://github.com";
// relyloop_environment
inline constexpr char kEnvironment[] = "production";
// relyloop_webhook_replay_window, in seconds (7 days)
inline constexpr long long kWebhookReplayWindowS = 7 * 86400;

}  // namespace relyloop::defaults
