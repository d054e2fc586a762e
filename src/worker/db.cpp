#include "db.hpp"

#include <algorithm>
#include <cstdlib>

#include "common/c_callback.hpp"
#include "common/raii.hpp"
#include "common/redact.hpp"
#include "event_log.hpp"

namespace relyloop::worker::db {

std::string trim_message(const char *m) {
    std::string s = m != nullptr ? m : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
        s.pop_back();
    }
    return s;
}

namespace {

// libpq's default notice processor prints raw text to stderr, which would
// break the one-JSON-object-per-line log (and an unsolicited FATAL on an idle
// connection arrives this way when PostgreSQL shuts down).
// Nothing may cross libpq: a notice that cannot be logged (out of memory) is
// dropped.
void notice_to_log(void *arg, const char *message) noexcept {
    auto *log = static_cast<EventLog *>(arg);
    if (log != nullptr) {
        (void)guard_callback(nullptr, 0, [&] {
            std::string m = trim_message(message);
            log->warn("pg_notice", {{"message", m}});
            return 0;
        });
    }
}

}  // namespace

namespace {

// Server-side keepalives for the worker's sessions (docs/worker.md, "Lost
// hosts"): the repo lock lives in a session, and the server must drop a
// session whose host vanished within a minute, not after the kernel's
// two-hour default. Passed as startup `options`, before the operator's own
// (later -c settings win, so an operator can still override each of them).
constexpr const char kServerKeepalives[] =
    "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3 "
    "-c tcp_user_timeout=30000";

// The `options` the conninfo (or PGOPTIONS) already carries, "" when none.
std::string user_options(const std::string &conninfo) {
    char *raw_err = nullptr;
    PgConninfo opts(PQconninfoParse(conninfo.c_str(), &raw_err));
    PgText err(raw_err);  // unused: connecting reports a bad conninfo
    std::string found;
    bool set = false;
    if (opts != nullptr) {
        for (PQconninfoOption *o = opts.get(); o->keyword != nullptr; o++) {
            if (std::string_view(o->keyword) == "options" && o->val != nullptr) {
                found = o->val;
                set = true;
            }
        }
    }
    if (!set) {
        const char *env = std::getenv("PGOPTIONS");
        found = env != nullptr ? env : "";
    }
    return found;
}

PgConn connect_with(const std::string &conninfo, const char *application_name,
                    const std::string *options) {
    // Keywords before "dbname" are defaults: the expanded conninfo overrides
    // them. "options", when given, comes after it: it already merges ours
    // with the conninfo's.
    const char *keys[] = {"connect_timeout",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          "application_name",
                          "dbname",
                          options != nullptr ? "options" : nullptr,
                          nullptr};
    const char *vals[] = {"5",
                          "1",
                          "10",
                          "5",
                          "3",
                          "30000",
                          application_name,
                          conninfo.c_str(),
                          options != nullptr ? options->c_str() : nullptr,
                          nullptr};
    return PgConn(PQconnectdbParams(keys, vals, 1));
}

}  // namespace

PgConn connect(const std::string &conninfo, const char *application_name, EventLog *log,
               std::string *error) {
    std::string theirs = user_options(conninfo);
    std::string merged = theirs.empty() ? kServerKeepalives : kServerKeepalives + (" " + theirs);
    PgConn conn = connect_with(conninfo, application_name, &merged);
    if (conn && PQstatus(conn.get()) != CONNECTION_OK &&
        trim_message(PQerrorMessage(conn.get())).find("unsupported startup parameter") !=
            std::string::npos) {
        // A connection pooler (PgBouncer) that refuses startup options: no
        // server keepalives through it; the pooler's own apply instead.
        conn = connect_with(conninfo, application_name, theirs.empty() ? nullptr : &theirs);
    }
    if (!conn) {
        if (error != nullptr) {
            *error = "out of memory";
        }
        return nullptr;
    }
    if (PQstatus(conn.get()) != CONNECTION_OK) {
        if (error != nullptr) {
            *error = redact(trim_message(PQerrorMessage(conn.get())));
        }
        return nullptr;
    }
    PQsetNoticeProcessor(conn.get(), notice_to_log, log);
    return conn;
}

namespace {

std::vector<const char *> param_values(const std::vector<Param> &params) {
    std::vector<const char *> values;
    values.reserve(params.size());
    for (const Param &p : params) {
        values.push_back(p ? p->c_str() : nullptr);
    }
    return values;
}

// The result, or DbError for a failed statement.
PgResult checked(PGconn *conn, PgResult res) {
    ExecStatusType st = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        return res;
    }
    const char *state = res ? PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
    std::string msg = trim_message(res ? PQresultErrorMessage(res.get()) : PQerrorMessage(conn));
    if (msg.empty()) {
        msg = trim_message(PQerrorMessage(conn));
    }
    throw DbError(state != nullptr ? state : "", redact(msg));
}

}  // namespace

PgResult exec(PGconn *conn, const char *sql, const std::vector<Param> &params) {
    if (conn == nullptr) {
        throw DbError("", "no database connection");
    }
    std::vector<const char *> values = param_values(params);
    return checked(conn, PgResult(PQexecParams(conn, sql, static_cast<int>(values.size()), nullptr,
                                               values.data(), nullptr, nullptr, 0)));
}

void exec_script(PGconn *conn, const char *sql) {
    if (conn == nullptr) {
        throw DbError("", "no database connection");
    }
    checked(conn, PgResult(PQexec(conn, sql)));
}

PgResult exec_prepared(PGconn *conn, const char *name, const char *sql,
                       const std::vector<Param> &params) {
    if (conn == nullptr) {
        throw DbError("", "no database connection");
    }
    std::vector<const char *> values = param_values(params);
    auto run = [&] {
        return PgResult(PQexecPrepared(conn, name, static_cast<int>(values.size()), values.data(),
                                       nullptr, nullptr, 0));
    };
    PgResult res = run();
    const char *state = res ? PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
    // 26000 invalid_sql_statement_name: not prepared on this connection yet
    // (a new or reconnected session). Prepare it and run it once more.
    if (state != nullptr && std::string_view(state) == "26000") {
        checked(conn,
                PgResult(PQprepare(conn, name, sql, static_cast<int>(values.size()), nullptr)));
        res = run();
    }
    return checked(conn, std::move(res));
}

bool is_connection_error(const DbError &e, PGconn *conn) noexcept {
    return conn == nullptr || PQstatus(conn) != CONNECTION_OK || e.sqlstate().empty() ||
           classify_sqlstate(e.sqlstate()) == SqlStateClass::kConnection;
}

bool is_transient(const DbError &e, PGconn *conn) noexcept {
    return is_connection_error(e, conn) ||
           classify_sqlstate(e.sqlstate()) == SqlStateClass::kSerialization;
}

SessionProbe probe_sessions(const std::string &conninfo, EventLog *log) {
    SessionProbe p;
    PgConn a = connect(conninfo, "relyloop-worker probe", log, &p.error);
    if (!a) {
        return p;
    }
    PgConn b = connect(conninfo, "relyloop-worker probe", log, &p.error);
    if (!b) {
        return p;
    }
    p.connected = true;
    auto pid = [](PGconn *c) {
        PgResult r = exec(c, "SELECT pg_backend_pid()");
        return get_int(r.get(), 0, 0);
    };
    try {
        long long first = pid(a.get());
        p.proxied = first != PQbackendPID(a.get());
        // A pooler hands a freed backend to the next client (PgBouncer: the
        // most recently freed one first), so B's statement right after A's
        // lands on A's backend. Three rounds in case other clients interfere.
        for (int round = 0; round < 3 && p.session_pooling_ok; round++) {
            long long a1 = pid(a.get());
            long long b1 = pid(b.get());
            long long a2 = pid(a.get());
            if (a1 == b1 || a2 == b1) {
                p.session_pooling_ok = false;
                p.detail = "two client connections ran on the same server backend (pid " +
                           std::to_string(b1) + ")";
            } else if (a1 != a2 || a1 != first) {
                p.session_pooling_ok = false;
                p.detail = "one client connection moved between server backends (pid " +
                           std::to_string(first) + ", then " + std::to_string(a2) + ")";
            }
        }
    } catch (const DbError &e) {
        p.connected = false;
        p.error = e.what();
    }
    return p;
}

std::string transaction_pooling_message(const SessionProbe &p) {
    return "the connection goes through a transaction-pooling proxy (PgBouncer "
           "pool_mode=transaction or statement?): " +
           p.detail +
           ". The per-repo lock is a session-level advisory lock and cannot work there; "
           "connect the worker directly to PostgreSQL, or through a pool with "
           "pool_mode=session";
}

std::optional<std::string> get(const PGresult *r, int row, int col) {
    if (r == nullptr || row >= PQntuples(r) || col >= PQnfields(r) || PQgetisnull(r, row, col)) {
        return std::nullopt;
    }
    return std::string(PQgetvalue(r, row, col), static_cast<size_t>(PQgetlength(r, row, col)));
}

std::string get_or(const PGresult *r, int row, int col, std::string fallback) {
    auto v = get(r, row, col);
    return v ? *v : std::move(fallback);
}

long long get_int(const PGresult *r, int row, int col, long long fallback) {
    auto v = get(r, row, col);
    if (!v || v->empty()) {
        return fallback;
    }
    char *end = nullptr;
    long long n = std::strtoll(v->c_str(), &end, 10);
    return end != nullptr && *end == '\0' ? n : fallback;
}

std::chrono::milliseconds Backoff::next() noexcept {
    cur_ = cur_.count() == 0 ? std::chrono::milliseconds(250) : std::min(cur_ * 2, cap_);
    return cur_;
}

}  // namespace relyloop::worker::db
