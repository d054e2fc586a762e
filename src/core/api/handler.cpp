#include "api/handler.hpp"

#include <stdexcept>

#include "common/json_writer.hpp"
#include "common/redact.hpp"

namespace relyloop::core {

namespace {

bool has(std::string_view s, std::string_view part) { return s.find(part) != s.npos; }

// A unique violation of a create: the name (or name+version) constraint. The
// primary key cannot collide (ids are fresh UUIDv7s), so anything but a
// "_pkey" counts, which also covers RelyLoop databases whose constraint
// names differ from ours (config_repos_name_key, clusters_name_key,
// query_templates_name_version_key).
bool name_constraint(std::string_view constraint) { return !constraint.ends_with("_pkey"); }

// A foreign-key violation names the referencing column in the constraint
// (e.g. clusters_config_repo_id_fkey); it only happens when the referenced
// row disappears between the statement's check and its insert.
ErrorCode referenced_not_found(Endpoint e, std::string_view c) {
    if (has(c, "config_repo")) {
        return ErrorCode::kConfigRepoNotFound;
    }
    if (has(c, "parent_id") && e == Endpoint::kTemplateCreate) {
        return ErrorCode::kTemplateNotFound;
    }
    if (has(c, "cluster_id")) {
        return ErrorCode::kClusterNotFound;
    }
    if (has(c, "template_id")) {
        return ErrorCode::kTemplateNotFound;
    }
    if (has(c, "query_set_id") || has(c, "judgment_list_id")) {
        return ErrorCode::kResourceNotFound;
    }
    return ErrorCode::kInternalError;
}

const char *kind_name(DbFailure::Kind k) {
    switch (k) {
        case DbFailure::Kind::kUnavailable:
            return "unavailable";
        case DbFailure::Kind::kOverloaded:
            return "overloaded";
        case DbFailure::Kind::kTimeout:
            return "timeout";
        case DbFailure::Kind::kStatement:
            return "statement failed";
        case DbFailure::Kind::kAborted:
            return "pipeline aborted";
    }
    return "unknown";
}

}  // namespace

void Context::log(rl_log_level_t level, std::string_view msg) const {
    if (log_ == nullptr) {
        return;
    }
    std::string clean = redact(msg);
    log_(level, clean.data(), clean.size(), log_data_);
}

Action Handler::on_rows(Context &, const PGresult *) {
    throw std::logic_error("unexpected statement result");
}

Action Handler::on_worker(Context &, const std::string *, std::string_view) {
    throw std::logic_error("unexpected worker reply");
}

// The create handlers name their own conflicts; what is left are the 404s of
// a referenced row.
std::string Handler::conflict_message(ErrorCode code) {
    return std::string(not_found_message(code));
}

Action Handler::on_db_error(Context &ctx, const DbFailure &f) {
    ErrorCode code = db_error_code(endpoint_, f);
    if (code == ErrorCode::kValidationError) {
        // A value the core's checks let through (docs/api.md, "Timestamps"):
        // worth a line, but the client's error, not ours.
        ctx.log(RL_LOG_WARN, "statement rejected a parameter: sqlstate " + json::quote(f.sqlstate) +
                                 " on " + json::quote(ctx.request_id()) + ": " +
                                 json::quote(f.detail));
        return Action::error(code, "Request validation failed: a value is out of range");
    }
    if (error_http_status(code) < 500) {
        return Action::error(code, conflict_message(code));
    }
    // A column, table or own function the statement names is missing: the
    // database is older than this module (docs/upstream-schema.md).
    if (f.kind == DbFailure::Kind::kStatement &&
        (f.sqlstate == "42703" || f.sqlstate == "42P01" || f.sqlstate == "42883")) {
        ctx.log(RL_LOG_ERR,
                "database schema older than this module (run relyloop-worker "
                "migrate): " +
                    f.sqlstate);
    }
    std::string line = "database failure (";
    line += kind_name(f.kind);
    line += ')';
    if (!f.sqlstate.empty()) {
        line += " sqlstate " + json::quote(f.sqlstate);
    }
    if (!f.constraint.empty()) {
        line += " constraint " + json::quote(f.constraint);
    }
    line += " on " + json::quote(ctx.request_id()) + ": " + json::quote(f.detail);
    // During an outage every request fails the same way; the shim's pool logs
    // the cause once per burst at ERR, so the per-request line is a WARN.
    bool outage = f.kind == DbFailure::Kind::kUnavailable || f.kind == DbFailure::Kind::kOverloaded;
    ctx.log(outage ? RL_LOG_WARN : RL_LOG_ERR, line);
    if (code == ErrorCode::kDatabaseUnavailable) {
        return Action::error(code, "Database unavailable");
    }
    return Action::error(ErrorCode::kInternalError, "Internal server error");
}

ErrorCode db_error_code(Endpoint e, std::string_view sqlstate,
                        std::string_view constraint) noexcept {
    switch (classify_sqlstate(sqlstate)) {
        case SqlStateClass::kUniqueViolation:
            if (!name_constraint(constraint)) {
                return ErrorCode::kInternalError;
            }
            switch (e) {
                case Endpoint::kConfigRepoCreate:
                    return ErrorCode::kConfigRepoNameTaken;
                case Endpoint::kClusterCreate:
                    return ErrorCode::kClusterNameTaken;
                case Endpoint::kTemplateCreate:
                    return ErrorCode::kTemplateNameTaken;
                default:
                    return ErrorCode::kInternalError;
            }
        case SqlStateClass::kForeignKeyViolation:
            switch (e) {
                case Endpoint::kClusterCreate:
                case Endpoint::kClusterPatch:
                case Endpoint::kTemplateCreate:
                case Endpoint::kProposalCreate:
                case Endpoint::kSeed:
                    return referenced_not_found(e, constraint);
                default:
                    return ErrorCode::kInternalError;
            }
        case SqlStateClass::kConnection:
        case SqlStateClass::kQueryCanceled:
        case SqlStateClass::kSerialization:
            return ErrorCode::kDatabaseUnavailable;
        case SqlStateClass::kDataException:
            return ErrorCode::kValidationError;
        case SqlStateClass::kCheckViolation:
        case SqlStateClass::kOther:
            return ErrorCode::kInternalError;
    }
    return ErrorCode::kInternalError;
}

ErrorCode db_error_code(Endpoint e, const DbFailure &f) noexcept {
    if (f.kind != DbFailure::Kind::kStatement) {
        return ErrorCode::kDatabaseUnavailable;
    }
    return db_error_code(e, f.sqlstate, f.constraint);
}

DbFailure db_failure_from_result(const PGresult *res) {
    DbFailure f;
    f.kind = DbFailure::Kind::kStatement;
    if (const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE)) {
        f.sqlstate = s;
    }
    if (const char *c = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME)) {
        f.constraint = c;
    }
    if (const char *m = PQresultErrorMessage(res)) {
        f.detail = m;
        while (!f.detail.empty() && (f.detail.back() == '\n' || f.detail.back() == ' ')) {
            f.detail.pop_back();
        }
    }
    return f;
}

void expect_columns(const PGresult *res, int ncols) {
    if (PQnfields(res) < ncols) {
        throw std::runtime_error("unexpected result shape: " + std::to_string(PQnfields(res)) +
                                 " columns, expected " + std::to_string(ncols));
    }
}

std::string worker_reply_excerpt(std::string_view reply) {
    constexpr size_t kMax = 200;
    // Redact, then cut (docs/security.md).
    return json::quote(redact_truncate(reply, kMax) + (reply.size() > kMax ? "..." : ""));
}

void expect_one_row(const PGresult *res, int ncols, const char *what) {
    expect_columns(res, ncols);
    if (PQntuples(res) != 1) {
        throw std::runtime_error(std::string(what) + " returned no row");
    }
}

std::unique_ptr<Handler> make_handler(Endpoint e) {
    switch (e) {
        case Endpoint::kConfigRepoList:
        case Endpoint::kConfigRepoCreate:
        case Endpoint::kConfigRepoGet:
        case Endpoint::kConfigRepoRegisterWebhook:
            return make_config_repo_handler(e);
        case Endpoint::kClusterList:
        case Endpoint::kClusterCreate:
        case Endpoint::kClusterGet:
        case Endpoint::kClusterPatch:
        case Endpoint::kClusterDelete:
        case Endpoint::kClusterTestConnection:
            return make_cluster_handler(e);
        case Endpoint::kTemplateList:
        case Endpoint::kTemplateCreate:
        case Endpoint::kTemplateGet:
            return make_template_handler(e);
        case Endpoint::kStudyList:
        case Endpoint::kStudyGet:
        case Endpoint::kTrialList:
        case Endpoint::kStudyCancel:
        case Endpoint::kDigestGet:
            return make_study_handler(e);
        case Endpoint::kProposalList:
        case Endpoint::kProposalCreate:
        case Endpoint::kProposalGet:
        case Endpoint::kProposalReject:
        case Endpoint::kProposalReinstate:
            return make_proposal_handler(e);
        case Endpoint::kProposalOpenPr:
            return make_open_pr_handler();
        case Endpoint::kSeed:
            return make_seed_handler();
        case Endpoint::kHealth:
            return make_health_handler();
        case Endpoint::kOpenapi:
            return make_openapi_handler();
        case Endpoint::kNone:
            break;
    }
    throw std::logic_error("no handler for endpoint");
}

}  // namespace relyloop::core
