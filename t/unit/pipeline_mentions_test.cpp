// "@name" in PR texts must not notify anyone (docs/worker.md, "Mentions").
#include <gtest/gtest.h>

#include <string>

#include "common/validate.hpp"
#include "pipeline/pr_text.hpp"

using relyloop::valid_pull_url;
using relyloop::worker::quote_mentions;

TEST(Mentions, WrappedInCodeSpans) {
    EXPECT_EQ(quote_mentions("ping @octocat please"), "ping `@octocat` please");
    EXPECT_EQ(quote_mentions("@a-b, @c"), "`@a-b`, `@c`");
    EXPECT_EQ(quote_mentions("team @acme/search-team."), "team `@acme/search-team`.");
    EXPECT_EQ(quote_mentions("(@x)"), "(`@x`)");
    EXPECT_EQ(quote_mentions("line\n@x"), "line\n`@x`");
}

TEST(Mentions, NotMentionsStayAsTheyAre) {
    EXPECT_EQ(quote_mentions("mail ops@example.com"), "mail ops@example.com");
    EXPECT_EQ(quote_mentions("a @ b, @-x, @"), "a @ b, @-x, @");
    EXPECT_EQ(quote_mentions("no mention"), "no mention");
}

TEST(Mentions, BackticksInTheTextCannotOpenOrCloseTheSpan) {
    // A stray backtick before the name: the span uses a longer run, so the
    // stray one cannot pair with it and leave "@x" outside any span.
    EXPECT_EQ(quote_mentions("a`b @x"), "a`b ``@x``");
    EXPECT_EQ(quote_mentions("``` @x `"), "``` ````@x```` `");
    // a name never takes a backtick into the span
    // a fence never touches a backtick of the text (the runs would merge)
    EXPECT_EQ(quote_mentions("@x`y"), "``@x`` `y");
    EXPECT_EQ(quote_mentions("`@x`"), "` ``@x`` `");
}

TEST(PullUrl, OnlyThePullOfTheRepoOnTheConfiguredWebUrl) {
    const char *web = "https://github.com";
    EXPECT_TRUE(valid_pull_url("https://github.com/acme/cfg/pull/7", web, "acme", "cfg", 7));
    EXPECT_TRUE(valid_pull_url("https://GitHub.com/Acme/CFG/pull/7", "https://github.com/", "acme",
                               "cfg", 7));
    EXPECT_TRUE(valid_pull_url("https://ghe.example/prefix/acme/cfg/pull/12",
                               "https://ghe.example/prefix", "acme", "cfg", 12));
    EXPECT_FALSE(valid_pull_url("javascript:alert(1)", web, "acme", "cfg", 7));
    EXPECT_FALSE(valid_pull_url("http://github.com/acme/cfg/pull/7", web, "acme", "cfg", 7));
    EXPECT_FALSE(valid_pull_url("https://evil.example/acme/cfg/pull/7", web, "acme", "cfg", 7));
    EXPECT_FALSE(
        valid_pull_url("https://github.com.evil.example/acme/cfg/pull/7", web, "acme", "cfg", 7));
    EXPECT_FALSE(valid_pull_url("https://github.com/other/cfg/pull/7", web, "acme", "cfg", 7));
    EXPECT_FALSE(valid_pull_url("https://github.com/acme/cfg/pull/8", web, "acme", "cfg", 7));
    EXPECT_FALSE(valid_pull_url("https://github.com/acme/cfg/pull/7#x", web, "acme", "cfg", 7));
    EXPECT_FALSE(valid_pull_url("https://github.com/acme/cfg/pull/7?a", web, "acme", "cfg", 7));
    EXPECT_FALSE(valid_pull_url("https://github.com/acme/cfg/pull/07", web, "acme", "cfg", 7));
    EXPECT_FALSE(valid_pull_url("https://github.com/acme/cfg/issues/7", web, "acme", "cfg", 7));
    EXPECT_FALSE(valid_pull_url("https://ghe.example/acme/cfg/pull/12",
                                "https://ghe.example/prefix", "acme", "cfg", 12));
    EXPECT_FALSE(valid_pull_url("", web, "acme", "cfg", 7));
    EXPECT_FALSE(valid_pull_url("https://github.com/acme/cfg/pull/0", web, "acme", "cfg", 0));
}
