// The PR body's length limit and the placement of the analytics sections
// (pipeline/pr_text.*).

#include <gtest/gtest.h>
#include <jansson.h>

#include <string>

#include "common/json_writer.hpp"
#include "pipeline/pr_text.hpp"

using namespace relyloop;
using namespace relyloop::worker;

namespace {

Json parse(const std::string &text) {
    json_error_t err;
    return Json(json_loads(text.c_str(), JSON_DECODE_ANY, &err));
}

PrText study_text() {
    PrText t;
    t.proposal_id = "p-1";
    t.study_id = "s-1";
    t.study_name = "study";
    t.cluster_name = "c";
    t.template_name = "bm25";
    t.config_diff = parse(R"({"boost":{"from":1.0,"to":2.5},"query_normalizer":{"to":"trim"}})");
    t.metric_delta = parse(R"({"ndcg@10":{"baseline":0.4,"achieved":0.5,"delta_pct":25.0}})");
    t.confidence =
        parse(R"({"headline":{"metric":"ndcg","value":0.5,"k":10,"n_queries":null},"ci_95":null,)"
              R"("runner_up_gap":{"value":0.01,"classification":"sharp_peak","top10_within":0.01,)"
              R"("runner_up_metric":0.49},"late_trial_stddev":null,"convergence":null,)"
              R"("per_query_outcomes":null})");
    TrialRow row;
    row.number = 3;
    row.params = parse(R"({"boost":2.5})");
    row.metric = 0.5;
    t.top_trials.push_back(std::move(row));
    t.followups = {"Widen the range"};
    return t;
}

size_t chars(const std::string &s) { return json::utf8_length(s); }

}  // namespace

TEST(PrBodySections, SectionsInOrder) {
    std::string body = pr_body(study_text());
    size_t at = 0;
    for (const char *h :
         {"### Metrics\n", "### Confidence\n\n- Runner-up gap 0.010 (sharp_peak)\n\n",
          "### Config diff\n", "### Operator-side requirement\n", "**Chosen normalizer:** `trim`",
          "### Top trials\n", "### Suggested follow-ups\n\n- Widen the range\n\n", "---\n"}) {
        size_t next = body.find(h, at);
        ASSERT_NE(next, std::string::npos) << h << "\n" << body;
        at = next;
    }
}

TEST(PrBodySections, ManualHasNeitherSection) {
    PrText t = study_text();
    t.manual = true;
    std::string body = pr_body(t);
    EXPECT_EQ(body.find("### Confidence"), std::string::npos);
    EXPECT_EQ(body.find("### Operator-side"), std::string::npos);
}

TEST(PrBodySections, NoConfidenceWithoutAnalytics) {
    PrText t = study_text();
    t.confidence.reset();
    EXPECT_EQ(pr_body(t).find("### Confidence"), std::string::npos);
}

TEST(PrBodySections, LongFollowupsAreDroppedFirst) {
    PrText t = study_text();
    t.followups.assign(2000, std::string(60, 'x') + " \u00e9");
    std::string body = pr_body(t);
    EXPECT_LE(chars(body), kPrBodyLimit);
    EXPECT_NE(body.find("_Suggested follow-ups omitted: the PR body would exceed GitHub's "
                        "65,536-character limit._"),
              std::string::npos);
    EXPECT_NE(body.find("- Runner-up gap 0.010"), std::string::npos);
    EXPECT_NE(body.find("| 3 | {\"boost\":2.5} | 0.5 |"), std::string::npos);
    EXPECT_NE(body.find("### Operator-side requirement"), std::string::npos);
}

TEST(PrBodySections, ThenTopTrialsThenConfidenceThenMetrics) {
    PrText t = study_text();
    t.followups.assign(600, std::string(100, 'f'));
    for (int i = 0; i < 700; i++) {
        TrialRow row;
        row.number = i;
        row.params = parse("{\"p\":\"" + std::string(100, 'a') + "\"}");
        t.top_trials.push_back(std::move(row));
    }
    std::string body = pr_body(t);
    EXPECT_LE(chars(body), kPrBodyLimit);
    EXPECT_NE(body.find("_Top trials omitted"), std::string::npos);
    EXPECT_NE(body.find("_Suggested follow-ups omitted"), std::string::npos);
    EXPECT_EQ(body.find("_Confidence omitted"), std::string::npos);

    // A config diff alone over the limit: every optional section goes, then
    // the body is cut at a line with a note.
    std::string diff = "{";
    for (int i = 0; i < 3000; i++) {
        diff += std::string(i ? "," : "") + "\"param_" + std::to_string(i) + "\":{\"to\":\"" +
                std::string(30, 'v') + "\"}";
    }
    t.config_diff = parse(diff + "}");
    body = pr_body(t);
    EXPECT_LE(chars(body), kPrBodyLimit);
    EXPECT_NE(body.find("_Metrics omitted"), std::string::npos);
    EXPECT_NE(body.find("_Confidence omitted"), std::string::npos);
    EXPECT_TRUE(body.ends_with(
        "\n_The rest of this body was cut: it would exceed GitHub's 65,536-character limit._\n"));

    t.manual = true;
    body = pr_body(t);
    EXPECT_LE(chars(body), kPrBodyLimit);
    EXPECT_TRUE(body.ends_with("65,536-character limit._\n"));
}

TEST(PrBodySections, AnalyticsTextIsRedacted) {
    PrText t = study_text();
    t.confidence = parse(
        R"({"headline":{"metric":"ndcg","value":0.5,"k":10,"n_queries":5},"ci_95":null,)"
        R"("runner_up_gap":null,"late_trial_stddev":null,"convergence":null,)"
        R"("per_query_outcomes":{"improved":0,"unchanged":0,"regressed":1,)"
        R"("comparison_against":"runner_up","top_improvers":[],"top_regressors":[{"query_id":"q1",)"
        R"("query_text":"leak ghp_abcdefghijklmnopqrstuvwxyz0123456789AB","winner_score":0.1,)"
        R"("comparison_score":0.5,"delta":-0.4}]}})");
    t.config_diff =
        parse(R"({"query_normalizer":{"to":"ghp_abcdefghijklmnopqrstuvwxyz0123456789AB"}})");
    std::string body = pr_body(t);
    EXPECT_EQ(body.find("ghp_"), std::string::npos);
    EXPECT_NE(
        body.find("- Queries that regressed: `leak [REDACTED-GH-TOKEN]` (0.500 \u2192 0.100)\n"),
        std::string::npos)
        << body;
}
