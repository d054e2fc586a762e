#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "commands.hpp"
#include "common/raii.hpp"
#include "common/redact.hpp"
#include "db.hpp"

namespace relyloop::worker {

namespace {

struct Reporter {
    FILE *out;
    FILE *err;

    void ok(const char *what, const std::string &detail) const {
        std::fprintf(out, "ok    %-12s %s\n", what, detail.c_str());
        std::fflush(out);
    }
    int fail(const char *what, const std::string &detail) const {
        std::fprintf(out, "FAIL  %-12s %s\n", what, detail.c_str());
        std::fflush(out);
        std::fprintf(err, "relyloop-worker check: %s: %s\n", what, detail.c_str());
        return 1;
    }
};

// Empty when `dir` is an existing directory we can use with `mode`
// (access(2) bits), else why not.
std::string check_dir(const std::string &dir, int mode) {
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0) {
        return dir + ": " + errno_text(errno);
    }
    if (!S_ISDIR(st.st_mode)) {
        return dir + " is not a directory";
    }
    if (access(dir.c_str(), mode) != 0) {
        return dir + ": " + errno_text(errno);
    }
    return {};
}

}  // namespace

int run_check(const Settings &s, FILE *out, FILE *err) noexcept {
    Reporter r{out, err};
    try {
        // 1. PostgreSQL reachable, 2. schema current.
        std::string cerr;
        PgConn conn = db::connect(s.pg_conninfo, "relyloop-worker check", nullptr, &cerr);
        if (!conn) {
            return r.fail("postgres", "cannot connect: " + cerr);
        }
        int v = PQserverVersion(conn.get());
        r.ok("postgres", "connected (PostgreSQL " + std::to_string(v / 10000) + "." +
                             std::to_string(v % 10000) + ")");
        // 1b. Sessions that keep session state (the repo lock).
        {
            db::SessionProbe probe = db::probe_sessions(s.pg_conninfo, nullptr);
            if (!probe.connected) {
                return r.fail("sessions", "cannot probe: " + probe.error);
            }
            if (!probe.session_pooling_ok) {
                return r.fail("sessions", db::transaction_pooling_message(probe));
            }
            r.ok("sessions", probe.proxied ? "through a session-pooling proxy; session locks work"
                                           : "direct; session locks work");
        }
        SchemaVersion sv;
        try {
            sv = read_schema_version(conn.get());
        } catch (const DbError &e) {
            return r.fail("schema", e.what());
        }
        if (std::string why = sv.problem(); !why.empty()) {
            return r.fail("schema", why);
        }
        if (sv.kind == DbKind::upstream || sv.kind == DbKind::upstream_unknown) {
            r.ok("schema", "upstream RelyLoop database at alembic revision " + sv.alembic +
                               ", every column this worker needs, own tables present");
        } else {
            r.ok("schema", "version " + std::to_string(sv.current) +
                               (sv.current > sv.latest ? " (newer than this worker's " +
                                                             std::to_string(sv.latest) + ")"
                                                       : ""));
        }

        // 3. Secrets directory: PAT files are read from it per job.
        if (std::string why = check_dir(s.secrets_dir, R_OK | X_OK); !why.empty()) {
            return r.fail("secrets-dir", why);
        }
        r.ok("secrets-dir", s.secrets_dir + " is readable");

        // 4. Clone root: writable, or creatable under its nearest existing parent.
        {
            std::filesystem::path p(s.clone_root);
            std::error_code ec;
            if (std::filesystem::exists(p, ec)) {
                if (std::string why = check_dir(p.string(), W_OK | X_OK); !why.empty()) {
                    return r.fail("clone-root", why);
                }
                r.ok("clone-root", s.clone_root + " is writable");
            } else {
                std::filesystem::path parent = p.parent_path();
                while (!parent.empty() && !std::filesystem::exists(parent, ec)) {
                    parent = parent.parent_path();
                }
                if (parent.empty()) {
                    return r.fail("clone-root", s.clone_root + " has no existing parent");
                }
                if (std::string why = check_dir(parent.string(), W_OK | X_OK); !why.empty()) {
                    return r.fail("clone-root", s.clone_root + " cannot be created: " + why);
                }
                r.ok("clone-root", s.clone_root + " will be created");
            }
        }

        // 5. Socket directory.
        {
            std::filesystem::path sock(s.socket_path);
            std::string dir = sock.has_parent_path() ? sock.parent_path().string() : ".";
            if (std::string why = check_dir(dir, W_OK | X_OK); !why.empty()) {
                return r.fail("socket-dir", why);
            }
            r.ok("socket-dir", dir + " is writable");
        }

        // 6. URLs (validated when parsed; shown for the record).
        r.ok("urls", "github api " + s.github_api_url + ", web " + s.github_web_url + ", base " +
                         (s.base_url.empty() ? std::string("(unset)") : s.base_url));

        // 7. CA file.
        if (!s.ca_file.empty()) {
            Fd fd(::open(s.ca_file.c_str(), O_RDONLY | O_CLOEXEC));
            if (!fd) {
                return r.fail("ca-file", s.ca_file + ": " + errno_text(errno));
            }
            struct stat st {};
            bool regular = fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode);
            fd.reset();
            if (!regular) {
                return r.fail("ca-file", s.ca_file + " is not a regular file");
            }
            r.ok("ca-file", s.ca_file + " is readable");
        } else {
            r.ok("ca-file", "system CA bundle");
        }
        std::fprintf(out, "all checks passed\n");
        std::fflush(out);
        return 0;
    } catch (const std::exception &e) {
        return r.fail("internal", redact(e.what()));
    } catch (...) {
        return r.fail("internal", "unexpected error");
    }
}

}  // namespace relyloop::worker
