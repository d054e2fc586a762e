// rl_web_url_check, the C entry point nginx checks relyloop_github_web_url
// with at `nginx -t`: the common rule the worker applies to --github-web-url.

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "common/validate.hpp"
#include "relyloop/core.h"

namespace {

rl_str_t s(const char *text) { return rl_str_t{text, std::strlen(text)}; }

// The accepted URL without its trailing '/'s, or "(refused)".
std::string check(const char *url) {
    size_t len = 0;
    if (rl_web_url_check(&len, s(url)) != RL_OK) {
        return "(refused)";
    }
    return std::string(url, len);
}

}  // namespace

TEST(WebUrlCheck, AcceptsAndDropsTrailingSlashes) {
    EXPECT_EQ(check("https://github.com"), "https://github.com");
    EXPECT_EQ(check("https://ghe.example.com/"), "https://ghe.example.com");
    EXPECT_EQ(check("http://[::1]:8443/prefix//"), "http://[::1]:8443/prefix");
}

TEST(WebUrlCheck, RefusesWhatTheWorkerRefuses) {
    // accepted by nginx's own check before the rule had one owner
    EXPECT_EQ(check("https://git_hub.example.com"), "(refused)");
    EXPECT_EQ(check("https://github.com:99999"), "(refused)");
    EXPECT_EQ(check("https://github.com:"), "(refused)");
    EXPECT_EQ(check("https://github.com/a\\b"), "(refused)");
    // refused by both all along
    EXPECT_EQ(check("ftp://github.com"), "(refused)");
    EXPECT_EQ(check("https://user:pw@github.com"), "(refused)");
    EXPECT_EQ(check(""), "(refused)");
}

TEST(WebUrlCheck, AgreesWithTheCommonRule) {
    for (const char *url : {"https://github.com/", "http://h:1", "https://h:65536", "https://[::1]",
                            "https://[zz]", "https://a.b-c/d/e", "https://a/b?c", "http://-a"}) {
        auto common = relyloop::normalize_web_url(url);
        EXPECT_EQ(check(url), common ? std::string(*common) : std::string("(refused)")) << url;
    }
}

TEST(WebUrlCheck, NullArgumentsAreRefused) {
    size_t len = 0;
    EXPECT_EQ(rl_web_url_check(nullptr, s("https://github.com")), RL_ERROR);
    EXPECT_EQ(rl_web_url_check(&len, rl_str_t{nullptr, 0}), RL_ERROR);
}
