#include "api/router.hpp"

#include <array>
#include <iterator>

#include "api/uri.hpp"
#include "api/validation.hpp"

namespace relyloop::core {

namespace {

using E = Endpoint;
using C = ErrorCode;

constexpr RouteDef kRoutes[] = {
    {"/api/v1/config-repos", E::kConfigRepoList, E::kConfigRepoCreate, E::kNone,
     C::kResourceNotFound, "GET, POST, OPTIONS", false},
    {"/api/v1/config-repos/{id}", E::kConfigRepoGet, E::kNone, E::kNone, C::kConfigRepoNotFound,
     "GET, OPTIONS", false},
    {"/api/v1/config-repos/{id}/register_webhook", E::kNone, E::kConfigRepoRegisterWebhook,
     E::kNone, C::kConfigRepoNotFound, "POST, OPTIONS", false},
    {"/api/v1/clusters", E::kClusterList, E::kClusterCreate, E::kNone, C::kResourceNotFound,
     "GET, POST, OPTIONS", false},
    // A static path before /clusters/{id}: only its POST is its own, other
    // methods fall through to /clusters/{id} (docs/api.md).
    {"/api/v1/clusters/test-connection", E::kNone, E::kClusterTestConnection, E::kNone,
     C::kResourceNotFound, "POST, OPTIONS", false},
    {"/api/v1/clusters/{id}", E::kClusterGet, E::kNone, E::kClusterPatch, C::kClusterNotFound,
     "GET, PATCH, DELETE, OPTIONS", false, E::kClusterDelete},
    {"/api/v1/query-templates", E::kTemplateList, E::kTemplateCreate, E::kNone,
     C::kResourceNotFound, "GET, POST, OPTIONS", false},
    {"/api/v1/query-templates/{id}", E::kTemplateGet, E::kNone, E::kNone, C::kTemplateNotFound,
     "GET, OPTIONS", false},
    {"/api/v1/studies", E::kStudyList, E::kNone, E::kNone, C::kResourceNotFound, "GET, OPTIONS",
     false},
    {"/api/v1/studies/{id}", E::kStudyGet, E::kNone, E::kNone, C::kStudyNotFound, "GET, OPTIONS",
     false},
    {"/api/v1/studies/{id}/trials", E::kTrialList, E::kNone, E::kNone, C::kStudyNotFound,
     "GET, OPTIONS", false},
    {"/api/v1/studies/{id}/cancel", E::kNone, E::kStudyCancel, E::kNone, C::kStudyNotFound,
     "POST, OPTIONS", false},
    {"/api/v1/studies/{id}/digest", E::kDigestGet, E::kNone, E::kNone, C::kStudyNotFound,
     "GET, OPTIONS", false},
    {"/api/v1/proposals", E::kProposalList, E::kProposalCreate, E::kNone, C::kResourceNotFound,
     "GET, POST, OPTIONS", false},
    {"/api/v1/proposals/{id}", E::kProposalGet, E::kNone, E::kNone, C::kProposalNotFound,
     "GET, OPTIONS", false},
    {"/api/v1/proposals/{id}/reject", E::kNone, E::kProposalReject, E::kNone, C::kProposalNotFound,
     "POST, OPTIONS", false},
    {"/api/v1/proposals/{id}/open_pr", E::kNone, E::kProposalOpenPr, E::kNone, C::kProposalNotFound,
     "POST, OPTIONS", false},
    {"/api/v1/proposals/{id}/reinstate", E::kNone, E::kProposalReinstate, E::kNone,
     C::kProposalNotFound, "POST, OPTIONS", false},
    {"/api/v1/_test/studies/seed-completed", E::kNone, E::kSeed, E::kNone, C::kResourceNotFound,
     "POST, OPTIONS", true},
    {"/api/v1/health", E::kHealth, E::kNone, E::kNone, C::kResourceNotFound, "GET, OPTIONS", false},
    {"/api/v1/openapi.json", E::kOpenapi, E::kNone, E::kNone, C::kResourceNotFound, "GET, OPTIONS",
     false},
};

constexpr size_t kMaxSegments = 6;

struct Segments {
    std::array<std::string_view, kMaxSegments> seg;
    size_t n = 0;
};

// Splits "/a/b/c" into its segments; false when there are too many to be a
// route or the path does not start with '/'.
bool split(std::string_view path, Segments &out) {
    if (path.empty() || path.front() != '/') {
        return false;
    }
    path.remove_prefix(1);
    for (;;) {
        if (out.n == kMaxSegments) {
            return false;
        }
        size_t slash = path.find('/');
        out.seg[out.n++] = path.substr(0, slash);
        if (slash == std::string_view::npos) {
            return true;
        }
        path.remove_prefix(slash + 1);
    }
}

// A literal segment matches when it decodes to exactly the template text.
bool literal_matches(std::string_view raw, std::string_view literal, std::string &scratch) {
    if (raw == literal) {
        return true;
    }
    if (raw.find('%') == std::string_view::npos) {
        return false;
    }
    return percent_decode(raw, false, scratch) && scratch == literal;
}

// Matches raw segments against a template; sets id_raw to the {id} segment.
bool template_matches(const char *tmpl, const Segments &s, std::string_view &id_raw,
                      std::string &scratch) {
    std::string_view t(tmpl);
    t.remove_prefix(1);
    size_t i = 0;
    for (;;) {
        size_t slash = t.find('/');
        std::string_view piece = t.substr(0, slash);
        if (i >= s.n) {
            return false;
        }
        if (piece == "{id}") {
            id_raw = s.seg[i];
        } else if (!literal_matches(s.seg[i], piece, scratch)) {
            return false;
        }
        i++;
        if (slash == std::string_view::npos) {
            break;
        }
        t.remove_prefix(slash + 1);
    }
    return i == s.n;
}

}  // namespace

std::span<const RouteDef> routes() noexcept { return kRoutes; }

const RouteDef *find_route(std::string_view raw_path, bool development, std::string_view *id_raw) {
    Segments segs;
    if (!split(raw_path, segs)) {
        return nullptr;
    }
    std::string scratch;
    std::string_view id;
    for (const RouteDef &r : kRoutes) {
        if (r.dev_only && !development) {
            continue;
        }
        id = {};
        if (template_matches(r.path, segs, id, scratch)) {
            if (id_raw != nullptr) {
                *id_raw = id;
            }
            return &r;
        }
    }
    return nullptr;
}

RouteMatch match_route(std::string_view method, std::string_view raw_path, bool development) {
    RouteMatch m;
    std::string_view id_raw;
    const RouteDef *route = find_route(raw_path, development, &id_raw);
    if (route == nullptr) {
        return m;
    }
    m.route = route;
    if (method == "OPTIONS") {
        m.kind = RouteMatch::Kind::kOptions;
        return m;
    }
    auto endpoint_of = [method](const RouteDef &r) {
        if (method == "GET" || method == "HEAD") {
            return r.get;
        }
        if (method == "POST") {
            return r.post;
        }
        if (method == "PATCH") {
            return r.patch;
        }
        if (method == "DELETE") {
            return r.del;
        }
        return Endpoint::kNone;
    };
    Endpoint e = endpoint_of(*route);
    if (e == Endpoint::kNone) {
        // A later route matching the path may take the method: the static
        // /clusters/test-connection (POST) comes before /clusters/{id}.
        Segments segs;
        std::string scratch;
        if (split(raw_path, segs)) {
            for (const RouteDef *r = route + 1; r != std::end(kRoutes); r++) {
                std::string_view later_id;
                if ((!r->dev_only || development) &&
                    template_matches(r->path, segs, later_id, scratch) &&
                    endpoint_of(*r) != Endpoint::kNone) {
                    route = r;
                    m.route = r;
                    id_raw = later_id;
                    e = endpoint_of(*r);
                    break;
                }
            }
        }
    }
    if (e == Endpoint::kNone) {
        m.kind = RouteMatch::Kind::kMethodNotAllowed;
        return m;
    }
    m.endpoint = e;
    if (std::string_view(route->path).find("{id}") != std::string_view::npos) {
        if (!percent_decode(id_raw, false, m.id) || !valid_id_text(m.id)) {
            m.id.clear();
            m.kind = RouteMatch::Kind::kBadId;
            return m;
        }
    }
    m.kind = RouteMatch::Kind::kEndpoint;
    return m;
}

bool endpoint_takes_body(Endpoint e) noexcept {
    switch (e) {
        case Endpoint::kConfigRepoCreate:
        case Endpoint::kConfigRepoRegisterWebhook:
        case Endpoint::kClusterCreate:
        case Endpoint::kClusterPatch:
        case Endpoint::kTemplateCreate:
        case Endpoint::kStudyCancel:
        case Endpoint::kProposalCreate:
        case Endpoint::kProposalReject:
        case Endpoint::kProposalOpenPr:
        case Endpoint::kProposalReinstate:
        case Endpoint::kClusterTestConnection:
        case Endpoint::kSeed:
            return true;
        default:
            return false;
    }
}

}  // namespace relyloop::core
