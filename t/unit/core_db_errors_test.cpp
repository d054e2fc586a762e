#include <gtest/gtest.h>
#include <libpq-fe.h>

#include "api/handler.hpp"
#include "common/raii.hpp"

using namespace relyloop;
using namespace relyloop::core;
using E = Endpoint;
using C = ErrorCode;

TEST(DbErrorMap, UniqueViolationOfTheNameIsTheEndpointsConflict) {
    EXPECT_EQ(db_error_code(E::kConfigRepoCreate, "23505", "config_repos_name_key"),
              C::kConfigRepoNameTaken);
    EXPECT_EQ(db_error_code(E::kClusterCreate, "23505", "clusters_name_key"), C::kClusterNameTaken);
    EXPECT_EQ(db_error_code(E::kTemplateCreate, "23505", "query_templates_name_version_key"),
              C::kTemplateNameTaken);
    // A RelyLoop database may name the constraint differently.
    EXPECT_EQ(db_error_code(E::kConfigRepoCreate, "23505", "uq_config_repos_name"),
              C::kConfigRepoNameTaken);
}

TEST(DbErrorMap, PrimaryKeyOrOtherEndpointsAreInternal) {
    EXPECT_EQ(db_error_code(E::kConfigRepoCreate, "23505", "config_repos_pkey"), C::kInternalError);
    EXPECT_EQ(db_error_code(E::kProposalReject, "23505", "anything"), C::kInternalError);
    EXPECT_EQ(db_error_code(E::kConfigRepoGet, "23505", "config_repos_name_key"),
              C::kInternalError);
}

TEST(DbErrorMap, ForeignKeyRacesAreNotFoundOfTheReferencedRow) {
    EXPECT_EQ(db_error_code(E::kClusterCreate, "23503", "clusters_config_repo_id_fkey"),
              C::kConfigRepoNotFound);
    EXPECT_EQ(db_error_code(E::kClusterPatch, "23503", "clusters_config_repo_id_fkey"),
              C::kConfigRepoNotFound);
    EXPECT_EQ(db_error_code(E::kTemplateCreate, "23503", "query_templates_parent_id_fkey"),
              C::kTemplateNotFound);
    EXPECT_EQ(db_error_code(E::kProposalCreate, "23503", "proposals_cluster_id_fkey"),
              C::kClusterNotFound);
    EXPECT_EQ(db_error_code(E::kProposalCreate, "23503", "proposals_template_id_fkey"),
              C::kTemplateNotFound);
    EXPECT_EQ(db_error_code(E::kSeed, "23503", "studies_cluster_id_fkey"), C::kClusterNotFound);
    EXPECT_EQ(db_error_code(E::kSeed, "23503", "studies_query_set_id_fkey"), C::kResourceNotFound);
    EXPECT_EQ(db_error_code(E::kSeed, "23503", "studies_judgment_list_id_fkey"),
              C::kResourceNotFound);
    EXPECT_EQ(db_error_code(E::kSeed, "23503", "mystery"), C::kInternalError);
    EXPECT_EQ(db_error_code(E::kProposalReject, "23503", "proposals_cluster_id_fkey"),
              C::kInternalError);
}

TEST(DbErrorMap, ConnectionTroubleIsUnavailable) {
    for (const char *s : {"08006", "08003", "57P01", "57P03", "53300", "57014", "40001", "40P01"}) {
        EXPECT_EQ(db_error_code(E::kConfigRepoGet, s, ""), C::kDatabaseUnavailable) << s;
        EXPECT_EQ(db_error_code(E::kConfigRepoCreate, s, ""), C::kDatabaseUnavailable) << s;
    }
}

TEST(DbErrorMap, DataExceptionIsTheClientsInput) {
    // class 22: a value outside its type's domain → 422, never 500
    for (const char *s : {"22009", "22008", "22007", "22003", "22P02", "22021", "22P05", "22001"}) {
        EXPECT_EQ(classify_sqlstate(s), relyloop::SqlStateClass::kDataException) << s;
        EXPECT_EQ(db_error_code(E::kProposalList, s, ""), C::kValidationError) << s;
        EXPECT_EQ(db_error_code(E::kConfigRepoCreate, s, ""), C::kValidationError) << s;
        EXPECT_EQ(relyloop::error_http_status(db_error_code(E::kStudyList, s, "")), 422) << s;
    }
    for (const char *s : {"2200", "220000", "02000", "42P01"}) {
        EXPECT_NE(classify_sqlstate(s), relyloop::SqlStateClass::kDataException) << s;
    }
}

TEST(DbErrorMap, EverythingElseIsInternal) {
    for (const char *s : {"42P01", "42703", "23514", "XX000", ""}) {
        EXPECT_EQ(db_error_code(E::kProposalList, s, ""), C::kInternalError) << s;
    }
}

TEST(DbErrorMap, ShimFailuresAreUnavailable) {
    for (auto k : {DbFailure::Kind::kUnavailable, DbFailure::Kind::kOverloaded,
                   DbFailure::Kind::kTimeout, DbFailure::Kind::kAborted}) {
        DbFailure f;
        f.kind = k;
        EXPECT_EQ(db_error_code(E::kConfigRepoCreate, f), C::kDatabaseUnavailable);
    }
    DbFailure f;
    f.kind = DbFailure::Kind::kStatement;
    f.sqlstate = "23505";
    f.constraint = "clusters_name_key";
    EXPECT_EQ(db_error_code(E::kClusterCreate, f), C::kClusterNameTaken);
}

TEST(DbFailureFromResult, FabricatedFatalResultHasNoSqlstate) {
    PgResult res(PQmakeEmptyPGresult(nullptr, PGRES_FATAL_ERROR));
    DbFailure f = db_failure_from_result(res.get());
    EXPECT_EQ(f.kind, DbFailure::Kind::kStatement);
    EXPECT_EQ(f.sqlstate, "");
    EXPECT_EQ(f.constraint, "");
    EXPECT_EQ(db_error_code(E::kConfigRepoCreate, f), C::kInternalError);
}
