#include <gtest/gtest.h>

#include <cctype>
#include <set>
#include <string>

#include "db/statements.hpp"
#include "relyloop/core.h"

using namespace relyloop::core;

namespace {

// The parameter numbers a statement text uses ($1, $2, ...), ignoring
// anything inside single-quoted literals.
std::set<int> placeholders(const std::string &sql) {
    std::set<int> out;
    bool quoted = false;
    for (size_t i = 0; i < sql.size(); i++) {
        char c = sql[i];
        if (c == '\'') {
            quoted = !quoted;
            continue;
        }
        if (quoted || c != '$' || i + 1 >= sql.size() ||
            !std::isdigit(static_cast<unsigned char>(sql[i + 1]))) {
            continue;
        }
        int n = 0;
        size_t j = i + 1;
        while (j < sql.size() && std::isdigit(static_cast<unsigned char>(sql[j]))) {
            n = n * 10 + (sql[j] - '0');
            j++;
        }
        out.insert(n);
        // Every parameter is cast explicitly (the shim prepares untyped).
        EXPECT_TRUE(j + 1 < sql.size() && sql[j] == ':' && sql[j + 1] == ':')
            << "$" << n << " without a cast in: " << sql.substr(i, 40);
    }
    return out;
}

}  // namespace

TEST(Statements, OneEntryPerStmtWithUniquePrefixedNames) {
    auto table = db::statements();
    ASSERT_EQ(table.size(), static_cast<size_t>(db::Stmt::kCount));
    std::set<std::string> names;
    for (const rl_statement_t &s : table) {
        std::string name = s.name;
        EXPECT_TRUE(name.starts_with("rl_")) << name;
        EXPECT_TRUE(names.insert(name).second) << name;
        EXPECT_LT(name.size(), 64u) << name;  // NAMEDATALEN
    }
}

TEST(Statements, ParameterCountsMatchTheText) {
    for (const rl_statement_t &s : db::statements()) {
        std::set<int> used = placeholders(s.sql);
        EXPECT_EQ(static_cast<int>(used.size()), s.nparams) << s.name;
        int expect = 1;
        for (int n : used) {
            EXPECT_EQ(n, expect++) << s.name << ": parameters must be $1..$n without gaps";
        }
    }
}

TEST(Statements, EachIsASingleStatement) {
    for (const rl_statement_t &s : db::statements()) {
        std::string sql = s.sql;
        EXPECT_EQ(sql.find(';'), std::string::npos) << s.name;
        EXPECT_EQ(sql.find("BEGIN"), std::string::npos) << s.name;
        EXPECT_EQ(sql.find("COMMIT"), std::string::npos) << s.name;
        EXPECT_EQ(sql.find("set_config"), std::string::npos) << s.name;
    }
}

TEST(Statements, CApiReturnsTheSameTable) {
    const rl_statement_t *table = nullptr;
    size_t n = rl_core_statements(&table);
    EXPECT_EQ(n, db::statements().size());
    EXPECT_EQ(table, db::statements().data());
    EXPECT_EQ(rl_core_statements(nullptr), n);
    EXPECT_STREQ(db::statement(db::Stmt::kConfigRepoGet).name, "rl_config_repo_get");
    EXPECT_STREQ(db::statement(db::Stmt::kSeedCompleted).name, "rl_seed_completed");
}

TEST(Statements, SoftDeletedClustersAreFilteredWhereverClustersAreRead) {
    for (db::Stmt s :
         {db::Stmt::kClusterGet, db::Stmt::kClusterList, db::Stmt::kClusterPatch,
          db::Stmt::kProposalInsert, db::Stmt::kOpenPrPreflight, db::Stmt::kSeedCompleted}) {
        std::string sql = db::statement(s).sql;
        EXPECT_NE(sql.find("deleted_at IS NULL"), std::string::npos) << db::statement(s).name;
    }
}
