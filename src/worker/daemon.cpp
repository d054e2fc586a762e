#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "commands.hpp"
#include "db.hpp"
#include "ipc_server.hpp"
#include "job_runner.hpp"
#include "metrics.hpp"
#include "reconciler.hpp"
#include "relyloop/version.hpp"
#include "webhook_jobs.hpp"

namespace relyloop::worker {

namespace {

using Clock = std::chrono::steady_clock;

// Blocks SIGTERM/SIGINT in every thread created afterwards (they inherit the
// mask) and delivers them to the I/O loop through a signalfd instead.
class SignalChannel {
  public:
    SignalChannel() {
        sigemptyset(&set_);
        sigaddset(&set_, SIGTERM);
        sigaddset(&set_, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set_, &old_);
        fd_ = signalfd(-1, &set_, SFD_NONBLOCK | SFD_CLOEXEC);
    }
    ~SignalChannel() {
        if (fd_ >= 0) {
            close(fd_);
        }
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    SignalChannel(const SignalChannel &) = delete;
    SignalChannel &operator=(const SignalChannel &) = delete;

    [[nodiscard]] int fd() const noexcept { return fd_; }

    // The signals that arrived since the last call.
    std::vector<int> take() {
        std::vector<int> sigs;
        signalfd_siginfo info{};
        while (read(fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
            sigs.push_back(static_cast<int>(info.ssi_signo));
        }
        return sigs;
    }

  private:
    sigset_t set_{};
    sigset_t old_{};
    int fd_ = -1;
};

// Start-up check only: an old schema is worth a warning, an unreachable
// database is not fatal (the runners retry). A transaction-pooling proxy is:
// the repo lock cannot work through it (returns false).
bool check_database_at_start(const Settings &settings, EventLog &log) {
    db::SessionProbe probe = db::probe_sessions(settings.pg_conninfo, &log);
    if (probe.connected && !probe.session_pooling_ok) {
        log.error("worker_start_failed", {{"message", db::transaction_pooling_message(probe)}});
        return false;
    }
    std::string err;
    PgConn conn = db::connect(settings.pg_conninfo, "relyloop-worker startup", &log, &err);
    if (!conn) {
        log.warn("db_unavailable", {{"message", "at start: " + err + "; will keep retrying"}});
        return true;
    }
    try {
        SchemaVersion sv = read_schema_version(conn.get());
        if (std::string why = sv.problem(); !why.empty()) {
            log.warn("schema_outdated", {{"message", why}});
        }
    } catch (const DbError &e) {
        log.warn("db_error", {{"message", e.what()}});
    }
    return true;
}

}  // namespace

int run_daemon(const Settings &settings, Pipeline &pipeline, EventLog &log) noexcept {
    try {
        signal(SIGPIPE, SIG_IGN);
        SignalChannel signals;
        if (signals.fd() < 0) {
            log.error("worker_start_failed", {{"message", "signalfd failed"}});
            return 1;
        }
        auto started = Clock::now();
        log.info("worker_started",
                 {{"message", std::string("relyloop-worker ") + kVersion},
                  {"worker_id", settings.worker_id},
                  {"socket", settings.socket_path},
                  {"threads", settings.threads},
                  {"clone_root", settings.clone_root},
                  {"job_timeout_s", static_cast<long long>(settings.job_timeout.count())},
                  {"lease_ttl_s", static_cast<long long>(settings.lease_ttl.count())},
                  {"dry_run", settings.dry_run}});
        // Clones hold the repositories' contents: only the worker's user
        // may enter a clone root the worker creates (docs/runbook.md).
        std::error_code ec;
        if (std::filesystem::create_directories(settings.clone_root, ec) && !ec) {
            std::filesystem::permissions(settings.clone_root, std::filesystem::perms::owner_all,
                                         ec);
        }
        if (ec) {
            log.error("worker_start_failed",
                      {{"message", "cannot create the clone root " + settings.clone_root + ": " +
                                       ec.message()}});
            return 1;
        }
        if (!check_database_at_start(settings, log)) {
            return 1;
        }

        // The runner outlives the server: the server's DB threads kick it.
        JobRunner runner(settings, pipeline, log);
        IpcServer server(settings, log);
        std::string err;
        if (!server.open(&err)) {
            log.error("worker_start_failed", {{"message", err}});
            return 1;
        }
        server.set_on_enqueued([&runner] { runner.kick(); });
        MetricsListener metrics_listener(settings, log);
        if (!settings.metrics_listen.empty()) {
            if (!metrics_listener.start(&err)) {
                log.error("worker_start_failed", {{"message", err}});
                return 1;
            }
            log.info("metrics_listening", {{"address", settings.metrics_listen}});
        }
        server.start_pool();
        runner.start();
        // Own threads, not job slots (docs/worker.md): the PR state
        // reconciler and the webhook registration runner.
        Reconciler reconciler(settings, log);
        reconciler.start();
        WebhookJobRunner hooks(settings, log);
        hooks.start();
        log.info("worker_ready", {{"socket", settings.socket_path}});

        bool stopping = false;
        auto on_signal = [&] {
            for (int sig : signals.take()) {
                const char *name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
                if (!stopping) {
                    stopping = true;
                    log.info(
                        "worker_stopping",
                        {{"message", std::string(name) + ": no new jobs; running jobs get " +
                                         std::to_string(settings.shutdown_grace.count()) + " s"},
                         {"running", static_cast<long long>(runner.active_jobs())}});
                    server.stop_accepting();
                    runner.request_stop(false);
                    reconciler.request_stop();
                    hooks.request_stop();
                } else {
                    log.info("worker_stopping",
                             {{"message", std::string(name) + " again: cancelling running jobs"}});
                    runner.request_stop(true);
                }
            }
        };
        auto done = [&] { return stopping && runner.runners_done() && server.idle(); };
        server.run(signals.fd(), on_signal, done);
        if (!stopping) {
            // The loop failed on its own: still stop cleanly.
            server.stop_accepting();
            runner.request_stop(true);
        }
        reconciler.request_stop();
        hooks.request_stop();
        runner.join();
        reconciler.join();
        hooks.join();
        server.shutdown();
        log.info("worker_stopped",
                 {{"duration_ms",
                   static_cast<long long>(
                       std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started)
                           .count())}});
        return stopping ? 0 : 1;
    } catch (const std::exception &e) {
        log.error("worker_failed", {{"message", e.what()}});
        return 1;
    } catch (...) {
        log.error("worker_failed", {{"message", "unexpected error"}});
        return 1;
    }
}

int worker_main(int argc, char **argv, const PipelineFactory &make_pipeline) noexcept {
    try {
        std::vector<std::string> args;
        for (int i = 1; i < argc; i++) {
            args.emplace_back(argv[i]);
        }
        ParsedCommandLine cl;
        try {
            cl = parse_command_line(args, [](const char *name) { return std::getenv(name); });
        } catch (const UsageError &e) {
            std::fprintf(stderr, "relyloop-worker: %s\nTry 'relyloop-worker --help'.\n", e.what());
            return 2;
        }
        switch (cl.command) {
            case Command::kHelp:
                std::fputs(usage_text().c_str(), stdout);
                return 0;
            case Command::kVersion:
                std::printf("relyloop-worker %s\n", kVersion);
                return 0;
            case Command::kMigrate:
                return run_migrate(cl.settings, stdout, stderr);
            case Command::kCheck:
                for (const std::string &w : cl.warnings) {
                    std::printf("warn  %-12s %s\n", "config", w.c_str());
                }
                return run_check(cl.settings, stdout, stderr);
            case Command::kDaemon:
                break;
        }
        EventLog log(stderr);
        for (const std::string &w : cl.warnings) {
            log.warn("worker_config_warning", {{"message", w}});
        }
        std::unique_ptr<Pipeline> pipeline;
        try {
            pipeline = make_pipeline(cl.settings, log);
        } catch (const std::exception &e) {
            log.error("worker_start_failed", {{"message", std::string("pipeline: ") + e.what()}});
            return 1;
        }
        if (!pipeline) {
            log.error("worker_start_failed", {{"message", "no pipeline"}});
            return 1;
        }
        return run_daemon(cl.settings, *pipeline, log);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "relyloop-worker: %s\n", e.what());
        return 1;
    } catch (...) {
        std::fprintf(stderr, "relyloop-worker: unexpected error\n");
        return 1;
    }
}

}  // namespace relyloop::worker
