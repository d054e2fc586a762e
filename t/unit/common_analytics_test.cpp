// Study analytics (src/common/analytics.*). The bootstrap vectors marked
// "numpy 1.24.2" were produced once with Debian bookworm's python3-numpy
// (1:1.24.2-1+deb12u1), by
//   m = np.random.default_rng(42).choice(v, size=(1000, n), replace=True).mean(axis=1)
//   repr(float(np.percentile(m, 2.5))), repr(float(np.percentile(m, 97.5)))
// and are hard-coded here: no test needs numpy installed.

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/analytics.hpp"
#include "common/json_writer.hpp"

using namespace relyloop;
using namespace relyloop::analytics;

namespace {

std::string dec(unsigned __int128 v) {
    std::string out;
    do {
        out.insert(out.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
        v /= 10;
    } while (v != 0);
    return out;
}

void expect_ci(const std::vector<double> &v, double low, double high) {
    Interval ci = bootstrap_ci95(v);
    EXPECT_NEAR(ci.low, low, 1e-12);
    EXPECT_NEAR(ci.high, high, 1e-12);
    // In practice the match is exact.
    EXPECT_EQ(ci.low, low);
    EXPECT_EQ(ci.high, high);
}

std::vector<double> spread(size_t n) {
    std::vector<double> v;
    for (size_t i = 0; i < n; i++) v.push_back(static_cast<double>((i * 7919) % 1000) / 1000.0);
    return v;
}

Json parse(const char *text) {
    json_error_t err;
    return Json(json_loads(text, JSON_DECODE_ANY, &err));
}

// A completed ndcg@10 study; series = metrics of trials 0, 1, … in order.
StudyInput study(std::vector<double> series, long long winner, const char *winner_pqm,
                 const char *runner_pqm = nullptr) {
    StudyInput in;
    in.status = "completed";
    in.objective = parse(R"({"metric":"ndcg","k":10,"direction":"maximize"})");
    in.has_winner = true;
    in.winner_number = winner;
    for (size_t i = 0; i < series.size(); i++) {
        in.series.push_back({static_cast<long long>(i), series[i]});
    }
    if (winner >= 0 && static_cast<size_t>(winner) < series.size()) {
        in.winner_metric = series[static_cast<size_t>(winner)];
        in.best_metric = in.winner_metric;
    }
    if (winner_pqm != nullptr) in.winner_pqm = parse(winner_pqm);
    if (runner_pqm != nullptr) {
        in.has_runner_up = true;
        in.runner_up_pqm = parse(runner_pqm);
    }
    return in;
}

std::string field(const Json &obj, const char *key) {
    return json::dump(json_object_get(obj.get(), key));
}

const char *kWinner5 = R"({"q1":{"ndcg@10":0.6},"q2":{"ndcg@10":0.5},"q3":{"ndcg@10":0.4},)"
                       R"("q4":{"ndcg@10":0.55},"q5":{"ndcg@10":0.38}})";
const char *kRunner5 = R"({"q1":{"ndcg@10":0.5},"q2":{"ndcg@10":0.5},"q3":{"ndcg@10":0.45},)"
                       R"("q4":{"ndcg@10":0.55},"q5":{"ndcg@10":0.30}})";
const std::vector<double> kSeries = {0.40, 0.42, 0.45,  0.44,  0.47,  0.46,
                                     0.48, 0.47, 0.481, 0.485, 0.487, 0.486};

}  // namespace

TEST(Pcg64, SeedSequence42MatchesNumpyState) {
    Pcg64 g(42);
    // numpy: default_rng(42).bit_generator.state
    EXPECT_EQ(dec(g.state()), "274674114334540486603088602300644985544");
    EXPECT_EQ(dec(g.inc()), "332724090758049132448979897138935081983");
    // numpy: default_rng(42).bit_generator.random_raw(2)
    EXPECT_EQ(g.next_uint64(), 14276969152011380360ULL);
    EXPECT_EQ(g.next_uint64(), 8095878257575067585ULL);
}

TEST(Pcg64, BoundedIntegersMatchNumpy) {
    // numpy: default_rng(42).integers(0, 7, size=6)
    Pcg64 g(42);
    std::vector<uint64_t> got;
    for (int i = 0; i < 6; i++) got.push_back(g.bounded(7));
    EXPECT_EQ(got, (std::vector<uint64_t>{0, 5, 4, 3, 3, 6}));
    // 32-bit draws are the halves of one 64-bit draw, low half first.
    Pcg64 a(42);
    Pcg64 b(42);
    uint64_t raw = a.next_uint64();
    EXPECT_EQ(b.next_uint32(), static_cast<uint32_t>(raw));
    EXPECT_EQ(b.next_uint32(), static_cast<uint32_t>(raw >> 32));
    EXPECT_EQ(Pcg64(1).bounded(1), 0u);
}

TEST(Bootstrap, SpecVectors) {
    expect_ci({0.1, 0.2, 0.3, 0.4, 0.5}, 0.18, 0.42000000000000004);
    expect_ci({0.61, 0.42, 0.77, 0.55, 0.38, 0.91, 0.47}, 0.46139285714285705, 0.7285714285714285);
    expect_ci({0.6, 0.5, 0.4, 0.55, 0.38}, 0.41600000000000004, 0.56);
}

TEST(Bootstrap, Numpy1242VectorsAcrossPairwiseBranches) {
    // v[i] = ((i * 7919) % 1000) / 1000: n = 9 (8-way unrolled), 130 and
    // 300 (recursive split of the pairwise sum).
    expect_ci(spread(9), 0.36966666666666664, 0.7359666666666667);
    expect_ci(spread(130), 0.45166519230769236, 0.550464423076923);
    expect_ci(spread(300), 0.46534900000000007, 0.5292948333333333);
}

TEST(Stats, SampleStddevAndPercentile) {
    // numpy 1.24.2: np.std(v, ddof=1)
    EXPECT_EQ(sample_stddev(spread(12)), 0.29601745444033084);
    EXPECT_EQ(sample_stddev(std::vector<double>{0.47, 0.481, 0.485, 0.487, 0.486}),
              0.006978538528947167);
    std::vector<double> s = {1, 2, 3, 4};
    EXPECT_DOUBLE_EQ(percentile_linear(s, 50), 2.5);
    EXPECT_DOUBLE_EQ(percentile_linear(s, 0), 1);
    EXPECT_DOUBLE_EQ(percentile_linear(s, 100), 4);
}

TEST(Confidence, SpecExampleLines) {
    StudyInput in = study(kSeries, 10, kWinner5, kRunner5);
    in.query_texts = {{"q1", "q one"}, {"q2", "q two"}, {"q3", "red shoes"}, {"q5", "q five"}};
    Json c = confidence(in);
    ASSERT_TRUE(c);
    EXPECT_EQ(confidence_lines(c.get()),
              "- ndcg@10: 0.487 (95% CI 0.416-0.560, N=5 queries)\n"
              "- Queries: 2 improved \u00b7 2 unchanged \u00b7 1 regressed (vs runner_up)\n"
              "- Queries that regressed: `red shoes` (0.450 \u2192 0.400)\n"
              "- Runner-up gap 0.001 (sharp_peak)\n"
              "- Late-trial 1\u03c3 = 0.007\n"
              "- Convergence: late_rising (best at trial 10 of 12)\n");
    EXPECT_EQ(field(c, "headline"), R"({"metric":"ndcg","value":0.487,"k":10,"n_queries":5})");
    EXPECT_EQ(
        field(c, "ci_95"),
        R"({"low":0.41600000000000004,"high":0.56,"method":"bootstrap_n1000","n_samples":5})");
    EXPECT_EQ(field(c, "convergence"),
              R"({"best_at_trial":10,"total_trials":12,"regime":"late_rising"})");
    const json_t *pq = json_object_get(c.get(), "per_query_outcomes");
    EXPECT_EQ(json::dump(json_object_get(pq, "top_improvers")),
              R"([{"query_id":"q1","query_text":"q one","winner_score":0.6,"comparison_score":0.5,)"
              R"("delta":0.09999999999999998},{"query_id":"q5","query_text":"q five",)"
              R"("winner_score":0.38,"comparison_score":0.3,"delta":0.08000000000000002}])");
    const json_t *late = json_object_get(c.get(), "late_trial_stddev");
    EXPECT_EQ(json_integer_value(json_object_get(late, "window_size")), 5);
}

TEST(Confidence, NullWithoutWinnerSeriesOrKnownMetric) {
    StudyInput in = study(kSeries, 10, kWinner5);
    in.has_winner = false;
    EXPECT_FALSE(confidence(in));
    StudyInput empty = study({}, 0, kWinner5);
    EXPECT_FALSE(confidence(empty));
    StudyInput bad = study(kSeries, 10, kWinner5);
    bad.objective = parse(R"({"metric":"ndcg"})");  // k required
    EXPECT_FALSE(confidence(bad));
    bad.objective = parse(R"({"metric":"ndcg","k":7})");
    EXPECT_FALSE(confidence(bad));
    bad.objective = parse(R"({"metric":"f1","k":10})");
    EXPECT_FALSE(confidence(bad));
    bad.objective = parse("null");
    EXPECT_FALSE(confidence(bad));
}

TEST(Confidence, MetricKeys) {
    StudyInput in =
        study({0.1, 0.2}, 1, R"({"a":{"map":0.1,"mrr":0.2,"map@5":0.3},"b":{"map":0.4}})");
    in.objective = parse(R"({"metric":"map"})");
    Json c = confidence(in);
    EXPECT_EQ(field(c, "headline"), R"({"metric":"map","value":0.2,"k":null,"n_queries":2})");
    in.objective = parse(R"({"metric":"map","k":5})");
    c = confidence(in);
    EXPECT_EQ(field(c, "headline"), R"({"metric":"map","value":0.2,"k":5,"n_queries":1})");
    in.objective = parse(R"({"metric":"mrr","k":5})");
    c = confidence(in);
    EXPECT_EQ(field(c, "headline"), R"({"metric":"mrr","value":0.2,"k":5,"n_queries":1})");
    EXPECT_EQ(confidence_lines(c.get()), "- Runner-up gap 0.100 (sharp_peak)\n");
}

TEST(Confidence, FewerThanFiveQueriesAndNoPerQueryData) {
    StudyInput in = study(kSeries, 10, R"({"q1":{"ndcg@10":0.5},"q2":{"ndcg@10":0.4}})");
    Json c = confidence(in);
    EXPECT_EQ(field(c, "ci_95"), "null");
    EXPECT_EQ(
        json_integer_value(json_object_get(json_object_get(c.get(), "headline"), "n_queries")), 2);
    EXPECT_EQ(field(c, "per_query_outcomes"), "null");  // no comparison
    StudyInput none = study(kSeries, 10, nullptr);
    c = confidence(none);
    EXPECT_EQ(field(c, "headline"), R"({"metric":"ndcg","value":0.487,"k":10,"n_queries":null})");
    EXPECT_EQ(field(c, "ci_95"), "null");
    // Value falls back to the winner's metric, then 0.0.
    none.best_metric.reset();
    none.winner_metric.reset();
    c = confidence(none);
    EXPECT_EQ(json::dump(json_object_get(json_object_get(c.get(), "headline"), "value")), "0.0");
}

TEST(Confidence, CiUsesJsonbKeyOrder) {
    // jsonb orders keys shorter first, then bytewise: q2, q10, q11, q12, q13.
    StudyInput a = study(kSeries, 10,
                         R"({"q10":{"ndcg@10":0.1},"q11":{"ndcg@10":0.2},"q12":{"ndcg@10":0.3},)"
                         R"("q13":{"ndcg@10":0.4},"q2":{"ndcg@10":0.5}})");
    StudyInput b = study(kSeries, 10,
                         R"({"q2":{"ndcg@10":0.5},"q10":{"ndcg@10":0.1},"q11":{"ndcg@10":0.2},)"
                         R"("q12":{"ndcg@10":0.3},"q13":{"ndcg@10":0.4}})");
    Interval expect = bootstrap_ci95(std::vector<double>{0.5, 0.1, 0.2, 0.3, 0.4});
    for (StudyInput *in : {&a, &b}) {
        Json c = confidence(*in);
        const json_t *ci = json_object_get(c.get(), "ci_95");
        EXPECT_EQ(json_real_value(json_object_get(ci, "low")), expect.low);
        EXPECT_EQ(json_real_value(json_object_get(ci, "high")), expect.high);
    }
}

TEST(Confidence, RunnerUpGapTiesAndPlateau) {
    Json c = confidence(study({0.5, 0.5, 0.498, 0.4}, 0, nullptr));
    EXPECT_EQ(field(c, "runner_up_gap"),
              R"({"value":0.0,"classification":"sharp_peak","top10_within":0.09999999999999998,)"
              R"("runner_up_metric":0.5})");
    c = confidence(study({0.5, 0.5, 0.498, 0.497}, 1, nullptr));
    EXPECT_EQ(json_string_value(
                  json_object_get(json_object_get(c.get(), "runner_up_gap"), "classification")),
              std::string("robust_plateau"));
    c = confidence(study({0.5}, 0, nullptr));
    EXPECT_EQ(field(c, "runner_up_gap"), "null");
    EXPECT_EQ(field(c, "convergence"), "null");  // < 3
    // Only the first 10 of the sorted series count for top10_within.
    std::vector<double> s(10, 0.5);
    s.push_back(0.1);
    c = confidence(study(s, 0, nullptr));
    EXPECT_EQ(
        json::dump(json_object_get(json_object_get(c.get(), "runner_up_gap"), "top10_within")),
        "0.0");
}

TEST(Confidence, LateTrialStddevWindow) {
    EXPECT_EQ(
        field(confidence(study(std::vector<double>(9, 0.5), 0, nullptr)), "late_trial_stddev"),
        "null");
    std::vector<double> s;
    for (int i = 0; i < 30; i++) s.push_back(0.01 * i);
    Json c = confidence(study(s, 29, nullptr));
    const json_t *late = json_object_get(c.get(), "late_trial_stddev");
    EXPECT_EQ(json_integer_value(json_object_get(late, "window_size")), 6);
    EXPECT_EQ(json_integer_value(json_object_get(late, "min_window_required")), 10);
    std::vector<double> last(s.end() - 6, s.end());
    EXPECT_EQ(json_real_value(json_object_get(late, "value")), sample_stddev(last));
}

TEST(Confidence, ConvergenceRegimes) {
    // Winner at 2 of 0..10 (≤ 0.5·10), trial 9 within 0.005 → early_held.
    std::vector<double> s = {0.1, 0.2, 0.5, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.496, 0.3};
    Json c = confidence(study(s, 2, nullptr));
    EXPECT_EQ(field(c, "convergence"),
              R"({"best_at_trial":2,"total_trials":11,"regime":"early_held"})");
    s[9] = 0.49;
    c = confidence(study(s, 2, nullptr));
    EXPECT_EQ(field(c, "convergence"), R"({"best_at_trial":2,"total_trials":11,"regime":"noisy"})");
    // Winner in the middle: noisy.
    c = confidence(study({0.1, 0.2, 0.3, 0.2, 0.5, 0.4, 0.4, 0.4, 0.4, 0.4}, 4, nullptr));
    EXPECT_EQ(json_string_value(json_object_get(json_object_get(c.get(), "convergence"), "regime")),
              std::string("noisy"));
    // Winner not among the usable trials (its metric is NULL): null.
    StudyInput in = study({0.1, 0.2, 0.3}, 7, nullptr);
    EXPECT_EQ(field(confidence(in), "convergence"), "null");
}

TEST(Confidence, OutcomesAgainstBaselineFirstThenRunnerUp) {
    StudyInput in = study(kSeries, 10, kWinner5, kRunner5);
    in.has_baseline = true;
    in.baseline_pqm = parse(R"({"q1":{"ndcg@10":0.7},"q2":{"ndcg@10":0.1},"q9":{"ndcg@10":0.1}})");
    in.query_texts = {{"q1", "one\nline `x`"}};
    Json c = confidence(in);
    const json_t *pq = json_object_get(c.get(), "per_query_outcomes");
    EXPECT_EQ(
        json::dump(pq),
        R"({"improved":1,"unchanged":0,"regressed":1,"comparison_against":"baseline",)"
        R"("top_regressors":[{"query_id":"q1","query_text":"one\nline `x`","winner_score":0.6,)"
        R"("comparison_score":0.7,"delta":-0.09999999999999998}],"top_improvers":[]})");
    EXPECT_NE(confidence_lines(c.get()).find(
                  "- Queries that regressed: `one line 'x'` (0.700 \u2192 0.600)\n"),
              std::string::npos);
    // A baseline without per-query data: the runner-up is the comparison.
    in.baseline_pqm.reset();
    c = confidence(in);
    EXPECT_EQ(json_string_value(json_object_get(json_object_get(c.get(), "per_query_outcomes"),
                                                "comparison_against")),
              std::string("runner_up"));
    // Regressions whose queries have no row: counted, not listed, no line.
    in.query_texts.clear();
    c = confidence(in);
    std::string lines = confidence_lines(c.get());
    EXPECT_NE(lines.find("1 regressed (vs runner_up)"), std::string::npos);
    EXPECT_EQ(lines.find("Queries that regressed"), std::string::npos);
}

TEST(Confidence, OutcomesTopFiveOrderedAndNullEntriesSkipped) {
    std::string w = "{";
    std::string r = "{";
    for (int i = 0; i < 8; i++) {
        if (i) {
            w += ",";
            r += ",";
        }
        w += "\"q" + std::to_string(i) + "\":{\"ndcg@10\":" + std::to_string(0.1 * i) + "}";
        r += "\"q" + std::to_string(i) + "\":{\"ndcg@10\":0.9}";
    }
    w += ",\"qn\":{\"ndcg@10\":null},\"qx\":{\"other\":1}}";
    r += ",\"qn\":{\"ndcg@10\":0.1},\"qx\":{\"ndcg@10\":0.1}}";
    StudyInput in = study(kSeries, 10, w.c_str(), r.c_str());
    for (int i = 0; i < 8; i++) in.query_texts["q" + std::to_string(i)] = "t";
    Json c = confidence(in);
    const json_t *pq = json_object_get(c.get(), "per_query_outcomes");
    EXPECT_EQ(json_integer_value(json_object_get(pq, "regressed")), 8);
    const json_t *regs = json_object_get(pq, "top_regressors");
    ASSERT_EQ(json_array_size(regs), 5u);
    EXPECT_STREQ(json_string_value(json_object_get(json_array_get(regs, 0), "query_id")), "q0");
    EXPECT_STREQ(json_string_value(json_object_get(json_array_get(regs, 4), "query_id")), "q4");
}

TEST(Convergence, Verdicts) {
    StudyInput in = study(std::vector<double>(4, 0.5), 0, nullptr);
    EXPECT_FALSE(convergence(in));  // < 5 usable
    in = study({0.1, 0.2, 0.3, 0.35, 0.36, 0.4}, 5, nullptr);
    Json v = convergence(in);
    EXPECT_EQ(
        json::dump(v.get()),
        R"({"verdict":"too_few_trials","direction":"maximize","window_size":5,"epsilon":0.005,)"
        R"("warmup_floor":50,"total_complete_trials":6,"improvement_in_window":0.2,)"
        R"("best_so_far_curve":[{"trial_number":0,"best_so_far":0.1},{"trial_number":1,"best_so_far":0.2},)"
        R"({"trial_number":2,"best_so_far":0.3},{"trial_number":3,"best_so_far":0.35},)"
        R"({"trial_number":4,"best_so_far":0.36},{"trial_number":5,"best_so_far":0.4}]})");
    in.status = "running";
    EXPECT_FALSE(convergence(in));
    in.status = "queued";
    EXPECT_FALSE(convergence(in));

    std::vector<double> flat(60, 0.5);
    flat[0] = 0.1;
    in = study(flat, 1, nullptr);
    v = convergence(in);
    EXPECT_STREQ(json_string_value(json_object_get(v.get(), "verdict")), "converged");
    EXPECT_EQ(json_integer_value(json_object_get(v.get(), "window_size")), 12);
    flat[59] = 0.6;
    in = study(flat, 59, nullptr);
    v = convergence(in);
    EXPECT_STREQ(json_string_value(json_object_get(v.get(), "verdict")), "still_improving");
    std::vector<double> many(200, 0.5);
    in = study(many, 0, nullptr);
    EXPECT_EQ(json_integer_value(json_object_get(convergence(in).get(), "window_size")), 20);

    // minimize: running minimum, improvement sign flipped.
    std::vector<double> down(60, 0.5);
    down[59] = 0.4;
    in = study(down, 59, nullptr);
    in.objective = parse(R"({"metric":"ndcg","k":10,"direction":"minimize"})");
    v = convergence(in);
    EXPECT_STREQ(json_string_value(json_object_get(v.get(), "verdict")), "still_improving");
    EXPECT_EQ(json::dump(json_object_get(v.get(), "improvement_in_window")), "0.09999999999999998");

    bool invalid = false;
    in.objective = parse(R"({"direction":"sideways"})");
    EXPECT_FALSE(convergence(in, &invalid));
    EXPECT_TRUE(invalid);
    in.objective = parse(R"({"metric":"ndcg"})");  // absent direction: maximize
    v = convergence(in, &invalid);
    EXPECT_FALSE(invalid);
    EXPECT_STREQ(json_string_value(json_object_get(v.get(), "direction")), "maximize");
}

TEST(Inputs, FromColumns) {
    std::vector<std::optional<std::string_view>> cols = {
        "completed",
        R"({"metric": "ndcg", "k": 10})",
        "0.487",
        "t",
        "10",
        "0.487",
        R"({"q1": {"ndcg@10": 0.6}})",
        "f",
        std::nullopt,
        "t",
        R"({"q1": {"ndcg@10": 0.5}})",
        R"([[0,0.4],[1,0.42],[2,"NaN"]])",
        R"({"q1":"red shoes"})",
    };
    StudyInput in = input_from_columns(cols);
    EXPECT_EQ(in.status, "completed");
    EXPECT_TRUE(in.has_winner);
    EXPECT_EQ(in.winner_number, 10);
    EXPECT_EQ(in.best_metric, 0.487);
    EXPECT_FALSE(in.has_baseline);
    EXPECT_TRUE(in.has_runner_up);
    ASSERT_EQ(in.series.size(), 2u);
    EXPECT_EQ(in.series[1].metric, 0.42);
    EXPECT_EQ(in.query_texts.at("q1"), "red shoes");
}

TEST(Format, Fixed3IsCorrectlyRounded) {
    EXPECT_EQ(fixed3(0.0005), "0.001");  // 0.0005 is slightly above in binary
    EXPECT_EQ(fixed3(0.0025), "0.003");  // 0.00250000000000000005…
    EXPECT_EQ(fixed3(0.4165), "0.416");  // 0.41649999999999998…
    EXPECT_EQ(fixed3(0.56), "0.560");
}

TEST(Convergence, DirectionUnusable) {
    EXPECT_FALSE(direction_unusable(std::nullopt));
    EXPECT_FALSE(direction_unusable(R"({"metric":"ndcg"})"));
    EXPECT_FALSE(direction_unusable(R"({"direction":null})"));
    EXPECT_FALSE(direction_unusable(R"({"direction":"minimize"})"));
    EXPECT_FALSE(direction_unusable("[1]"));
    EXPECT_TRUE(direction_unusable(R"({"direction":"sideways"})"));
    EXPECT_TRUE(direction_unusable(R"({"direction":1})"));
}
