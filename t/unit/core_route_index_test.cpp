#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "relyloop/core.h"

namespace {

rl_str_t s(const char *text) { return rl_str_t{text, std::strlen(text)}; }

class RouteIndex : public ::testing::Test {
  protected:
    void SetUp() override {
        rl_core_conf_t conf{};
        conf.environment = "production";
        ASSERT_EQ(rl_core_new(&core_, &conf), RL_OK);
    }
    void TearDown() override { rl_core_free(core_); }

    std::string route(const char *method, const char *path) {
        int i = rl_route_index(core_, s(method), s(path));
        return i < 0 ? std::string("other") : std::string(rl_route_path(static_cast<size_t>(i)));
    }

    rl_core_t *core_ = nullptr;
};

}  // namespace

TEST_F(RouteIndex, TemplatesWhateverTheMethodOrId) {
    EXPECT_GT(rl_route_count(), 10u);
    EXPECT_EQ(rl_route_path(rl_route_count()), nullptr);
    EXPECT_EQ(route("GET", "/api/v1/clusters"), "/api/v1/clusters");
    EXPECT_EQ(route("POST", "/api/v1/clusters"), "/api/v1/clusters");
    EXPECT_EQ(route("GET", "/api/v1/clusters/abc"), "/api/v1/clusters/{id}");
    EXPECT_EQ(route("DELETE", "/api/v1/clusters/abc"), "/api/v1/clusters/{id}");
    EXPECT_EQ(route("GET", "/api/v1/proposals/x/open_pr"), "/api/v1/proposals/{id}/open_pr");
    EXPECT_EQ(route("GET", "/api/v1/health"), "/api/v1/health");
    EXPECT_EQ(route("GET", "/api/v1/nowhere"), "other");
    EXPECT_EQ(route("GET", "/"), "other");
    EXPECT_EQ(route("GET", ""), "other");
    // the seed route exists only in development
    EXPECT_EQ(route("POST", "/api/v1/_test/studies/seed-completed"), "other");
    EXPECT_EQ(rl_route_index(nullptr, s("GET"), s("/api/v1/health")), -1);
}
