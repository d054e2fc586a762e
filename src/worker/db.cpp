#include "db.hpp"

#include <algorithm>
#include <cstdlib>

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
void notice_to_log(void *arg, const char *message) {
    auto *log = static_cast<EventLog *>(arg);
    if (log != nullptr) {
        std::string m = trim_message(message);
        log->warn("pg_notice", {{"message", m}});
    }
}

}  // namespace

PgConn connect(const std::string &conninfo, const char *application_name, EventLog *log,
               std::string *error) {
    // Keywords before "dbname" are defaults: the expanded conninfo overrides them.
    const char *keys[] = {
        "connect_timeout",  "keepalives",       "keepalives_idle", "keepalives_interval",
        "keepalives_count", "application_name", "dbname",          nullptr};
    const char *vals[] = {"5", "1", "30", "10", "3", application_name, conninfo.c_str(), nullptr};
    PgConn conn(PQconnectdbParams(keys, vals, 1));
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
