#pragma once

// Study analytics shared by the core (study detail `confidence` and
// `convergence`, the list's `convergence_verdict`) and the worker (the PR
// body's Confidence lines). Pure functions: the callers read the inputs in
// one statement (kAnalyticsInputCols below) and pass them in. The rules are
// in docs/analytics.md. The numpy-compatible statistics they rest on are in
// common/analytics_numpy.hpp, the PR body lines in analytics_pr_lines.cpp.

#include <jansson.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/analytics_numpy.hpp"
#include "common/raii.hpp"

namespace relyloop::analytics {

// --- inputs --------------------------------------------------------------

struct SeriesPoint {
    long long number = 0;  // optuna_trial_number
    double metric = 0;     // primary_metric
};

struct StudyInput {
    std::string status;
    Json objective;                     // any JSON, or empty when NULL
    std::optional<double> best_metric;  // studies.best_metric
    bool has_winner = false;            // best_trial_id names a trial of the study
    std::optional<long long> winner_number;
    std::optional<double> winner_metric;  // its primary_metric
    Json winner_pqm;                      // per_query_metrics (object), empty when NULL
    bool has_baseline = false;
    Json baseline_pqm;
    bool has_runner_up = false;
    Json runner_up_pqm;
    // Complete, non-baseline trials with a non-NULL metric, by number.
    std::vector<SeriesPoint> series;
    std::unordered_map<std::string, std::string> query_texts;  // queries(id → query_text)
};

// The SELECT-list of the analytics inputs for a study aliased `s` (one
// statement, so one snapshot), 13 columns in this order:
//   0 status, 1 objective, 2 best_metric,
//   3 winner found (bool), 4 winner number, 5 winner metric, 6 winner pqm,
//   7 baseline found, 8 baseline pqm, 9 runner-up found, 10 runner-up pqm,
//   11 series [[number, metric], …] (json), 12 queries {id: text} (json)
// text parameters only; trials of other studies are never picked up.
#define RL_ANALYTICS_INPUT_COLS                                                            \
    "s.status, s.objective, s.best_metric, "                                               \
    "aw.id IS NOT NULL, aw.optuna_trial_number, aw.primary_metric, aw.per_query_metrics, " \
    "ab.id IS NOT NULL, ab.per_query_metrics, ar.id IS NOT NULL, ar.per_query_metrics, "   \
    "(SELECT coalesce(json_agg(json_build_array(x.optuna_trial_number, x.primary_metric) " \
    "ORDER BY x.optuna_trial_number, x.id), '[]') FROM trials x WHERE x.study_id = s.id "  \
    "AND x.status = 'complete' AND NOT x.is_baseline AND x.primary_metric IS NOT NULL), "  \
    "(SELECT coalesce(json_object_agg(q.id, q.query_text), '{}') FROM queries q "          \
    "WHERE jsonb_typeof(aw.per_query_metrics) = 'object' AND q.id IN "                     \
    "(SELECT jsonb_object_keys(aw.per_query_metrics)))"

// The joins the columns need (after `FROM studies s`).
#define RL_ANALYTICS_INPUT_JOINS                                                          \
    " LEFT JOIN trials aw ON aw.id = s.best_trial_id AND aw.study_id = s.id"              \
    " LEFT JOIN trials ab ON ab.id = s.baseline_trial_id AND ab.study_id = s.id"          \
    " LEFT JOIN LATERAL (SELECT r.id, r.per_query_metrics FROM trials r"                  \
    " WHERE r.study_id = s.id AND r.status = 'complete' AND NOT r.is_baseline"            \
    " AND r.id IS DISTINCT FROM s.best_trial_id"                                          \
    " ORDER BY r.primary_metric DESC NULLS LAST, r.optuna_trial_number, r.id LIMIT 1) ar" \
    " ON true "

// The same 13 columns with the series only (enough for the convergence
// verdict of a list row; no joins needed).
#define RL_ANALYTICS_SERIES_ONLY_COLS                                                      \
    "s.status, s.objective, s.best_metric, false, NULL::int, NULL::float8, NULL::jsonb, "  \
    "false, NULL::jsonb, false, NULL::jsonb, "                                             \
    "(SELECT coalesce(json_agg(json_build_array(x.optuna_trial_number, x.primary_metric) " \
    "ORDER BY x.optuna_trial_number, x.id), '[]') FROM trials x WHERE x.study_id = s.id "  \
    "AND x.status = 'complete' AND NOT x.is_baseline AND x.primary_metric IS NOT NULL), "  \
    "NULL::json"

inline constexpr int kAnalyticsInputCols = 13;

// Builds a StudyInput from the 13 columns as text (nullopt = SQL NULL).
// Never throws on odd data: unreadable JSON counts as NULL.
[[nodiscard]] StudyInput input_from_columns(std::span<const std::optional<std::string_view>> cols);

// --- results -------------------------------------------------------------

// §"Confidence" of docs/analytics.md; an empty Json means null.
[[nodiscard]] Json confidence(const StudyInput &in);

// §"Convergence verdict"; empty means null. *invalid_direction is set when
// objective.direction is present and neither maximize nor minimize.
[[nodiscard]] Json convergence(const StudyInput &in, bool *invalid_direction = nullptr);

// True when the objective (JSON text, nullopt = NULL) has a `direction` the
// verdict cannot use (present, not null, neither maximize nor minimize).
[[nodiscard]] bool direction_unusable(std::optional<std::string_view> objective);

// The PR body's Confidence lines for a non-null confidence object ("- …\n"
// each; empty when no field applies).
[[nodiscard]] std::string confidence_lines(const json_t *confidence);

// Python's `format(v, ".3f")`.
[[nodiscard]] std::string fixed3(double v);

}  // namespace relyloop::analytics
