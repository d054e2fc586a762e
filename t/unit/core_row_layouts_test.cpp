// Every statement of the core, prepared against a real PostgreSQL: the names
// and types of its result columns must be those of the row layouts the
// renderers and handlers read them by (db/statements.hpp). Two columns of a
// layout swapped in the SQL, or a layout spliced at another column, fail here.
//
// Needs RELYLOOP_TEST_PG_CONNINFO (a migrated database); t/core_row_layouts.t
// starts one and runs this binary against the own and the upstream schema.
// Without it the tests are skipped.

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <cstdlib>
#include <initializer_list>
#include <iterator>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/analytics.hpp"
#include "db/statements.hpp"

using namespace relyloop::core;
namespace analytics = relyloop::analytics;
using db::ColKind;
using db::Stmt;
namespace layout = db::layout;

namespace {

// One expected result column: PostgreSQL's name for it ("" for any) and, for
// layout columns, the kind the renderer writes it as.
struct Expect {
    std::string name;
    bool has_kind = false;
    ColKind kind = ColKind::kStr;
};
using Cols = std::vector<Expect>;

Cols named(std::initializer_list<const char *> names) {
    Cols out;
    for (const char *n : names) {
        out.push_back({n});
    }
    return out;
}

Cols of(std::span<const db::Column> cols) {
    Cols out;
    for (const db::Column &c : cols) {
        out.push_back({c.pg_name, true, c.kind});
    }
    return out;
}

// The study analytics inputs, in the order analytics::input_from_columns
// reads them (docs/analytics.md): their SQL is expressions, so PostgreSQL
// names most of them "?column?", but each has a type a swap would change.
Cols analytics_inputs() {
    const ColKind kinds[] = {
        ColKind::kStr,    // status
        ColKind::kJsonb,  // objective
        ColKind::kReal,   // best_metric
        ColKind::kBool,   // has a winner
        ColKind::kInt,    // the winner's trial number
        ColKind::kReal,   // the winner's metric
        ColKind::kJsonb,  // the winner's per-query metrics
        ColKind::kBool,   // has a baseline
        ColKind::kJsonb,  // the baseline's per-query metrics
        ColKind::kBool,   // has a runner-up
        ColKind::kJsonb,  // the runner-up's per-query metrics
        ColKind::kJsonb,  // the series (json)
        ColKind::kJsonb,  // the query texts (json)
    };
    static_assert(std::size(kinds) == analytics::kAnalyticsInputCols);
    Cols out;
    for (ColKind k : kinds) {
        out.push_back({"", true, k});
    }
    return out;
}

Cols operator+(Cols a, const Cols &b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// The result columns of every statement, in order.
std::map<Stmt, Cols> expected() {
    const Cols config_repo = of(layout::config_repo::kColumns);
    const Cols cluster = of(layout::cluster::kColumns);
    const Cols tmpl = of(layout::query_template::kColumns);
    const Cols study = of(layout::study::kColumns) + analytics_inputs();
    const Cols trial = of(layout::trial::kColumns);
    const Cols digest = of(layout::digest::kColumns);
    const Cols summary = of(layout::proposal_summary::kColumns);
    const Cols detail =
        summary + of(layout::proposal_detail::kColumns) + digest + of(layout::pr_job::kColumns);
    const Cols total = named({"total"});
    const Cols sorted = named({"total", "case", "case", "case"});
    const Cols trials = named({"study_found", "total"}) + trial;
    return {
        {Stmt::kHealthPing, named({"?column?"})},
        {Stmt::kConfigRepoGet, config_repo + summary},
        {Stmt::kConfigRepoList, total + config_repo},
        {Stmt::kConfigRepoInsert, config_repo},
        {Stmt::kClusterGet, cluster},
        {Stmt::kClusterList, total + cluster},
        {Stmt::kClusterListSorted, sorted + cluster},
        {Stmt::kClusterInsert, named({"repo_ok"}) + cluster},
        {Stmt::kClusterDelete, named({"id"})},
        {Stmt::kClusterPatch, named({"cluster_ok", "repo_ok"}) + cluster},
        {Stmt::kTemplateGet, tmpl},
        {Stmt::kTemplateList, total + tmpl},
        {Stmt::kTemplateListSorted, sorted + tmpl},
        {Stmt::kTemplateInsert, named({"parent_ok"}) + tmpl},
        {Stmt::kStudyGet, study},
        {Stmt::kStudyList, total + study},
        {Stmt::kStudyListSorted, sorted + study},
        {Stmt::kStudyCancel, named({"prior_status"}) + study},
        {Stmt::kDigestGet, named({"study_found", "status"}) + digest},
        {Stmt::kTrialListMetricDesc, trials},
        {Stmt::kTrialListMetricAsc, trials},
        {Stmt::kTrialListNumberAsc, trials},
        {Stmt::kTrialListEndedDesc, trials},
        {Stmt::kTrialListEndedAsc, trials},
        {Stmt::kProposalGet, detail},
        {Stmt::kProposalList, total + summary},
        {Stmt::kProposalListSorted, sorted + summary},
        {Stmt::kProposalInsert, named({"cluster_ok", "template_ok"}) + detail},
        {Stmt::kProposalReject, named({"prior_status"}) + detail},
        {Stmt::kProposalReinstate, named({"prior_status"}) + detail},
        {Stmt::kOpenPrPreflight, named({"status", "id", "config_repo_id", "id", "auth_ref"})},
        {Stmt::kSeedCompleted,
         named({"cluster_ok", "template_ok", "qs_ok", "jl_ok", "id", "id", "id", "count"})},
        {Stmt::kWebhookCandidates, named({"id", "webhook_secret_ref"})},
        {Stmt::kWebhookApply, named({"replayed", "stale", "action", "proposal_id", "pointers"})},
        {Stmt::kConfigRepoRegisterWebhook, named({"exists", "exists", "count"})},
    };
}

// Whether a column of type `oid` can be written as `kind` (built-in types;
// anything else, e.g. an enum type, only as a string).
bool type_fits(Oid oid, ColKind kind) {
    switch (kind) {
        case ColKind::kStr:
            return oid == 25 || oid == 1043 || oid == 1042 || oid == 19 || oid >= 16384;
        case ColKind::kTs:
            return oid == 1184;
        case ColKind::kInt:
            return oid == 20 || oid == 21 || oid == 23;
        case ColKind::kReal:
            return oid == 700 || oid == 701 || oid == 1700;
        case ColKind::kJsonb:
        case ColKind::kFollowups:
            return oid == 3802 || oid == 114;
        case ColKind::kBool:
            return oid == 16;
    }
    return false;
}

struct PgConnDeleter {
    void operator()(PGconn *c) const { PQfinish(c); }
};
struct PgResultDeleter {
    void operator()(PGresult *r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;

class RowLayoutsInDb : public ::testing::Test {
  protected:
    void SetUp() override {
        const char *conninfo = std::getenv("RELYLOOP_TEST_PG_CONNINFO");
        if (conninfo == nullptr || *conninfo == '\0') {
            GTEST_SKIP() << "RELYLOOP_TEST_PG_CONNINFO not set (t/core_row_layouts.t sets it)";
        }
        conn_.reset(PQconnectdb(conninfo));
        ASSERT_EQ(PQstatus(conn_.get()), CONNECTION_OK) << PQerrorMessage(conn_.get());
    }

    // The description of `s` prepared untyped, as the shim prepares it.
    ResultPtr describe(const rl_statement_t &s) {
        ResultPtr prep(PQprepare(conn_.get(), s.name, s.sql, 0, nullptr));
        EXPECT_EQ(PQresultStatus(prep.get()), PGRES_COMMAND_OK)
            << s.name << ": " << PQerrorMessage(conn_.get());
        ResultPtr desc(PQdescribePrepared(conn_.get(), s.name));
        EXPECT_EQ(PQresultStatus(desc.get()), PGRES_COMMAND_OK)
            << s.name << ": " << PQerrorMessage(conn_.get());
        return desc;
    }

    std::unique_ptr<PGconn, PgConnDeleter> conn_;
};

}  // namespace

TEST(RowLayouts, EveryStatementIsListed) {
    std::map<Stmt, Cols> want = expected();
    EXPECT_EQ(want.size(), static_cast<size_t>(Stmt::kCount));
}

TEST_F(RowLayoutsInDb, ResultColumnsAreTheLayoutsColumns) {
    for (const auto &[stmt, cols] : expected()) {
        const rl_statement_t &s = db::statement(stmt);
        ResultPtr desc = describe(s);
        if (PQresultStatus(desc.get()) != PGRES_COMMAND_OK) {
            continue;
        }
        EXPECT_EQ(PQnparams(desc.get()), s.nparams) << s.name;
        ASSERT_EQ(PQnfields(desc.get()), static_cast<int>(cols.size())) << s.name;
        for (int i = 0; i < static_cast<int>(cols.size()); i++) {
            const Expect &e = cols[static_cast<size_t>(i)];
            if (!e.name.empty()) {
                EXPECT_EQ(PQfname(desc.get(), i), e.name) << s.name << " column " << i;
            }
            if (e.has_kind) {
                EXPECT_TRUE(type_fits(PQftype(desc.get(), i), e.kind))
                    << s.name << " column " << i << " (" << e.name << ") has type oid "
                    << PQftype(desc.get(), i);
            }
        }
    }
}

TEST(RowLayouts, CountsAreTheLayoutsSizes) {
    EXPECT_EQ(db::kStudyCols, layout::study::kCount + analytics::kAnalyticsInputCols);
    EXPECT_EQ(db::kProposalDetailCols, layout::proposal_summary::kCount +
                                           layout::proposal_detail::kCount +
                                           layout::digest::kCount + layout::pr_job::kCount);
    std::map<Stmt, Cols> want = expected();
    EXPECT_EQ(want[Stmt::kProposalGet].size(), static_cast<size_t>(db::kProposalDetailCols));
    EXPECT_EQ(want[Stmt::kStudyGet].size(), static_cast<size_t>(db::kStudyCols));
}
