// Stored follow-ups → FollowupItems (docs/upstream-schema.md "Follow-ups").

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/followups.hpp"

using namespace relyloop;

namespace {

std::string parsed(const std::string &stored, std::vector<followups::Event> *events = nullptr) {
    return followups::parse_to_json(stored, false, events);
}

std::string one(const std::string &item) {
    std::vector<followups::Event> ev;
    return parsed("[" + item + "]", &ev);
}

std::string line_of(const std::string &item) {
    Json items = followups::parse("[" + item + "]", false, nullptr);
    return json_array_size(items.get()) == 1 ? followups::pr_line(json_array_get(items.get(), 0))
                                             : "<none>";
}

const std::string kTid = "01234567-89ab-cdef-0123-456789abcdef";

}  // namespace

TEST(Followups, TopLevel) {
    std::vector<followups::Event> ev;
    EXPECT_EQ(followups::parse_to_json("", true, &ev), "[]");
    EXPECT_TRUE(ev.empty());
    EXPECT_EQ(parsed("{\"a\": 1}", &ev), "[]");
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_STREQ(ev[0].event, "digest_followups_top_level_malformed");
    EXPECT_EQ(parsed("[]"), "[]");
}

TEST(Followups, StringsAndValidObjects) {
    EXPECT_EQ(one(R"("s")"), R"([{"kind":"text","rationale":"s","search_space":null}])");
    EXPECT_EQ(one(R"({"kind":"text","rationale":"r"})"),
              R"([{"kind":"text","rationale":"r","search_space":null}])");
    EXPECT_EQ(
        one(R"({"search_space":{"params":{"b":{"high":3,"low":1,"type":"float"}}},"rationale":"r","kind":"narrow"})"),
        R"([{"kind":"narrow","rationale":"r","search_space":{"params":{"b":{"type":"float","low":1.0,"high":3.0,"log":false}}}}])");
    EXPECT_EQ(
        one(R"({"kind":"widen","rationale":"r","search_space":{"params":{"n":{"type":"int","low":1,"high":2.0}}}})"),
        R"([{"kind":"widen","rationale":"r","search_space":{"params":{"n":{"type":"int","low":1,"high":2}}}}])");
    EXPECT_EQ(
        one(R"({"kind":"swap_template","template_id":")" + kTid +
            R"(","rationale":"r","search_space":{"params":{"c":{"type":"categorical","choices":["a",1,true]}}}})"),
        R"([{"kind":"swap_template","rationale":"r","template_id":")" + kTid +
            R"(","search_space":{"params":{"c":{"type":"categorical","choices":["a",1,true]}}}}])");
}

TEST(Followups, InvalidAreDowngradedOrDropped) {
    struct Case {
        const char *item;
        const char *reason;  // nullptr: dropped
    };
    const Case cases[] = {
        {R"({"kind":"narrow","rationale":"r","search_space":{"params":{}}})",
         "search_space.params: needs at least one parameter"},
        {R"({"kind":"narrow","rationale":"r","search_space":{"params":{"b":{"type":"float","low":0,"high":1,"log":true}}}})",
         "search_space.params.b: log scale needs low > 0"},
        {R"({"kind":"narrow","rationale":"r","search_space":{"params":{"b":{"type":"int","low":1.5,"high":3}}}})",
         "search_space.params.b: low and high must be integers"},
        {R"({"kind":"narrow","rationale":"r","search_space":{"params":{"b":{"type":"int","low":1,"high":1000001}}}})",
         "search_space: cardinality above 1000000"},
        {R"({"kind":"narrow","rationale":"r","search_space":{"params":{"b":{"type":"normalizer_pipeline","steps":["trim","trim"]}}}})",
         R"(search_space.params.b: duplicate step \"trim\")"},  // as JSON text
        {R"({"kind":"swap_template","rationale":"r","template_id":"short","search_space":{"params":{"b":{"type":"categorical","choices":[1]}}}})",
         "swap_template: template_id must be a string of 36 characters"},
        {R"({"kind":"text","rationale":"r","search_space":{}})", "text: search_space must be null"},
        {R"({"kind":"mystery","rationale":"r"})", "unknown kind 'mystery'"},
        {R"({"kind":"text","rationale":" ","x":1})", nullptr},
        {R"({"kind":"text"})", nullptr},
        {"7", nullptr},
        {"null", nullptr},
    };
    for (const Case &c : cases) {
        std::vector<followups::Event> ev;
        std::string out = parsed(std::string("[") + c.item + "]", &ev);
        ASSERT_EQ(ev.size(), 1u) << c.item;
        if (c.reason == nullptr) {
            EXPECT_EQ(out, "[]") << c.item;
            EXPECT_STREQ(ev[0].event, "digest_followup_dropped") << c.item;
        } else {
            EXPECT_EQ(out, std::string(R"([{"kind":"text","rationale":"[validation failed: )") +
                               c.reason + R"(] r","search_space":null}])")
                << c.item;
            EXPECT_STREQ(ev[0].event, "digest_followup_validation_downgraded") << c.item;
        }
    }
}

TEST(Followups, LongReasonsAreClipped) {
    std::string key(1000, 'k');
    std::vector<followups::Event> ev;
    std::string out = parsed(R"([{"kind":"text","rationale":"r",")" + key + R"(":1}])", &ev);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_LE(ev[0].detail.size(), 420u);
    EXPECT_NE(out.find("\xe2\x80\xa6"), std::string::npos);
}

TEST(Followups, PrLines) {
    EXPECT_EQ(line_of(R"("plain")"), "plain");
    EXPECT_EQ(
        line_of(
            R"({"kind":"narrow","rationale":"Winner sits mid-range","search_space":{"params":{"boost":{"type":"float","low":1.5,"high":3}}}})"),
        "**narrow:** Winner sits mid-range (`boost` [1.5, 3.0])");
    EXPECT_EQ(
        line_of(
            R"({"kind":"widen","rationale":"w","search_space":{"params":{"a":{"type":"float","low":0.1,"high":1,"log":true},"n":{"type":"int","low":1,"high":5},"c":{"type":"categorical","choices":["x",2]},"p":{"type":"normalizer_pipeline","steps":["lowercase","trim"]}}}})"),
        "**widen:** w (`a` [0.1, 1.0] log, `n` [1, 5], `c` {x, 2}, `p` steps {lowercase, trim})");
    EXPECT_EQ(line_of(R"({"kind":"swap_template","rationale":"s","template_id":")" + kTid +
                      R"(","search_space":{"params":{"n":{"type":"int","low":1,"high":2}}}})"),
              "**swap_template:** s (template `" + kTid + "`; `n` [1, 2])");
}
