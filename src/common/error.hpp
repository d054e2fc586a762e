#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace relyloop {

// One code per error code of docs/api.md ("Errors") and docs/runbook.md. The HTTP status and the
// retryable flag of the API envelope derive from the code (error.cpp).
enum class ErrorCode {
    kValidationError,
    kResourceNotFound,
    kMethodNotAllowed,
    kPayloadTooLarge,
    kUnsupportedMediaType,
    kInternalError,
    kDatabaseUnavailable,
    kQueueUnavailable,
    kGithubNotConfigured,
    kUnsupportedProvider,
    kAuthRefNotFound,
    kConfigRepoNameTaken,
    kConfigRepoNotFound,
    kClusterNameTaken,
    kClusterNotFound,
    kTemplateNameTaken,
    kTemplateNotFound,
    kStudyNotFound,
    kDigestNotReady,
    kProposalNotFound,
    kInvalidStateTransition,
    kClusterHasNoConfigRepo,
    kEngineNotSupported,
    kAuthKindNotSupported,
    kClusterProbeUnsupported,
    // Pipeline failure codes (pr_open_error), docs/runbook.md.
    kCloneFailed,
    kBranchExists,
    kConfigPathInvalid,
    kParamsFileNotFound,
    kParamNotInTemplate,
    kNoChanges,
    kPushFailed,
    kGithubApiFailed,
    kLockTimeout,
    kJobTimeout,
};

[[nodiscard]] std::string_view error_code_name(ErrorCode code) noexcept;
[[nodiscard]] int error_http_status(ErrorCode code) noexcept;
[[nodiscard]] bool error_retryable(ErrorCode code) noexcept;

class Error : public std::runtime_error {
  public:
    Error(ErrorCode code, const std::string &message) : std::runtime_error(message), code_(code) {}

    [[nodiscard]] ErrorCode code() const noexcept { return code_; }

  private:
    ErrorCode code_;
};

// A failed PostgreSQL statement; the SQLSTATE decides the API error.
class DbError : public Error {
  public:
    DbError(std::string sqlstate, const std::string &message);

    [[nodiscard]] const std::string &sqlstate() const noexcept { return sqlstate_; }

  private:
    std::string sqlstate_;
};

// SQLSTATE → ErrorCode, one table (taopq-style). Unique violations become a
// conflict whose concrete code the caller picks; connection classes become
// DATABASE_UNAVAILABLE; class 22 (data exception: a value outside its
// type's domain) is the client's input, VALIDATION_ERROR; the rest is
// INTERNAL_ERROR.
enum class SqlStateClass {
    kUniqueViolation,
    kForeignKeyViolation,
    kCheckViolation,
    kConnection,
    kQueryCanceled,
    kSerialization,
    kDataException,
    kOther,
};

[[nodiscard]] SqlStateClass classify_sqlstate(std::string_view sqlstate) noexcept;

// strerror() of e, thread-safely (strerror itself is not: the worker's
// threads call this).
[[nodiscard]] std::string errno_text(int e);

}  // namespace relyloop
