#include <gtest/gtest.h>

#include <set>
#include <string>

#include "api/router.hpp"

using namespace relyloop;
using namespace relyloop::core;
using Kind = RouteMatch::Kind;

namespace {

RouteMatch m(const char *method, const std::string &path, bool dev = true) {
    return match_route(method, path, dev);
}

}  // namespace

TEST(Router, EveryRouteAndMethodReachesItsEndpoint) {
    struct Case {
        const char *method;
        const char *path;
        Endpoint endpoint;
    };
    const Case cases[] = {
        {"GET", "/api/v1/config-repos", Endpoint::kConfigRepoList},
        {"POST", "/api/v1/config-repos", Endpoint::kConfigRepoCreate},
        {"GET", "/api/v1/config-repos/abc", Endpoint::kConfigRepoGet},
        {"GET", "/api/v1/clusters", Endpoint::kClusterList},
        {"POST", "/api/v1/clusters", Endpoint::kClusterCreate},
        {"GET", "/api/v1/clusters/abc", Endpoint::kClusterGet},
        {"PATCH", "/api/v1/clusters/abc", Endpoint::kClusterPatch},
        {"DELETE", "/api/v1/clusters/abc", Endpoint::kClusterDelete},
        {"POST", "/api/v1/clusters/test-connection", Endpoint::kClusterTestConnection},
        {"GET", "/api/v1/query-templates", Endpoint::kTemplateList},
        {"POST", "/api/v1/query-templates", Endpoint::kTemplateCreate},
        {"GET", "/api/v1/query-templates/abc", Endpoint::kTemplateGet},
        {"GET", "/api/v1/studies", Endpoint::kStudyList},
        {"GET", "/api/v1/studies/abc", Endpoint::kStudyGet},
        {"GET", "/api/v1/studies/abc/trials", Endpoint::kTrialList},
        {"POST", "/api/v1/studies/abc/cancel", Endpoint::kStudyCancel},
        {"GET", "/api/v1/studies/abc/digest", Endpoint::kDigestGet},
        {"GET", "/api/v1/proposals", Endpoint::kProposalList},
        {"POST", "/api/v1/proposals", Endpoint::kProposalCreate},
        {"GET", "/api/v1/proposals/abc", Endpoint::kProposalGet},
        {"POST", "/api/v1/proposals/abc/reject", Endpoint::kProposalReject},
        {"POST", "/api/v1/proposals/abc/open_pr", Endpoint::kProposalOpenPr},
        {"POST", "/api/v1/proposals/abc/reinstate", Endpoint::kProposalReinstate},
        {"POST", "/api/v1/_test/studies/seed-completed", Endpoint::kSeed},
        {"GET", "/api/v1/health", Endpoint::kHealth},
        {"GET", "/api/v1/openapi.json", Endpoint::kOpenapi},
    };
    std::set<Endpoint> seen;
    for (const Case &c : cases) {
        RouteMatch r = m(c.method, c.path);
        EXPECT_EQ(r.kind, Kind::kEndpoint) << c.method << " " << c.path;
        EXPECT_EQ(r.endpoint, c.endpoint) << c.method << " " << c.path;
        seen.insert(c.endpoint);
    }
    // One case per endpoint: nothing is left unrouted.
    EXPECT_EQ(seen.size(), static_cast<size_t>(Endpoint::kOpenapi));
}

TEST(Router, IdIsDecodedPerSegment) {
    RouteMatch r = m("GET", "/api/v1/config-repos/a%2Fb%20c");
    ASSERT_EQ(r.kind, Kind::kEndpoint);
    EXPECT_EQ(r.id, "a/b c");
    r = m("GET", "/api/v1/proposals/x+y");
    EXPECT_EQ(r.id, "x+y");  // '+' is literal in a path
    r = m("GET", "/api/v1/studies/%C3%A9t%C3%A9/trials");
    EXPECT_EQ(r.kind, Kind::kEndpoint);
    EXPECT_EQ(r.id, "été");
}

TEST(Router, LiteralSegmentsMayBePercentEncoded) {
    RouteMatch r = m("GET", "/api/v1/config%2Drepos");
    EXPECT_EQ(r.endpoint, Endpoint::kConfigRepoList);
    // An encoded slash never splits a segment.
    EXPECT_EQ(m("GET", "/api/v1%2Fconfig-repos").kind, Kind::kNoRoute);
}

TEST(Router, MalformedIdIsA404OfTheResource) {
    const char *bad[] = {"/api/v1/config-repos/%zz", "/api/v1/config-repos/%4",
                         "/api/v1/config-repos/a%00b", "/api/v1/config-repos/%ff",
                         "/api/v1/config-repos/"};
    for (const char *p : bad) {
        RouteMatch r = m("GET", p);
        EXPECT_EQ(r.kind, Kind::kBadId) << p;
        ASSERT_NE(r.route, nullptr);
        EXPECT_EQ(r.route->not_found, ErrorCode::kConfigRepoNotFound);
    }
    EXPECT_EQ(m("GET", "/api/v1/studies/%zz/trials").route->not_found, ErrorCode::kStudyNotFound);
    EXPECT_EQ(m("POST", "/api/v1/proposals/%zz/open_pr").route->not_found,
              ErrorCode::kProposalNotFound);
    EXPECT_EQ(m("PATCH", "/api/v1/clusters/%zz").route->not_found, ErrorCode::kClusterNotFound);
    EXPECT_EQ(m("GET", "/api/v1/query-templates/%zz").route->not_found,
              ErrorCode::kTemplateNotFound);
}

TEST(Router, IdsLongerThan128CharactersAreNotFound) {
    std::string ok(128, 'a');
    EXPECT_EQ(m("GET", "/api/v1/proposals/" + ok).kind, Kind::kEndpoint);
    EXPECT_EQ(m("GET", "/api/v1/proposals/" + ok + "a").kind, Kind::kBadId);
    std::string multibyte;
    for (int i = 0; i < 128; i++) {
        multibyte += "%C3%A9";
    }
    EXPECT_EQ(m("GET", "/api/v1/proposals/" + multibyte).kind, Kind::kEndpoint);
    EXPECT_EQ(m("GET", "/api/v1/proposals/" + multibyte + "%C3%A9").kind, Kind::kBadId);
}

TEST(Router, UnknownPathsAreNoRoute) {
    const char *paths[] = {"/",
                           "",
                           "api/v1/health",
                           "/api/v1",
                           "/api/v1/",
                           "/api/v2/health",
                           "/api/v1/health/",
                           "/api/v1/nope",
                           "/api/v1/studies/a/b/c",
                           "/api/v1/studies/a/nope",
                           "/api/v1//config-repos",
                           "/api/v1/config-repos/a/b/c/d/e/f/g",
                           "/API/V1/health"};
    for (const char *p : paths) {
        EXPECT_EQ(m("GET", p).kind, Kind::kNoRoute) << p;
    }
}

TEST(Router, TestConnectionIsStaticForPostOnly) {
    RouteMatch r = m("POST", "/api/v1/clusters/test-connection");
    ASSERT_EQ(r.kind, Kind::kEndpoint);
    EXPECT_EQ(r.endpoint, Endpoint::kClusterTestConnection);
    // Other methods are /clusters/{id} with the id "test-connection".
    for (const char *method : {"GET", "PATCH", "DELETE"}) {
        r = m(method, "/api/v1/clusters/test-connection");
        ASSERT_EQ(r.kind, Kind::kEndpoint) << method;
        EXPECT_STREQ(r.route->path, "/api/v1/clusters/{id}") << method;
        EXPECT_EQ(r.id, "test-connection") << method;
    }
    r = m("POST", "/api/v1/proposals/p1/reinstate");
    ASSERT_EQ(r.kind, Kind::kEndpoint);
    EXPECT_EQ(r.endpoint, Endpoint::kProposalReinstate);
    EXPECT_EQ(r.id, "p1");
}

TEST(Router, WrongMethodIs405WithAllow) {
    RouteMatch r = m("DELETE", "/api/v1/config-repos/abc");
    ASSERT_EQ(r.kind, Kind::kMethodNotAllowed);
    EXPECT_STREQ(r.route->allow, "GET, OPTIONS");
    r = m("PUT", "/api/v1/clusters/abc");
    ASSERT_EQ(r.kind, Kind::kMethodNotAllowed);
    EXPECT_STREQ(r.route->allow, "GET, PATCH, DELETE, OPTIONS");
    r = m("DELETE", "/api/v1/clusters/abc");
    ASSERT_EQ(r.kind, Kind::kEndpoint);
    EXPECT_EQ(r.endpoint, Endpoint::kClusterDelete);
    EXPECT_EQ(r.id, "abc");
    r = m("GET", "/api/v1/proposals/abc/open_pr");
    ASSERT_EQ(r.kind, Kind::kMethodNotAllowed);
    EXPECT_STREQ(r.route->allow, "POST, OPTIONS");
    EXPECT_EQ(m("POST", "/api/v1/health").kind, Kind::kMethodNotAllowed);
    EXPECT_EQ(m("get", "/api/v1/health").kind,
              Kind::kMethodNotAllowed);  // methods are case-sensitive
    // The method is judged before the id.
    EXPECT_EQ(m("DELETE", "/api/v1/config-repos/%zz").kind, Kind::kMethodNotAllowed);
}

TEST(Router, HeadRoutesAsGet) {
    RouteMatch r = m("HEAD", "/api/v1/config-repos");
    EXPECT_EQ(r.endpoint, Endpoint::kConfigRepoList);
    EXPECT_EQ(m("HEAD", "/api/v1/proposals/abc/reject").kind, Kind::kMethodNotAllowed);
}

TEST(Router, OptionsOnAKnownRoute) {
    RouteMatch r = m("OPTIONS", "/api/v1/config-repos");
    ASSERT_EQ(r.kind, Kind::kOptions);
    EXPECT_STREQ(r.route->allow, "GET, POST, OPTIONS");
    EXPECT_EQ(m("OPTIONS", "/api/v1/config-repos/%zz").kind, Kind::kOptions);
    EXPECT_EQ(m("OPTIONS", "/api/v1/nope").kind, Kind::kNoRoute);
}

TEST(Router, SeedRouteExistsOnlyInDevelopment) {
    EXPECT_EQ(m("POST", "/api/v1/_test/studies/seed-completed", true).kind, Kind::kEndpoint);
    EXPECT_EQ(m("POST", "/api/v1/_test/studies/seed-completed", false).kind, Kind::kNoRoute);
    EXPECT_EQ(m("GET", "/api/v1/_test/studies/seed-completed", false).kind, Kind::kNoRoute);
    EXPECT_EQ(m("OPTIONS", "/api/v1/_test/studies/seed-completed", false).kind, Kind::kNoRoute);
}

TEST(Router, BodiesAreReadForPostAndPatchOnly) {
    EXPECT_TRUE(endpoint_takes_body(Endpoint::kConfigRepoCreate));
    EXPECT_TRUE(endpoint_takes_body(Endpoint::kClusterPatch));
    EXPECT_TRUE(endpoint_takes_body(Endpoint::kProposalOpenPr));
    EXPECT_TRUE(endpoint_takes_body(Endpoint::kSeed));
    EXPECT_FALSE(endpoint_takes_body(Endpoint::kConfigRepoGet));
    EXPECT_FALSE(endpoint_takes_body(Endpoint::kProposalList));
    EXPECT_FALSE(endpoint_takes_body(Endpoint::kHealth));
}

TEST(Router, RouteTableIsConsistent) {
    std::set<std::string> paths;
    for (const RouteDef &r : routes()) {
        EXPECT_TRUE(paths.insert(r.path).second) << r.path;
        std::string allow = r.allow;
        EXPECT_TRUE(allow.ends_with("OPTIONS")) << r.path;
        EXPECT_EQ(r.get != Endpoint::kNone, allow.find("GET") != std::string::npos) << r.path;
        EXPECT_EQ(r.post != Endpoint::kNone, allow.find("POST") != std::string::npos) << r.path;
        EXPECT_EQ(r.patch != Endpoint::kNone, allow.find("PATCH") != std::string::npos) << r.path;
    }
}
