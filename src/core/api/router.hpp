#pragma once

// Routes of docs/api.md, matched on the raw (undecoded) request path: the path
// is split on '/' first and each segment is percent-decoded on its own, so an
// encoded "%2F" inside an id never creates a segment.

#include <span>
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace relyloop::core {

// One handler per (route, method).
enum class Endpoint {
    kNone,
    kConfigRepoList,
    kConfigRepoCreate,
    kConfigRepoGet,
    kClusterList,
    kClusterCreate,
    kClusterGet,
    kClusterPatch,
    kClusterDelete,
    kClusterTestConnection,
    kTemplateList,
    kTemplateCreate,
    kTemplateGet,
    kStudyList,
    kStudyGet,
    kTrialList,
    kStudyCancel,
    kDigestGet,
    kProposalList,
    kProposalCreate,
    kProposalGet,
    kProposalReject,
    kProposalOpenPr,
    kProposalReinstate,
    kSeed,
    kHealth,
    kOpenapi,
    kConfigRepoRegisterWebhook,
};

struct RouteDef {
    const char *path;  // OpenAPI-style template, "{id}" marks the id segment
    Endpoint get;      // kNone when the method is not allowed
    Endpoint post;
    Endpoint patch;
    ErrorCode not_found;  // the 404 of an unknown or malformed {id}
    const char *allow;    // the Allow header: methods, then OPTIONS
    bool dev_only;        // exists only in the development environment
    Endpoint del = Endpoint::kNone;
};

// Every route, in a fixed order (the OpenAPI test walks them).
[[nodiscard]] std::span<const RouteDef> routes() noexcept;

struct RouteMatch {
    enum class Kind {
        kNoRoute,           // 404 RESOURCE_NOT_FOUND
        kMethodNotAllowed,  // 405 with Allow
        kOptions,           // OPTIONS on a known route
        kBadId,             // route and method fine, {id} unusable: 404 route.not_found
        kEndpoint,
    };
    Kind kind = Kind::kNoRoute;
    const RouteDef *route = nullptr;
    Endpoint endpoint = Endpoint::kNone;
    std::string id;  // decoded {id}
};

// The route raw_path falls under, whatever the method or the {id}'s
// validity (set in *id_raw, undecoded, when id_raw is given); nullptr when none.
[[nodiscard]] const RouteDef *find_route(std::string_view raw_path, bool development,
                                         std::string_view *id_raw = nullptr);

// method is the request method as sent; HEAD routes as GET.
[[nodiscard]] RouteMatch match_route(std::string_view method, std::string_view raw_path,
                                     bool development);

// True for the endpoints that take a request body (POST/PATCH).
[[nodiscard]] bool endpoint_takes_body(Endpoint e) noexcept;

}  // namespace relyloop::core
