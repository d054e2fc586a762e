#pragma once

// The fixed SQL statements of the core (rl_core_statements). Each one is a
// single self-contained statement with text parameters cast in SQL; writes
// that touch several rows are one statement with data-modifying CTEs, so they
// are atomic without a transaction block. Column layouts are documented next
// to each statement and read by index in the handlers.

#include <span>

#include "relyloop/core.h"

namespace relyloop::core::db {

enum class Stmt : int {
    kHealthPing,
    kConfigRepoGet,
    kConfigRepoList,
    kConfigRepoInsert,
    kClusterGet,
    kClusterList,
    kClusterListSorted,
    kClusterInsert,
    kClusterDelete,
    kClusterPatch,
    kTemplateGet,
    kTemplateList,
    kTemplateListSorted,
    kTemplateInsert,
    kStudyGet,
    kStudyList,
    kStudyListSorted,
    kStudyCancel,
    kDigestGet,
    kTrialListMetricDesc,
    kTrialListMetricAsc,
    kTrialListNumberAsc,
    kTrialListEndedDesc,
    kTrialListEndedAsc,
    kProposalGet,
    kProposalList,
    kProposalListSorted,
    kProposalInsert,
    kProposalReject,
    kProposalReinstate,
    kOpenPrPreflight,
    kSeedCompleted,
    kWebhookCandidates,
    kWebhookApply,
    kConfigRepoRegisterWebhook,
    kCount,
};

[[nodiscard]] std::span<const rl_statement_t> statements() noexcept;
[[nodiscard]] const rl_statement_t &statement(Stmt s) noexcept;

// Column counts of the shared layouts (see statements.cpp).
inline constexpr int kConfigRepoCols = 10;
inline constexpr int kClusterCols = 13;
inline constexpr int kTemplateCols = 8;
inline constexpr int kStudyCols = 40;  // see RL_STUDY_COLS (27) + analytics inputs (13)
inline constexpr int kStudyAnalyticsCol = 27;
inline constexpr int kTrialCols = 12;
inline constexpr int kDigestCols = 8;
inline constexpr int kProposalSummaryCols = 16;
inline constexpr int kProposalDetailCols = 47;

}  // namespace relyloop::core::db
