#include <gtest/gtest.h>

#include "common/error.hpp"
#include "common/lock_key.hpp"
#include "common/redact.hpp"
#include "common/timefmt.hpp"
#include "common/uuid.hpp"
#include "common/validate.hpp"

using namespace relyloop;

TEST(LockKey, MatchesRelyLoopTestVectors) {
    EXPECT_EQ(config_repo_lock_key("00000000-0000-0000-0000-000000000000"), -8245262552531926961LL);
    EXPECT_EQ(config_repo_lock_key("0196c0de-0000-7000-8000-000000000001"), -7299642929716718847LL);
}

TEST(LockKey, DiffersPerRepo) { EXPECT_NE(config_repo_lock_key("a"), config_repo_lock_key("b")); }

TEST(UuidV7, HasVersionAndVariantAndIsOrderedByTime) {
    std::string a = uuid_v7();
    ASSERT_TRUE(is_uuid(a));
    EXPECT_EQ(a[14], '7');
    EXPECT_TRUE(a[19] == '8' || a[19] == '9' || a[19] == 'a' || a[19] == 'b');
    std::string b = uuid_v7();
    EXPECT_NE(a, b);
    EXPECT_LE(a.substr(0, 13), b.substr(0, 13));
}

TEST(UuidV7, IsUuidRejectsOtherShapes) {
    EXPECT_FALSE(is_uuid("not-a-uuid"));
    EXPECT_FALSE(is_uuid("0196c0de-0000-7000-8000-00000000000g"));
    EXPECT_TRUE(is_uuid("0196C0DE-0000-7000-8000-000000000001"));
}

TEST(TimeFormat, PgTextBecomesRfc3339WithMicroseconds) {
    EXPECT_EQ(pg_timestamp_to_rfc3339("2026-05-11 20:13:43.123456+00"),
              "2026-05-11T20:13:43.123456+00:00");
    EXPECT_EQ(pg_timestamp_to_rfc3339("2026-05-11 20:13:43.1+00"),
              "2026-05-11T20:13:43.100000+00:00");
    EXPECT_EQ(pg_timestamp_to_rfc3339("2026-05-11 20:13:43+00"),
              "2026-05-11T20:13:43.000000+00:00");
    EXPECT_EQ(pg_timestamp_to_rfc3339("2026-05-11 20:13:43+05:30"),
              "2026-05-11T20:13:43.000000+05:30");
    EXPECT_EQ(pg_timestamp_to_rfc3339("garbage"), "garbage");
}

TEST(TimeFormat, ParsesClientTimestamps) {
    EXPECT_EQ(parse_rfc3339("2026-05-11T20:13:43.123456+00:00").value(),
              "2026-05-11T20:13:43.123456+00:00");
    EXPECT_EQ(parse_rfc3339("2026-05-11T20:13:43Z").value(), "2026-05-11T20:13:43+00:00");
    // A literal '+' that form decoding turned into a space; normalised to UTC.
    EXPECT_EQ(parse_rfc3339("2026-05-11T20:13:43.5 02:00").value(), "2026-05-11T18:13:43.5+00:00");
    EXPECT_FALSE(parse_rfc3339("2026-02-30T00:00:00Z"));
    EXPECT_FALSE(parse_rfc3339("2026-13-01T00:00:00Z"));
    EXPECT_FALSE(parse_rfc3339("2026-05-11T24:00:00Z"));
    EXPECT_FALSE(parse_rfc3339("2026-05-11"));
    EXPECT_FALSE(parse_rfc3339("99999-05-11T00:00:00Z"));
    EXPECT_FALSE(parse_rfc3339("2026-05-11T20:13:43.Z"));
    EXPECT_TRUE(parse_rfc3339("2024-02-29T00:00:00Z"));
}

// Only values PostgreSQL's timestamptz takes (docs/api.md, "Timestamps"):
// offsets up to ±15:59, the instant in years 1..9999 once in UTC.
TEST(TimeFormat, ClientTimestampsStayInPostgresDomain) {
    EXPECT_EQ(parse_rfc3339("2026-01-01T00:00:00+15:59").value(), "2025-12-31T08:01:00+00:00");
    EXPECT_EQ(parse_rfc3339("2026-01-01T00:00:00-15:59").value(), "2026-01-01T15:59:00+00:00");
    EXPECT_FALSE(parse_rfc3339("2026-01-01T00:00:00+16:00"));
    EXPECT_FALSE(parse_rfc3339("2026-01-01T00:00:00-16:00"));
    EXPECT_FALSE(parse_rfc3339("2026-01-01T00:00:00+23:59"));
    EXPECT_FALSE(parse_rfc3339("2026-01-01T00:00:00+15:60"));
    EXPECT_FALSE(parse_rfc3339("0000-01-01T00:00:00Z"));
    EXPECT_EQ(parse_rfc3339("0001-01-01T00:00:00Z").value(), "0001-01-01T00:00:00+00:00");
    EXPECT_EQ(parse_rfc3339("9999-12-31T23:59:59.999999Z").value(),
              "9999-12-31T23:59:59.999999+00:00");
    // the offset moves the instant out of years 1..9999
    EXPECT_FALSE(parse_rfc3339("0001-01-01T00:00:00+00:01"));
    EXPECT_FALSE(parse_rfc3339("9999-12-31T23:59:00-00:01"));
    EXPECT_EQ(parse_rfc3339("0001-01-01T00:00:00-00:01").value(), "0001-01-01T00:01:00+00:00");
    // day, month, year and leap-day carries
    EXPECT_EQ(parse_rfc3339("2024-03-01T01:00:00+02:00").value(), "2024-02-29T23:00:00+00:00");
    EXPECT_EQ(parse_rfc3339("2023-12-31T23:30:00-00:45").value(), "2024-01-01T00:15:00+00:00");
    EXPECT_EQ(parse_rfc3339("2026-05-11T20:13:43.123456789-05:30").value(),
              "2026-05-12T01:43:43.123456789+00:00");
    EXPECT_FALSE(parse_rfc3339("2026-05-11T20:13:43.1234567890Z"));
    EXPECT_FALSE(parse_rfc3339("2026-05-11T20:13:60Z"));
}

TEST(Redact, GithubTokensAndUrlPasswords) {
    EXPECT_EQ(redact("token github_pat_ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123 end"),
              "token [REDACTED-GH-TOKEN] end");
    EXPECT_EQ(redact("ghp_" + std::string(36, 'a')), "[REDACTED-GH-TOKEN]");
    EXPECT_EQ(redact("ghp_short"), "ghp_short");
    EXPECT_EQ(redact("clone https://x-access-token:s3cr3t@github.com/o/r failed"),
              "clone https://x-access-token:[REDACTED-URL-PASSWORD]@github.com/o/r failed");
    EXPECT_EQ(redact("plain text"), "plain text");
}

TEST(Redact, LiteralSecretIsRemovedToo) {
    EXPECT_EQ(redact("auth failed for zz-token-zz here", "zz-token-zz"),
              "auth failed for [REDACTED] here");
    EXPECT_EQ(redact("x", ""), "x");
}

TEST(Validate, ConfigRepoNamesAndBranches) {
    EXPECT_TRUE(valid_config_repo_name("search-config"));
    EXPECT_FALSE(valid_config_repo_name("-x"));
    EXPECT_FALSE(valid_config_repo_name("Upper"));
    EXPECT_FALSE(valid_config_repo_name(std::string(129, 'a')));
    EXPECT_TRUE(valid_branch_name("main"));
    EXPECT_TRUE(valid_branch_name("release/2026.05"));
    EXPECT_FALSE(valid_branch_name("-main"));
    EXPECT_FALSE(valid_branch_name("a..b"));
    EXPECT_FALSE(valid_branch_name("a//b"));
    EXPECT_FALSE(valid_branch_name("a/.hidden"));
    EXPECT_FALSE(valid_branch_name("x.lock"));
    EXPECT_FALSE(valid_branch_name("x/"));
    EXPECT_FALSE(valid_branch_name("has space"));
}

TEST(Validate, ConfigPathsStayRelative) {
    EXPECT_TRUE(valid_config_path("configs/search"));
    EXPECT_TRUE(valid_config_path("."));
    EXPECT_FALSE(valid_config_path("/etc"));
    EXPECT_FALSE(valid_config_path("a/../../b"));
    EXPECT_FALSE(valid_config_path(".."));
    EXPECT_FALSE(valid_config_path("a b"));
    EXPECT_FALSE(valid_config_path(""));
}

TEST(Validate, WebUrls) {
    // what nginx's relyloop_github_web_url and the worker's URL flags accept, trailing '/' dropped
    EXPECT_EQ(normalize_web_url("https://github.com"), "https://github.com");
    EXPECT_EQ(normalize_web_url("https://ghe.example.com/"), "https://ghe.example.com");
    EXPECT_EQ(normalize_web_url("http://127.0.0.1:8081/api/v3//"), "http://127.0.0.1:8081/api/v3");
    EXPECT_EQ(normalize_web_url("https://[::1]:8443/ghe/"), "https://[::1]:8443/ghe");
    EXPECT_EQ(normalize_web_url("https://[fe80::1]"), "https://[fe80::1]");
    EXPECT_EQ(normalize_web_url("http://h:65535"), "http://h:65535");
    EXPECT_EQ(normalize_web_url("http://git-hub.example./x"), "http://git-hub.example./x");
    // what they refuse
    for (const char *bad : {"",
                            "ftp://github.com",
                            "github.com",
                            "HTTPS://github.com",
                            "https://",
                            "https:///",
                            "http:///x",
                            "https://user:pw@github.com",
                            "https://user@github.com",
                            "https://git_hub.example.com",
                            "https://.github.com",
                            "https://-github.com",
                            "https://gith ub.com",
                            "https://github.com:",
                            "https://github.com:0",
                            "https://github.com:99999",
                            "https://github.com:123456",
                            "https://github.com:8x",
                            "https://github.com:1:2",
                            "https://github.com?x=1",
                            "https://github.com/a?x=1",
                            "https://github.com/a#f",
                            "https://github.com/a@b",
                            "https://github.com/a\\b",
                            "https://github.com/a b",
                            "https://github.com/\x7f",
                            "https://github.com\\@evil",
                            "https://[::1",
                            "https://[]",
                            "https://[::g]",
                            "https://[::1]x",
                            "https://[::1]:",
                            "https://[::1]:0"}) {
        EXPECT_FALSE(normalize_web_url(bad)) << bad;
    }
}

TEST(Validate, RepoUrls) {
    auto c = parse_repo_url("https://github.com/acme/search-config.git", "https://github.com");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->owner, "acme");
    EXPECT_EQ(c->repo, "search-config");
    EXPECT_TRUE(parse_repo_url("https://ghe.example.com/a/b", "https://ghe.example.com/"));
    EXPECT_FALSE(parse_repo_url("https://gitlab.com/a/b", "https://github.com"));
    EXPECT_FALSE(parse_repo_url("https://bitbucket.org/a/b", "https://github.com"));
    EXPECT_FALSE(parse_repo_url("git@github.com:a/b.git", "https://github.com"));
    EXPECT_FALSE(parse_repo_url("http://github.com/a/b", "https://github.com"));
    EXPECT_FALSE(parse_repo_url("https://github.com/a/b/c", "https://github.com"));
    EXPECT_FALSE(parse_repo_url("https://github.com.evil.io/a/b", "https://github.com"));
    EXPECT_FALSE(parse_repo_url("https://github.com/a", "https://github.com"));
    EXPECT_FALSE(parse_repo_url("https://github.com/../b", "https://github.com"));
}

TEST(SqlState, UniqueViolationIsConflictAndConnectionIsUnavailable) {
    EXPECT_EQ(classify_sqlstate("23505"), SqlStateClass::kUniqueViolation);
    EXPECT_EQ(classify_sqlstate("08006"), SqlStateClass::kConnection);
    EXPECT_EQ(classify_sqlstate("57P01"), SqlStateClass::kConnection);
    EXPECT_EQ(classify_sqlstate("42P01"), SqlStateClass::kOther);
    EXPECT_EQ(error_http_status(ErrorCode::kConfigRepoNameTaken), 409);
    EXPECT_TRUE(error_retryable(ErrorCode::kDatabaseUnavailable));
    EXPECT_FALSE(error_retryable(ErrorCode::kProposalNotFound));
}
