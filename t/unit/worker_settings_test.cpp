#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "settings.hpp"

using namespace relyloop::worker;

namespace {

struct Env {
    std::map<std::string, std::string> vars;
    EnvLookup lookup() const {
        return [this](const char *name) -> const char * {
            auto it = vars.find(name);
            return it == vars.end() ? nullptr : it->second.c_str();
        };
    }
};

ParsedCommandLine parse(std::vector<std::string> args, const Env &env = {}) {
    return parse_command_line(args, env.lookup(), "/work/dir");
}

std::string usage_error(std::vector<std::string> args, const Env &env = {}) {
    try {
        (void)parse(std::move(args), env);
    } catch (const UsageError &e) {
        return e.what();
    }
    return "(no error)";
}

const std::string kCi = "host=/tmp port=5432 dbname=app";

}  // namespace

TEST(Settings, DefaultsOfSpec32) {
    ParsedCommandLine p = parse({"--pg-conninfo", kCi});
    const Settings &s = p.settings;
    EXPECT_EQ(p.command, Command::kDaemon);
    EXPECT_EQ(s.pg_conninfo, kCi);
    EXPECT_EQ(s.socket_path, "/run/relyloop/worker.sock");
    EXPECT_EQ(s.secrets_dir, "/etc/relyloop/secrets");
    EXPECT_EQ(s.clone_root, "/var/lib/relyloop/repo-clones");
    EXPECT_EQ(s.github_api_url, "https://api.github.com");
    EXPECT_EQ(s.github_web_url, "https://github.com");
    EXPECT_EQ(s.base_url, "");
    EXPECT_EQ(s.git_author_name, "relyloop-bot");
    EXPECT_EQ(s.git_author_email, "relyloop-bot@example.com");
    EXPECT_EQ(s.threads, 4);
    EXPECT_EQ(s.job_timeout.count(), 180);
    EXPECT_EQ(s.lock_retry_delay.count(), 5);
    EXPECT_EQ(s.max_lock_waits, 30);
    EXPECT_EQ(s.ca_file, "");
    EXPECT_EQ(s.lease_ttl.count(), 30);
    EXPECT_EQ(s.shutdown_grace.count(), 20);
    EXPECT_EQ(s.client_idle_timeout.count(), 30);
    EXPECT_FALSE(s.worker_id.empty());
    EXPECT_NE(s.worker_id.find(':'), std::string::npos);
    // The default author email is worth a warning.
    ASSERT_EQ(p.warnings.size(), 1u);
    EXPECT_NE(p.warnings[0].find("git-author-email"), std::string::npos);
}

TEST(Settings, EnvironmentOverridesDefaults) {
    Env env;
    env.vars = {{"RELYLOOP_PG_CONNINFO", kCi},
                {"RELYLOOP_WORKER_SOCKET", "/tmp/w.sock"},
                {"RELYLOOP_SECRETS_DIR", "/s"},
                {"RELYLOOP_REPO_CLONE_ROOT", "/c"},
                {"RELYLOOP_GITHUB_API_URL", "https://ghe.example.com/api/v3/"},
                {"RELYLOOP_GITHUB_WEB_URL", "https://ghe.example.com"},
                {"RELYLOOP_BASE_URL", "http://ui.local:3000"},
                {"RELYLOOP_GIT_AUTHOR_NAME", "Bot"},
                {"RELYLOOP_GIT_AUTHOR_EMAIL", "bot@corp.example"},
                {"RELYLOOP_WORKER_THREADS", "8"},
                {"RELYLOOP_JOB_TIMEOUT", "2m"},
                {"RELYLOOP_LOCK_RETRY_DELAY", "7s"},
                {"RELYLOOP_MAX_LOCK_WAITS", "0"},
                {"RELYLOOP_CA_FILE", "/ca.pem"},
                {"RELYLOOP_LEASE_TTL", "10"},
                {"RELYLOOP_WORKER_ID", "w-1"},
                {"RELYLOOP_CLIENT_IDLE_TIMEOUT", "3"}};
    ParsedCommandLine p = parse({}, env);
    const Settings &s = p.settings;
    EXPECT_EQ(s.socket_path, "/tmp/w.sock");
    EXPECT_EQ(s.secrets_dir, "/s");
    EXPECT_EQ(s.clone_root, "/c");
    EXPECT_EQ(s.github_api_url, "https://ghe.example.com/api/v3");  // trailing slash dropped
    EXPECT_EQ(s.github_web_url, "https://ghe.example.com");
    EXPECT_EQ(s.base_url, "http://ui.local:3000");
    EXPECT_EQ(s.git_author_name, "Bot");
    EXPECT_EQ(s.git_author_email, "bot@corp.example");
    EXPECT_EQ(s.threads, 8);
    EXPECT_EQ(s.job_timeout.count(), 120);
    EXPECT_EQ(s.lock_retry_delay.count(), 7);
    EXPECT_EQ(s.max_lock_waits, 0);
    EXPECT_EQ(s.ca_file, "/ca.pem");
    EXPECT_EQ(s.lease_ttl.count(), 10);
    EXPECT_EQ(s.worker_id, "w-1");
    EXPECT_EQ(s.client_idle_timeout.count(), 3);
    EXPECT_TRUE(p.warnings.empty());
}

TEST(Settings, FlagsWinOverEnvironment) {
    Env env;
    env.vars = {{"RELYLOOP_PG_CONNINFO", "dbname=fromenv"},
                {"RELYLOOP_WORKER_THREADS", "8"},
                {"RELYLOOP_SOCKET", "/ignored"},
                {"RELYLOOP_WORKER_SOCKET", "/env.sock"}};
    ParsedCommandLine p = parse({"--threads", "2", "--pg-conninfo=dbname=fromflag"}, env);
    EXPECT_EQ(p.settings.threads, 2);
    EXPECT_EQ(p.settings.pg_conninfo, "dbname=fromflag");
    EXPECT_EQ(p.settings.socket_path, "/env.sock");
}

TEST(Settings, EmptyEnvironmentValuesAreUnset) {
    Env env;
    env.vars = {
        {"RELYLOOP_PG_CONNINFO", kCi}, {"RELYLOOP_WORKER_THREADS", ""}, {"RELYLOOP_BASE_URL", ""}};
    ParsedCommandLine p = parse({}, env);
    EXPECT_EQ(p.settings.threads, 4);
    EXPECT_EQ(p.settings.base_url, "");
}

TEST(Settings, SubCommands) {
    EXPECT_EQ(parse({"--pg-conninfo", kCi, "migrate"}).command, Command::kMigrate);
    EXPECT_EQ(parse({"check", "--pg-conninfo", kCi}).command, Command::kCheck);
    EXPECT_EQ(parse({"--help"}).command, Command::kHelp);
    EXPECT_EQ(parse({"-h"}).command, Command::kHelp);
    EXPECT_EQ(parse({"--version"}).command, Command::kVersion);
    EXPECT_NE(usage_text().find("--pg-conninfo"), std::string::npos);
    EXPECT_NE(usage_text().find("RELYLOOP_REPO_CLONE_ROOT"), std::string::npos);
}

// --help shows each default as Settings holds it (the one place they are
// written), in the bracketed form docs/worker.md documents.
TEST(Settings, UsageShowsTheDefaults) {
    std::string u = usage_text();
    for (const char *shown :
         {"Unix socket to listen on [/run/relyloop/worker.sock]",
          "directory of PAT files [/etc/relyloop/secrets]",
          "clone cache [/var/lib/relyloop/repo-clones]", "GitHub REST API [https://api.github.com]",
          "GitHub web URL [https://github.com]", "commit author name [relyloop-bot]",
          "commit author email [relyloop-bot@example.com]", "job runner threads [4]",
          "per-job timeout [180s]", "delay after repo lock contention [5s]",
          "contentions before LOCK_TIMEOUT [30]", "job lease, renewed every third of it [30s]",
          "time running jobs get on SIGTERM [min(job-timeout, 20s)]",
          "disconnect silent socket clients after [30s]",
          "PR state reconciler period in minutes, 0 = off [15]",
          "RelyLoop UI base URL for study links [unset]"}) {
        EXPECT_NE(u.find(shown), std::string::npos) << shown;
    }
}

// The shutdown grace defaults to min(job timeout, the Settings default).
TEST(Settings, ShutdownGraceFollowsAShortJobTimeout) {
    EXPECT_EQ(parse({"--pg-conninfo", kCi, "--job-timeout", "7"}).settings.shutdown_grace.count(),
              7);
    EXPECT_EQ(parse({"--pg-conninfo", kCi, "--job-timeout", "600"}).settings.shutdown_grace,
              Settings{}.shutdown_grace);
}

// The start-up warning names the default author email from Settings.
TEST(Settings, DefaultAuthorEmailWarning) {
    auto w = parse({"--pg-conninfo", kCi}).warnings;
    ASSERT_FALSE(w.empty());
    EXPECT_EQ(w[0],
              "--git-author-email is left at its default relyloop-bot@example.com; commits will "
              "carry that address (set RELYLOOP_GIT_AUTHOR_EMAIL)");
}

TEST(Settings, CloneRootBecomesAbsolute) {
    EXPECT_EQ(parse({"--pg-conninfo", kCi, "--clone-root", "clones"}).settings.clone_root,
              "/work/dir/clones");
    EXPECT_EQ(parse({"--pg-conninfo", kCi, "--clone-root", "./a/../b/"}).settings.clone_root,
              "/work/dir/b");
    EXPECT_EQ(parse({"--pg-conninfo", kCi, "--clone-root", "/abs//x/"}).settings.clone_root,
              "/abs/x");
}

TEST(Settings, ShutdownGraceDefaultsToMinOfJobTimeoutAnd20s) {
    EXPECT_EQ(parse({"--pg-conninfo", kCi, "--job-timeout", "5"}).settings.shutdown_grace.count(),
              5);
    EXPECT_EQ(parse({"--pg-conninfo", kCi, "--job-timeout", "5", "--shutdown-grace", "0"})
                  .settings.shutdown_grace.count(),
              0);
}

TEST(Settings, EmptyBaseUrlFlagUnsets) {
    Env env;
    env.vars = {{"RELYLOOP_PG_CONNINFO", kCi}, {"RELYLOOP_BASE_URL", "https://ui"}};
    EXPECT_EQ(parse({"--base-url", ""}, env).settings.base_url, "");
}

TEST(Settings, InvalidValuesNameTheOption) {
    EXPECT_EQ(usage_error({}), "--pg-conninfo (or RELYLOOP_PG_CONNINFO) is required");
    EXPECT_EQ(usage_error({"--pg-conninfo", kCi, "--threads", "0"}),
              "--threads: value 0 out of range (1..256)");
    EXPECT_EQ(usage_error({"--pg-conninfo", kCi, "--threads", "four"}),
              "--threads: invalid value \"four\" (expected an integer)");
    EXPECT_NE(usage_error({"--pg-conninfo", kCi, "--job-timeout", "-1"}).find("--job-timeout"),
              std::string::npos);
    EXPECT_NE(usage_error({"--pg-conninfo", kCi, "--job-timeout", "10x"}).find("seconds"),
              std::string::npos);
    EXPECT_NE(usage_error({"--pg-conninfo", kCi, "--lock-retry-delay", "0"}).find("out of range"),
              std::string::npos);
    EXPECT_EQ(usage_error({"--pg-conninfo", kCi, "--bogus", "1"}), "unknown option --bogus");
    EXPECT_EQ(usage_error({"--pg-conninfo", kCi, "-x"}), "unknown option -x");
    EXPECT_EQ(usage_error({"--pg-conninfo"}), "--pg-conninfo needs a value");
    EXPECT_NE(usage_error({"--pg-conninfo", kCi, "serve"}).find("unknown sub-command \"serve\""),
              std::string::npos);
    EXPECT_NE(usage_error({"--pg-conninfo", kCi, "migrate", "check"}).find("unexpected argument"),
              std::string::npos);
    EXPECT_NE(usage_error({"--pg-conninfo", "host"}).find("invalid connection string"),
              std::string::npos);
    EXPECT_NE(usage_error({"--pg-conninfo", kCi, "--socket", ""}).find("must not be empty"),
              std::string::npos);
    EXPECT_NE(usage_error({"--pg-conninfo", kCi, "--socket", "/" + std::string(200, 's')})
                  .find("longer than 107 bytes"),
              std::string::npos);
    EXPECT_NE(usage_error({"--pg-conninfo", kCi, "--git-author-email", "nobody"})
                  .find("--git-author-email"),
              std::string::npos);
    EXPECT_NE(
        usage_error({"--pg-conninfo", kCi, "--git-author-name", "a <b>"}).find("--git-author-name"),
        std::string::npos);
}

TEST(Settings, InvalidEnvironmentValuesNameTheVariable) {
    Env env;
    env.vars = {{"RELYLOOP_PG_CONNINFO", kCi}, {"RELYLOOP_WORKER_THREADS", "many"}};
    EXPECT_EQ(usage_error({}, env),
              "RELYLOOP_WORKER_THREADS: invalid value \"many\" (expected an integer)");
    // A valid flag does not rescue an invalid environment value: both are checked.
    EXPECT_NE(usage_error({"--threads", "2"}, env), "(no error)");
}

TEST(Settings, UrlsMustBeHttpWithoutCredentials) {
    auto err = [](const std::string &url) {
        return usage_error({"--pg-conninfo", kCi, "--github-api-url", url});
    };
    EXPECT_NE(err("ftp://x").find("--github-api-url"), std::string::npos);
    EXPECT_NE(err("https://").find("invalid value"), std::string::npos);
    EXPECT_NE(err("https://user:pw@host").find("invalid value"), std::string::npos);
    EXPECT_NE(err("https://host/a b").find("invalid value"), std::string::npos);
    EXPECT_NE(err("https://host:99999").find("invalid value"), std::string::npos);
    EXPECT_NE(err("https://host?x=1").find("invalid value"), std::string::npos);
    EXPECT_EQ(err("http://127.0.0.1:8081/api/v3"), "(no error)");
    EXPECT_EQ(err("https://[::1]:8443"), "(no error)");
    // The password of a URL never shows up in the message.
    EXPECT_EQ(err("https://u:sekrit@h/x y").find("sekrit"), std::string::npos);
}

TEST(Settings, DryRunFlagAloneOrWithAValueAndFromTheEnvironment) {
    EXPECT_FALSE(parse({"--pg-conninfo", kCi}).settings.dry_run);
    // the flag alone does not take the next argument as its value
    ParsedCommandLine p = parse({"--pg-conninfo", kCi, "--dry-run", "migrate"});
    EXPECT_TRUE(p.settings.dry_run);
    EXPECT_EQ(p.command, Command::kMigrate);
    EXPECT_TRUE(parse({"--pg-conninfo", kCi, "--dry-run=yes"}).settings.dry_run);
    EXPECT_FALSE(parse({"--pg-conninfo", kCi, "--dry-run=false"}).settings.dry_run);

    Env env;
    env.vars["RELYLOOP_DRY_RUN"] = "1";
    EXPECT_TRUE(parse({"--pg-conninfo", kCi}, env).settings.dry_run);
    EXPECT_FALSE(parse({"--pg-conninfo", kCi, "--dry-run=0"}, env).settings.dry_run);
    env.vars["RELYLOOP_DRY_RUN"] = "";
    EXPECT_FALSE(parse({"--pg-conninfo", kCi}, env).settings.dry_run);

    // it is said at start
    bool warned = false;
    for (const std::string &w : parse({"--pg-conninfo", kCi, "--dry-run"}).warnings) {
        warned |= w.find("--dry-run is on") != std::string::npos;
    }
    EXPECT_TRUE(warned);

    EXPECT_NE(
        usage_error({"--pg-conninfo", kCi, "--dry-run=maybe"}).find("--dry-run: invalid value"),
        std::string::npos);
    env.vars["RELYLOOP_DRY_RUN"] = "2";
    EXPECT_NE(usage_error({"--pg-conninfo", kCi}, env).find("RELYLOOP_DRY_RUN: invalid value"),
              std::string::npos);
    EXPECT_NE(usage_text().find("--dry-run"), std::string::npos);
}

TEST(Settings, PrPollMinutesSupportedSetAndExactMessage) {
    EXPECT_EQ(parse({"--pg-conninfo", kCi}).settings.pr_poll_minutes, 15);
    for (const char *ok : {"0", "1", "2", "3", "4", "5", "6", "10", "12", "15", "20", "30", "60",
                           "120", "180", "240", "360", "720", "1440"}) {
        EXPECT_EQ(parse({"--pg-conninfo", kCi, "--pr-poll-minutes", ok}).settings.pr_poll_minutes,
                  std::stoi(ok));
    }
    const std::string tail =
        " is not in the supported set [1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60, 120, 180, 240, "
        "360, 720, 1440]. Pick a divisor of 60 (\u226460) or a multiple of 60 that divides 1440 "
        "(>60).";
    EXPECT_EQ(usage_error({"--pg-conninfo", kCi, "--pr-poll-minutes", "7"}),
              "RELYLOOP_PR_POLL_MINUTES=7" + tail);
    EXPECT_EQ(usage_error({"--pg-conninfo", kCi, "--pr-poll-minutes", "90"}),
              "RELYLOOP_PR_POLL_MINUTES=90" + tail);
    Env env{{{"RELYLOOP_PR_POLL_MINUTES", "x"}}};
    EXPECT_EQ(usage_error({"--pg-conninfo", kCi}, env), "RELYLOOP_PR_POLL_MINUTES=x" + tail);
    Env env5{{{"RELYLOOP_PR_POLL_MINUTES", "5"}}};
    EXPECT_EQ(parse({"--pg-conninfo", kCi}, env5).settings.pr_poll_minutes, 5);
}

TEST(Settings, WebhookUrlDefaultsFromBaseUrl) {
    EXPECT_EQ(parse({"--pg-conninfo", kCi}).settings.webhook_url, "");
    EXPECT_EQ(parse({"--pg-conninfo", kCi, "--base-url", "https://rl.example.com/ui/"})
                  .settings.webhook_url,
              "https://rl.example.com/ui/webhooks/github");
    EXPECT_EQ(parse({"--pg-conninfo", kCi, "--base-url", "https://rl.example.com", "--webhook-url",
                     "https://hooks.example.com/gh"})
                  .settings.webhook_url,
              "https://hooks.example.com/gh");
    Env env{{{"RELYLOOP_WEBHOOK_URL", "https://h.example.com/x"}}};
    EXPECT_EQ(parse({"--pg-conninfo", kCi}, env).settings.webhook_url, "https://h.example.com/x");
}
