#include "settings.hpp"

#include <libpq-fe.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string_view>

#include "common/raii.hpp"
#include "common/redact.hpp"
#include "common/strings.hpp"
#include "common/validate.hpp"
#include "db.hpp"
#include "metrics.hpp"

namespace relyloop::worker {

namespace {

using namespace std::string_view_literals;

enum class Kind {
    kString,          // non-empty
    kOptionalString,  // "" = unset
    kUrl,             // http(s)://host[:port][/path]
    kOptionalUrl,     // "" = unset
    kInt,
    kSeconds,
    kBool,  // on the command line the flag alone means true
};

struct Option {
    const char *flag;  // without the leading "--"
    const char *env;   // nullptr: flag only
    Kind kind;
    long long min;  // kInt / kSeconds
    long long max;
    const char *help;
    // The default shown after the help in brackets, read from a
    // default-constructed Settings (which owns the defaults); nullptr: the
    // help names it itself.
    std::string (*shown_default)(const Settings &d);
};

std::string secs(std::chrono::seconds s) { return std::to_string(s.count()) + "s"; }

// The flags of docs/worker.md, "Configuration"; the extras last.
constexpr Option kOptions[] = {
    {"pg-conninfo", "RELYLOOP_PG_CONNINFO", Kind::kString, 0, 0,
     "libpq connection string (required)"},
    {"socket", "RELYLOOP_WORKER_SOCKET", Kind::kString, 0, 0, "Unix socket to listen on",
     [](const Settings &d) { return d.socket_path; }},
    {"secrets-dir", "RELYLOOP_SECRETS_DIR", Kind::kString, 0, 0, "directory of PAT files",
     [](const Settings &d) { return d.secrets_dir; }},
    {"clone-root", "RELYLOOP_REPO_CLONE_ROOT", Kind::kString, 0, 0, "clone cache",
     [](const Settings &d) { return d.clone_root; }},
    {"github-api-url", "RELYLOOP_GITHUB_API_URL", Kind::kUrl, 0, 0, "GitHub REST API",
     [](const Settings &d) { return d.github_api_url; }},
    {"github-web-url", "RELYLOOP_GITHUB_WEB_URL", Kind::kUrl, 0, 0, "GitHub web URL",
     [](const Settings &d) { return d.github_web_url; }},
    {"base-url", "RELYLOOP_BASE_URL", Kind::kOptionalUrl, 0, 0,
     "RelyLoop UI base URL for study links [unset]"},
    {"git-author-name", "RELYLOOP_GIT_AUTHOR_NAME", Kind::kString, 0, 0, "commit author name",
     [](const Settings &d) { return d.git_author_name; }},
    {"git-author-email", "RELYLOOP_GIT_AUTHOR_EMAIL", Kind::kString, 0, 0, "commit author email",
     [](const Settings &d) { return d.git_author_email; }},
    {"threads", "RELYLOOP_WORKER_THREADS", Kind::kInt, 1, 256, "job runner threads",
     [](const Settings &d) { return std::to_string(d.threads); }},
    {"job-timeout", "RELYLOOP_JOB_TIMEOUT", Kind::kSeconds, 1, 86400, "per-job timeout",
     [](const Settings &d) { return secs(d.job_timeout); }},
    {"lock-retry-delay", "RELYLOOP_LOCK_RETRY_DELAY", Kind::kSeconds, 1, 3600,
     "delay after repo lock contention",
     [](const Settings &d) { return secs(d.lock_retry_delay); }},
    {"max-lock-waits", "RELYLOOP_MAX_LOCK_WAITS", Kind::kInt, 0, 1000000,
     "contentions before LOCK_TIMEOUT",
     [](const Settings &d) { return std::to_string(d.max_lock_waits); }},
    {"ca-file", "RELYLOOP_CA_FILE", Kind::kOptionalString, 0, 0,
     "CA bundle for GitHub [system bundle]"},
    {"lease-ttl", "RELYLOOP_LEASE_TTL", Kind::kSeconds, 1, 3600,
     "job lease, renewed every third of it", [](const Settings &d) { return secs(d.lease_ttl); }},
    {"worker-id", "RELYLOOP_WORKER_ID", Kind::kString, 0, 0,
     "identity stored in pr_jobs.worker_id [<hostname>:<pid>]"},
    {"shutdown-grace", "RELYLOOP_SHUTDOWN_GRACE", Kind::kSeconds, 0, 3600,
     "time running jobs get on SIGTERM",
     [](const Settings &d) { return "min(job-timeout, " + secs(d.shutdown_grace) + ")"; }},
    {"client-idle-timeout", "RELYLOOP_CLIENT_IDLE_TIMEOUT", Kind::kSeconds, 1, 3600,
     "disconnect silent socket clients after",
     [](const Settings &d) { return secs(d.client_idle_timeout); }},
    {"dry-run", "RELYLOOP_DRY_RUN", Kind::kBool, 0, 0,
     "commit locally; push nothing, open no PR [off]"},
    {"metrics-listen", "RELYLOOP_METRICS_LISTEN", Kind::kOptionalString, 0, 0,
     "serve Prometheus metrics at http://ADDR:PORT/metrics [off]"},
    {"pr-poll-minutes", "RELYLOOP_PR_POLL_MINUTES", Kind::kString, 0, 0,
     "PR state reconciler period in minutes, 0 = off",
     [](const Settings &d) { return std::to_string(d.pr_poll_minutes); }},
    {"webhook-url", "RELYLOOP_WEBHOOK_URL", Kind::kOptionalUrl, 0, 0,
     "URL GitHub delivers webhooks to [<base-url>/webhooks/github]"},
};

// The reconciler's supported periods (docs/worker.md, "PR state reconciler"):
// divisors of 60, or multiples of 60 dividing 1440.
constexpr int kPollMinutes[] = {1,  2,  3,  4,   5,   6,   10,  12,  15,
                                20, 30, 60, 120, 180, 240, 360, 720, 1440};

const Option *find_option(std::string_view flag) {
    for (const Option &o : kOptions) {
        if (flag == o.flag) {
            return &o;
        }
    }
    return nullptr;
}

std::string describe(const Option &o, bool from_env) {
    return from_env ? std::string(o.env) : "--" + std::string(o.flag);
}

long long parse_int(const Option &o, const std::string &v, bool from_env) {
    std::string_view s = v;
    long long mult = 1;
    if (o.kind == Kind::kSeconds && !s.empty()) {
        switch (s.back()) {
            case 's':
                s.remove_suffix(1);
                break;
            case 'm':
                s.remove_suffix(1);
                mult = 60;
                break;
            case 'h':
                s.remove_suffix(1);
                mult = 3600;
                break;
            default:
                break;
        }
    }
    bool digits = !s.empty() && s.size() <= 12 &&
                  std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits) {
        throw UsageError(
            describe(o, from_env) + ": invalid value \"" + redact(v) + "\" (expected " +
            (o.kind == Kind::kSeconds ? "seconds, e.g. 30 or 30s or 2m" : "an integer") + ")");
    }
    long long n = std::stoll(std::string(s)) * mult;
    if (n < o.min || n > o.max) {
        throw UsageError(describe(o, from_env) + ": value " + v + " out of range (" +
                         std::to_string(o.min) + ".." + std::to_string(o.max) +
                         (o.kind == Kind::kSeconds ? " seconds)" : ")"));
    }
    return n;
}

bool printable(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u >= 0x20 && u != 0x7f;
    });
}

int parse_poll_minutes(const std::string &v) {
    bool digits = !v.empty() && v.size() <= 9 &&
                  std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
    int n = digits ? std::stoi(v) : -1;
    if (n == 0) {
        return 0;
    }
    for (int ok : kPollMinutes) {
        if (n == ok) {
            return n;
        }
    }
    std::string set;
    for (int ok : kPollMinutes) {
        set += (set.empty() ? "" : ", ") + std::to_string(ok);
    }
    throw UsageError("RELYLOOP_PR_POLL_MINUTES=" + redact(v) + " is not in the supported set [" +
                     set +
                     "]. Pick a divisor of 60 (≤60) or a multiple of 60 that divides 1440 "
                     "(>60).");
}

void apply(Settings &st, const Option &o, const std::string &v, bool from_env, bool &grace_given) {
    std::string_view f = o.flag;
    auto bad = [&](const std::string &why) {
        return UsageError(describe(o, from_env) + ": invalid value \"" + redact(v) + "\": " + why);
    };
    if (o.kind == Kind::kString && v.empty()) {
        throw UsageError(describe(o, from_env) + ": must not be empty");
    }
    if (o.kind == Kind::kUrl || (o.kind == Kind::kOptionalUrl && !v.empty())) {
        // nginx's relyloop_github_web_url is checked by the same rule (docs/directives.md)
        auto u = normalize_web_url(v);
        if (!u) {
            throw bad("expected an http(s)://host[:port][/path] URL without credentials");
        }
        if (f == "webhook-url") {
            st.webhook_url = *u;
        } else if (f == "github-api-url") {
            st.github_api_url = *u;
        } else if (f == "github-web-url") {
            st.github_web_url = *u;
        } else {
            st.base_url = *u;
        }
        return;
    }
    if (f == "base-url") {
        st.base_url.clear();
    } else if (f == "webhook-url") {
        st.webhook_url.clear();
    } else if (f == "pr-poll-minutes") {
        st.pr_poll_minutes = parse_poll_minutes(v);
    } else if (f == "pg-conninfo") {
        char *raw_err = nullptr;
        PgConninfo opts(PQconninfoParse(v.c_str(), &raw_err));
        PgText err(raw_err);
        if (opts == nullptr) {
            std::string msg = db::trim_message(err != nullptr ? err.get() : "out of memory");
            throw UsageError(describe(o, from_env) + ": invalid connection string: " + redact(msg));
        }
        st.pg_conninfo = v;
    } else if (f == "socket") {
        if (v.size() >= sizeof(sockaddr_un{}.sun_path)) {
            throw bad("longer than " + std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                      " bytes");
        }
        st.socket_path = v;
    } else if (f == "secrets-dir") {
        st.secrets_dir = v;
    } else if (f == "clone-root") {
        st.clone_root = v;
    } else if (f == "git-author-name") {
        if (v.size() > 256 || !printable(v) || v.find_first_of("<>") != std::string::npos) {
            throw bad("must be printable, at most 256 bytes, without '<' or '>'");
        }
        st.git_author_name = v;
    } else if (f == "git-author-email") {
        size_t at = v.find('@');
        if (v.size() > 256 || !printable(v) || v.find_first_of("<> ") != std::string::npos ||
            at == std::string::npos || at == 0 || at + 1 == v.size()) {
            throw bad("expected an address like bot@example.com");
        }
        st.git_author_email = v;
    } else if (f == "threads") {
        st.threads = static_cast<int>(parse_int(o, v, from_env));
    } else if (f == "job-timeout") {
        st.job_timeout = std::chrono::seconds(parse_int(o, v, from_env));
    } else if (f == "lock-retry-delay") {
        st.lock_retry_delay = std::chrono::seconds(parse_int(o, v, from_env));
    } else if (f == "max-lock-waits") {
        st.max_lock_waits = static_cast<int>(parse_int(o, v, from_env));
    } else if (f == "ca-file") {
        st.ca_file = v;
    } else if (f == "lease-ttl") {
        st.lease_ttl = std::chrono::seconds(parse_int(o, v, from_env));
    } else if (f == "worker-id") {
        if (v.size() > 128 || !printable(v)) {
            throw bad("must be printable and at most 128 bytes");
        }
        st.worker_id = v;
    } else if (f == "shutdown-grace") {
        st.shutdown_grace = std::chrono::seconds(parse_int(o, v, from_env));
        grace_given = true;
    } else if (f == "client-idle-timeout") {
        st.client_idle_timeout = std::chrono::seconds(parse_int(o, v, from_env));
    } else if (f == "dry-run") {
        if (v == "1" || v == "true" || v == "yes" || v == "on") {
            st.dry_run = true;
        } else if (v == "0" || v == "false" || v == "no" || v == "off") {
            st.dry_run = false;
        } else {
            throw bad("expected true or false (1/0, yes/no, on/off)");
        }
    } else if (f == "metrics-listen") {
        std::string host;
        int port = 0;
        if (!v.empty() && !metrics::parse_listen(v, &host, &port)) {
            throw bad("expected ADDR:PORT with a numeric address, e.g. 127.0.0.1:9464");
        }
        st.metrics_listen = v;
    }
}

std::string default_worker_id() {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') {
        std::snprintf(host, sizeof host, "localhost");
    }
    std::string id = std::string(host) + ":" + std::to_string(getpid());
    if (id.size() > 128) {
        id = id.substr(id.size() - 128);
    }
    return id;
}

std::string current_dir() {
    std::error_code ec;
    auto p = std::filesystem::current_path(ec);
    return ec ? std::string("/") : p.string();
}

}  // namespace

ParsedCommandLine parse_command_line(const std::vector<std::string> &args, const EnvLookup &env,
                                     const std::string &cwd) {
    ParsedCommandLine out;
    Settings &st = out.settings;
    bool grace_given = false;
    bool have_command = false;
    bool conninfo_given = false;

    // The environment first, then the flags on top of it.
    for (const Option &o : kOptions) {
        const char *v = env ? env(o.env) : nullptr;
        if (v != nullptr && *v != '\0') {
            apply(st, o, v, true, grace_given);
            conninfo_given |= std::string_view(o.flag) == "pg-conninfo";
        }
    }
    for (size_t i = 0; i < args.size(); i++) {
        const std::string &a = args[i];
        if (a == "--help" || a == "-h") {
            out.command = Command::kHelp;
            return out;
        }
        if (a == "--version") {
            out.command = Command::kVersion;
            return out;
        }
        if (a.starts_with("--")) {
            std::string name = a.substr(2);
            std::string value;
            bool inline_value = false;
            if (size_t eq = name.find('='); eq != std::string::npos) {
                value = name.substr(eq + 1);
                name.resize(eq);
                inline_value = true;
            }
            const Option *o = find_option(name);
            if (o == nullptr) {
                throw UsageError("unknown option --" + redact(name));
            }
            if (!inline_value && o->kind == Kind::kBool) {
                value = "true";  // `--dry-run` alone; `--dry-run=false` also works
            } else if (!inline_value) {
                if (i + 1 >= args.size()) {
                    throw UsageError("--" + name + " needs a value");
                }
                value = args[++i];
            }
            apply(st, *o, value, false, grace_given);
            conninfo_given |= name == "pg-conninfo";
            continue;
        }
        if (a.starts_with("-") && a != "-") {
            throw UsageError("unknown option " + redact(a));
        }
        if (have_command) {
            throw UsageError("unexpected argument \"" + redact(a) + "\"");
        }
        if (a == "migrate") {
            out.command = Command::kMigrate;
        } else if (a == "check") {
            out.command = Command::kCheck;
        } else {
            throw UsageError("unknown sub-command \"" + redact(a) +
                             "\" (expected migrate or check, or none for the daemon)");
        }
        have_command = true;
    }

    if (!conninfo_given) {
        throw UsageError("--pg-conninfo (or RELYLOOP_PG_CONNINFO) is required");
    }
    if (!grace_given) {
        st.shutdown_grace = std::min(st.job_timeout, Settings{}.shutdown_grace);
    }
    if (st.worker_id.empty()) {
        st.worker_id = default_worker_id();
    }
    if (st.webhook_url.empty() && !st.base_url.empty()) {
        st.webhook_url = std::string(strip_trailing_slashes(st.base_url)) + "/webhooks/github";
    }
    std::filesystem::path root(st.clone_root);
    if (root.is_relative()) {
        root = std::filesystem::path(cwd.empty() ? current_dir() : cwd) / root;
    }
    st.clone_root = std::string(strip_trailing_slashes(root.lexically_normal().string(), 1));
    if (st.git_author_email == Settings{}.git_author_email) {
        out.warnings.push_back("--git-author-email is left at its default " +
                               Settings{}.git_author_email +
                               "; commits will carry that address (set RELYLOOP_GIT_AUTHOR_EMAIL)");
    }
    if (st.dry_run) {
        out.warnings.push_back(
            "--dry-run is on: jobs commit in the clone only; nothing is pushed, no PR is "
            "opened, proposals stay pending");
    }
    return out;
}

std::string usage_text() {
    std::string s =
        "usage: relyloop-worker [options] [migrate | check]\n"
        "\n"
        "  (no sub-command)  run the daemon: socket listener and job runner\n"
        "  migrate           apply the database schema (idempotent, safe to run concurrently)\n"
        "  check             validate configuration and connectivity, then exit\n"
        "\n"
        "options (each also read from the environment variable shown; flags win):\n";
    for (const Option &o : kOptions) {
        std::string line = "  --" + std::string(o.flag);
        line.resize(std::max<size_t>(line.size() + 1, 25), ' ');
        line += o.help;
        if (o.shown_default != nullptr) {
            line += " [" + o.shown_default(Settings{}) + "]";
        }
        line += "\n";
        s += line;
        s += "                           env ";
        s += o.env;
        s += "\n";
    }
    s += "  --help                 this text\n"
         "  --version              print the version\n"
         "\n"
         "Durations are seconds, optionally with a suffix: 30, 30s, 2m, 1h.\n";
    return s;
}

}  // namespace relyloop::worker
