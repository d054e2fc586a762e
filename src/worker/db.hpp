#pragma once

// Blocking libpq helpers for the worker's own threads (never on an event
// loop): connect with sane defaults, run a parameterized statement, turn a
// failure into DbError, and tell connection loss from other errors.

#include <libpq-fe.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "common/raii.hpp"
#include "common/sql_param.hpp"

namespace relyloop::worker {

class EventLog;

namespace db {

using relyloop::Param;  // common/sql_param.hpp

// Connects with defaults the operator's conninfo may override:
// connect_timeout=5, TCP keepalives, application_name. libpq notices go to
// `log` as "pg_notice" events instead of raw text on stderr. Returns nullptr
// with `error` (redacted) on failure.
[[nodiscard]] PgConn connect(const std::string &conninfo, const char *application_name,
                             EventLog *log, std::string *error);

// PQexecParams with text parameters. Throws DbError on any failure (an empty
// SQLSTATE and a CONNECTION_BAD handle when the connection is gone).
PgResult exec(PGconn *conn, const char *sql, const std::vector<Param> &params = {});

// A fixed multi-statement script without parameters (a migration step), which
// only the simple query protocol (PQexec) runs; no input ever reaches it.
// Throws DbError like exec().
void exec_script(PGconn *conn, const char *sql);

// libpq's message text without its trailing newline.
[[nodiscard]] std::string trim_message(const char *m);

// As exec(), for a hot statement: runs the statement prepared as `name` on
// this connection, preparing it from `sql` on first use (so the server plans
// it once per session, not per call). Only outside an explicit transaction:
// the first-use miss would abort one.
PgResult exec_prepared(PGconn *conn, const char *name, const char *sql,
                       const std::vector<Param> &params = {});

// A DbError caused by a lost or unusable connection (reconnect and retry).
[[nodiscard]] bool is_connection_error(const DbError &e, PGconn *conn) noexcept;

// A DbError worth retrying the job for: a lost connection (class 08, 57P01–
// 57P03, class 53) or a serialization failure / deadlock (40001, 40P01).
[[nodiscard]] bool is_transient(const DbError &e, PGconn *conn) noexcept;

// Whether the conninfo reaches PostgreSQL sessions the worker can keep
// session state in (the repo lock is a session-level advisory lock, docs/worker.md "Jobs").
// Two client connections each run `SELECT pg_backend_pid()` a few times: a
// transaction- or statement-pooling proxy (PgBouncer pool_mode=transaction)
// hands one backend to both, or moves one client between backends; a direct
// connection or a session pool never does. See docs/worker.md.
struct SessionProbe {
    bool connected = false;
    std::string error;               // when !connected
    bool proxied = false;            // PQbackendPID() is not the backend's pid: a proxy in front
    bool session_pooling_ok = true;  // false: transaction pooling, refuse
    std::string detail;              // what was seen, for the message
};
[[nodiscard]] SessionProbe probe_sessions(const std::string &conninfo, EventLog *log);

// The message for a connection that failed probe_sessions().
[[nodiscard]] std::string transaction_pooling_message(const SessionProbe &p);

// Text of (row, col), or nullopt for NULL.
[[nodiscard]] std::optional<std::string> get(const PGresult *r, int row, int col);
[[nodiscard]] std::string get_or(const PGresult *r, int row, int col, std::string fallback = {});
[[nodiscard]] long long get_int(const PGresult *r, int row, int col, long long fallback = 0);

// Exponential backoff for reconnects: 250 ms doubling to `cap`.
class Backoff {
  public:
    explicit Backoff(std::chrono::milliseconds cap = std::chrono::seconds(10)) : cap_(cap) {}
    [[nodiscard]] std::chrono::milliseconds next() noexcept;
    void reset() noexcept { cur_ = std::chrono::milliseconds(0); }
    [[nodiscard]] bool failing() const noexcept { return cur_.count() != 0; }

  private:
    std::chrono::milliseconds cap_;
    std::chrono::milliseconds cur_{0};
};

}  // namespace db
}  // namespace relyloop::worker
