#pragma once

// Row layouts of db/statements.hpp → the JSON shapes of docs/api.md. Each
// renderer appends one object, reading its layout from column `at` by the
// layout's column names (docs/decisions.md, "Row layouts are tables").

#include <libpq-fe.h>

#include <string>

#include "api/responses.hpp"
#include "common/analytics.hpp"
#include "common/json_writer.hpp"
#include "db/rows.hpp"

namespace relyloop::core {

class Context;

using RenderFn = void (*)(std::string &out, const db::Row &r, int at);

void render_config_repo(std::string &out, const db::Row &r, int at);
// GET /config-repos/{id}: with the last merged proposal's summary after the
// ConfigRepo layout.
void render_config_repo_detail(std::string &out, const db::Row &r, int at);
void render_cluster(std::string &out, const db::Row &r, int at);
void render_template(std::string &out, const db::Row &r, int at);
void render_study(std::string &out, const db::Row &r, int at);
// The analytics inputs that follow a Study layout at `at` (docs/analytics.md).
[[nodiscard]] analytics::StudyInput study_analytics_input(const db::Row &r, int at);
// A study list row: the Study plus trial_count, direction, convergence_verdict.
void render_study_list_row(std::string &out, const db::Row &r, int at);
void render_trial(std::string &out, const db::Row &r, int at);
void render_digest(std::string &out, const db::Row &r, int at);
// Logs what parsing the stored follow-ups at `col` downgraded or dropped.
void log_followup_events(const Context &ctx, const db::Row &r, int col);
void render_proposal_summary(std::string &out, const db::Row &r, int at);
void render_proposal_detail(std::string &out, const db::Row &r, int at);

// A one-object response (200/201) from the layout at column `at` of row 0.
[[nodiscard]] Response object_response(int status, RenderFn render, const PGresult *res, int at);

// A list page {"data", "next_cursor", "has_more"} with X-Total-Count. The
// result holds up to limit + 1 rows; a row whose column `at` (the id) is NULL
// is the empty-page filler. total_col holds the filtered count.
template <typename CursorOf>
[[nodiscard]] Response list_response(const PGresult *res, int limit, int total_col, int at,
                                     RenderFn render, CursorOf cursor_of) {
    int n = PQntuples(res);
    Response r;
    r.body.reserve(64 + 384 * static_cast<size_t>(n < limit ? n : limit));
    r.body += "{\"data\":[";
    int taken = 0;
    int last = -1;
    bool more = false;
    for (int i = 0; i < n; i++) {
        db::Row row(res, i);
        if (row.null(at)) {
            continue;
        }
        if (taken == limit) {
            more = true;
            break;
        }
        if (taken != 0) {
            r.body.push_back(',');
        }
        render(r.body, row, at);
        taken++;
        last = i;
    }
    r.body += "],\"next_cursor\":";
    if (more && last >= 0) {
        json::write_string(r.body, cursor_of(db::Row(res, last)));
    } else {
        r.body += "null";
    }
    r.body += more ? ",\"has_more\":true}" : ",\"has_more\":false}";
    r.total_count = n > 0 ? std::string(db::Row(res, 0).text(total_col)) : "0";
    return r;
}

// The cursor of a created_at list row: [created_at, id] from the layout's id
// column and its created_at column.
[[nodiscard]] std::string created_at_cursor(const db::Row &r, int id_col, int created_col);

}  // namespace relyloop::core
