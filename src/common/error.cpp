#include "common/error.hpp"

#include <cstring>

namespace relyloop {

namespace {

struct CodeInfo {
    std::string_view name;
    int status;
    bool retryable;
};

CodeInfo info(ErrorCode code) noexcept {
    switch (code) {
        case ErrorCode::kValidationError:
            return {"VALIDATION_ERROR", 422, false};
        case ErrorCode::kResourceNotFound:
            return {"RESOURCE_NOT_FOUND", 404, false};
        case ErrorCode::kMethodNotAllowed:
            return {"METHOD_NOT_ALLOWED", 405, false};
        case ErrorCode::kPayloadTooLarge:
            return {"PAYLOAD_TOO_LARGE", 413, false};
        case ErrorCode::kUnsupportedMediaType:
            return {"UNSUPPORTED_MEDIA_TYPE", 415, false};
        case ErrorCode::kInternalError:
            return {"INTERNAL_ERROR", 500, false};
        case ErrorCode::kDatabaseUnavailable:
            return {"DATABASE_UNAVAILABLE", 503, true};
        case ErrorCode::kQueueUnavailable:
            return {"QUEUE_UNAVAILABLE", 503, true};
        case ErrorCode::kGithubNotConfigured:
            return {"GITHUB_NOT_CONFIGURED", 503, true};
        case ErrorCode::kUnsupportedProvider:
            return {"UNSUPPORTED_PROVIDER", 400, false};
        // docs/api.md, "Errors": the operator can drop the file in place and retry.
        case ErrorCode::kAuthRefNotFound:
            return {"AUTH_REF_NOT_FOUND", 400, true};
        case ErrorCode::kConfigRepoNameTaken:
            return {"CONFIG_REPO_NAME_TAKEN", 409, false};
        case ErrorCode::kConfigRepoNotFound:
            return {"CONFIG_REPO_NOT_FOUND", 404, false};
        case ErrorCode::kClusterNameTaken:
            return {"CLUSTER_NAME_TAKEN", 409, false};
        case ErrorCode::kClusterNotFound:
            return {"CLUSTER_NOT_FOUND", 404, false};
        case ErrorCode::kTemplateNameTaken:
            return {"TEMPLATE_NAME_TAKEN", 409, false};
        case ErrorCode::kTemplateNotFound:
            return {"TEMPLATE_NOT_FOUND", 404, false};
        case ErrorCode::kStudyNotFound:
            return {"STUDY_NOT_FOUND", 404, false};
        case ErrorCode::kDigestNotReady:
            return {"DIGEST_NOT_READY", 404, true};
        case ErrorCode::kProposalNotFound:
            return {"PROPOSAL_NOT_FOUND", 404, false};
        case ErrorCode::kInvalidStateTransition:
            return {"INVALID_STATE_TRANSITION", 409, false};
        case ErrorCode::kClusterHasNoConfigRepo:
            return {"CLUSTER_HAS_NO_CONFIG_REPO", 422, false};
        case ErrorCode::kEngineNotSupported:
            return {"ENGINE_NOT_SUPPORTED", 400, false};
        case ErrorCode::kAuthKindNotSupported:
            return {"AUTH_KIND_NOT_SUPPORTED", 400, false};
        case ErrorCode::kClusterProbeUnsupported:
            return {"CLUSTER_PROBE_UNSUPPORTED", 501, false};
        case ErrorCode::kCloneFailed:
            return {"CLONE_FAILED", 500, false};
        case ErrorCode::kBranchExists:
            return {"BRANCH_EXISTS", 409, false};
        case ErrorCode::kConfigPathInvalid:
            return {"CONFIG_PATH_INVALID", 422, false};
        case ErrorCode::kParamsFileNotFound:
            return {"PARAMS_FILE_NOT_FOUND", 422, false};
        case ErrorCode::kParamNotInTemplate:
            return {"PARAM_NOT_IN_TEMPLATE", 422, false};
        case ErrorCode::kNoChanges:
            return {"NO_CHANGES", 422, false};
        case ErrorCode::kPushFailed:
            return {"PUSH_FAILED", 502, false};
        case ErrorCode::kGithubApiFailed:
            return {"GITHUB_API_FAILED", 502, false};
        case ErrorCode::kLockTimeout:
            return {"LOCK_TIMEOUT", 503, false};
        case ErrorCode::kJobTimeout:
            return {"JOB_TIMEOUT", 504, false};
    }
    return {"INTERNAL_ERROR", 500, false};
}

}  // namespace

std::string_view error_code_name(ErrorCode code) noexcept { return info(code).name; }

int error_http_status(ErrorCode code) noexcept { return info(code).status; }

bool error_retryable(ErrorCode code) noexcept { return info(code).retryable; }

DbError::DbError(std::string sqlstate, const std::string &message)
    : Error(ErrorCode::kInternalError, message), sqlstate_(std::move(sqlstate)) {}

SqlStateClass classify_sqlstate(std::string_view s) noexcept {
    if (s == "23505") {
        return SqlStateClass::kUniqueViolation;
    }
    if (s == "23503") {
        return SqlStateClass::kForeignKeyViolation;
    }
    if (s == "23514") {
        return SqlStateClass::kCheckViolation;
    }
    if (s == "57014") {
        return SqlStateClass::kQueryCanceled;
    }
    if (s == "40001" || s == "40P01") {
        return SqlStateClass::kSerialization;
    }
    // Class 22: a parameter outside its type's domain (22007, 22008, 22009,
    // 22003, 22P02, 22021, ...). The core validates every parameter first, so
    // this is a gap in that validation, but still the client's input.
    if (s.size() == 5 && s.starts_with("22")) {
        return SqlStateClass::kDataException;
    }
    // Class 08 (connection exception), 57P01..57P03 (admin shutdown, crash
    // shutdown, cannot connect now), 53 (insufficient resources).
    if (s.starts_with("08") || s == "57P01" || s == "57P02" || s == "57P03" ||
        s.starts_with("53")) {
        return SqlStateClass::kConnection;
    }
    return SqlStateClass::kOther;
}

std::string errno_text(int e) {
    char buf[128];
    return strerror_r(e, buf, sizeof buf);  // the GNU version returns the text
}

}  // namespace relyloop
