#include <gtest/gtest.h>

#include <stdexcept>
#include <thread>
#include <vector>

#include "common/regex.hpp"

using namespace relyloop;

TEST(Regex, WholeMatchesAllOfTheSubject) {
    Regex re("[a-z0-9][a-z0-9-]*", Regex::kWhole);
    EXPECT_TRUE(re.matches("search-config"));
    EXPECT_FALSE(re.matches("Search-config"));
    EXPECT_FALSE(re.matches("search config"));
    EXPECT_FALSE(re.matches("-x"));
    EXPECT_FALSE(re.matches(""));
    // A NUL byte is part of the subject, not its end.
    EXPECT_FALSE(re.matches(std::string_view("ab\0c", 4)));
}

TEST(Regex, WithoutWholeFindsAMatchAnywhere) {
    Regex re("gh[a-z]_[A-Za-z0-9_]{4,}");
    EXPECT_TRUE(re.matches("token ghp_abcd1234 here"));
    EXPECT_FALSE(re.matches("token ghp_abc here"));
}

TEST(Regex, ReplaceAllSubstitutesEveryMatchWithGroups) {
    Regex re("([a-z]+)=[0-9]+", Regex::kUtf8);
    EXPECT_EQ(re.replace_all("a=1, bc=22; d=x", "$1=#").value(), "a=#, bc=#; d=x");
    EXPECT_EQ(re.replace_all("", "$1").value(), "");
    EXPECT_EQ(re.replace_all("héllo wörld", "x").value(), "héllo wörld");
}

TEST(Regex, ReplaceAllGrowsItsBuffer) {
    Regex re("a");
    std::string in(1000, 'a');
    std::string out = re.replace_all(in, "[REDACTED]").value();
    EXPECT_EQ(out.size(), 10000u);
}

TEST(Regex, BadPatternThrowsLogicError) { EXPECT_THROW(Regex("(unclosed"), std::logic_error); }

TEST(Regex, SharedAcrossThreads) {
    const Regex re("[A-Za-z0-9._-]+", Regex::kWhole);
    std::vector<std::thread> threads;
    std::vector<int> ok(4, 0);
    for (int t = 0; t < 4; t++) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 500; i++) {
                ok[t] += re.matches("acme.repo-" + std::to_string(i)) && !re.matches("a/b") ? 1 : 0;
            }
        });
    }
    for (auto &th : threads) th.join();
    for (int n : ok) EXPECT_EQ(n, 500);
}
