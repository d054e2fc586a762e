// POST/GET /api/v1/clusters, GET/PATCH /api/v1/clusters/{id}. Soft-deleted
// clusters (deleted_at set) are invisible: every statement filters them.

#include <limits>

#include "api/crud.hpp"
#include "api/validation.hpp"
#include "common/json_writer.hpp"
#include "common/strings.hpp"
#include "common/uuid.hpp"
#include "common/validate.hpp"

namespace relyloop::core {

namespace {

bool cluster_name(std::string_view s) {
    if (s.empty() || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9'))) {
        return false;
    }
    for (char ch : s) {
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-')) {
            return false;
        }
    }
    return true;
}

// base_url: http(s), a host, and a port when one is given; the reason or
// nullptr (docs/api.md, "Clusters").
const char *base_url_problem(std::string_view s) {
    auto starts = [&](std::string_view prefix) {
        if (s.size() < prefix.size()) {
            return false;
        }
        for (size_t i = 0; i < prefix.size(); i++) {
            char ch = s[i];
            if (ch >= 'A' && ch <= 'Z') {
                ch = static_cast<char>(ch - 'A' + 'a');
            }
            if (ch != prefix[i]) {
                return false;
            }
        }
        return true;
    };
    std::string_view rest;
    if (starts("http://")) {
        rest = s.substr(7);
    } else if (starts("https://")) {
        rest = s.substr(8);
    } else {
        return "must use http or https scheme";
    }
    std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
    if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
        authority.remove_prefix(at + 1);
    }
    std::string_view host;
    std::string_view port;
    bool has_port = false;
    if (!authority.empty() && authority[0] == '[') {
        size_t close = authority.find(']');
        if (close == std::string_view::npos) {
            return "must include a host";
        }
        host = authority.substr(1, close - 1);
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after[0] != ':') {
                return "has an invalid port";
            }
            has_port = true;
            port = after.substr(1);
        }
    } else {
        size_t colon = authority.find(':');
        host = authority.substr(0, colon);
        if (colon != std::string_view::npos) {
            has_port = true;
            port = authority.substr(colon + 1);
        }
    }
    if (host.empty()) {
        return "must include a host";
    }
    if (has_port) {
        if (port.empty() || port.size() > 5) {
            return "has an invalid port";
        }
        long v = 0;
        for (char ch : port) {
            if (ch < '0' || ch > '9') {
                return "has an invalid port";
            }
            v = v * 10 + (ch - '0');
        }
        if (v < 1 || v > 65535) {
            return "has an invalid port";
        }
    }
    return nullptr;
}

constexpr StringRule kNameRule{128, 1, cluster_name, "must match ^[a-z0-9][a-z0-9-]*$"};
constexpr StringRule kKindRule{64, 1};
constexpr StringRule kBaseUrlRule{512, 1};
constexpr StringRule kRefRule{128, 1};
constexpr StringRule kConfigPathRule{
    512, 1, valid_config_path,
    "must be a relative path of [A-Za-z0-9_./-] characters without '..' segments"};
constexpr StringRule kNotesRule{2000, 1};
constexpr StringRule kTargetFilterRule{std::numeric_limits<size_t>::max(), 0};

constexpr int kCreatedCol = db::layout::cluster::created_at;

// The auth kinds an engine takes (docs/api.md, "Clusters").
std::vector<std::string_view> auth_kinds_for(std::string_view engine) {
    if (engine == "elasticsearch") {
        return {"es_apikey", "es_basic"};
    }
    if (engine == "opensearch") {
        return {"opensearch_basic"};
    }
    return {"solr_basic", "solr_apikey"};
}

std::string py_list(std::span<const std::string_view> items) {
    std::string out = "[";
    for (size_t i = 0; i < items.size(); i++) {
        out += i == 0 ? "'" : ", '";
        out += items[i];
        out += "'";
    }
    return out + "]";
}

// The body fields of a create and of a test-connection, checked in one
// order: 422s, then ENGINE_NOT_SUPPORTED, then AUTH_KIND_NOT_SUPPORTED.
struct ClusterBody {
    std::optional<std::string> engine;
    std::optional<std::string> base_url;
    std::optional<std::string> auth_kind;
    std::optional<std::string> creds;
    const json_t *engine_config = nullptr;

    std::optional<std::string> env;

    void read(BodyReader &r, bool with_environment) {
        engine = r.string("engine_type", true, kKindRule);
        if (with_environment) {
            env = r.one_of("environment", true, kEnvironments);
        }
        base_url = r.string("base_url", true, kBaseUrlRule);
        if (base_url) {
            if (const char *why = base_url_problem(*base_url)) {
                r.problems().add(r.path("base_url"), why);
            }
        }
        auth_kind = r.string("auth_kind", true, kKindRule);
        creds = r.string("credentials_ref", true, kRefRule);
        engine_config = r.object("engine_config", false);
    }

    // After done(): the 400s.
    void check_kinds() const {
        bool known_engine = false;
        for (std::string_view e : kSearchEngines) {
            known_engine = known_engine || *engine == e;
        }
        if (!known_engine) {
            throw Error(ErrorCode::kEngineNotSupported,
                        "engine_type must be one of: " + py_list(kSearchEngines) + " (got: '" +
                            *engine + "')");
        }
        if (*auth_kind == "opensearch_sigv4") {
            throw Error(ErrorCode::kAuthKindNotSupported,
                        "'opensearch_sigv4' is reserved but not implemented in MVP1");
        }
        bool known_kind = false;
        for (std::string_view k : kAuthKinds) {
            known_kind = known_kind || *auth_kind == k;
        }
        if (!known_kind) {
            throw Error(ErrorCode::kAuthKindNotSupported,
                        "auth_kind must be one of: " + py_list(kAuthKinds) + " (got: '" +
                            *auth_kind + "')");
        }
        auto allowed = auth_kinds_for(*engine);
        bool paired = false;
        for (std::string_view k : allowed) {
            paired = paired || *auth_kind == k;
        }
        if (!paired) {
            throw Error(ErrorCode::kAuthKindNotSupported,
                        "auth_kind='" + *auth_kind + "' is not valid for engine_type='" + *engine +
                            "'; allowed for '" + *engine + "': " + py_list(allowed));
        }
    }
};

size_t code_points(std::string_view s) {
    size_t n = 0;
    for (char ch : s) {
        n += (static_cast<unsigned char>(ch) & 0xC0) != 0x80 ? 1 : 0;
    }
    return n;
}

class CreateHandler : public Handler {
  public:
    CreateHandler() : Handler(Endpoint::kClusterCreate) {}

    Action start(Context &ctx) override {
        BodyReader r(ctx.body(), true);
        auto name = r.string("name", true, kNameRule);
        ClusterBody b;
        b.read(r, true);
        bool repo_given = r.get("config_repo_id") != nullptr;
        bool path_given = r.get("config_path") != nullptr;
        auto repo_id = r.string("config_repo_id", false, kIdRule);
        auto path = r.string("config_path", false, kConfigPathRule);
        auto notes = r.string("notes", false, kNotesRule);
        // Stripped first, then 1..256 (a blank filter is refused).
        auto filter = r.string("target_filter", false, kTargetFilterRule);
        if (filter) {
            *filter = std::string(trim_ascii_space(*filter));
            size_t n = code_points(*filter);
            if (n < 1 || n > 256) {
                r.problems().add(r.path("target_filter"),
                                 "must be between 1 and 256 characters after stripping whitespace");
            }
        }
        r.done();
        b.check_kinds();

        name_ = *name;
        repo_id_ = repo_id.value_or("");
        Param config;
        if (b.engine_config != nullptr) {
            config = json::dump(b.engine_config);
        }
        return Action::write(
            db::Stmt::kClusterInsert,
            {uuid_v7(), std::move(name), std::move(b.engine), std::move(b.env),
             std::move(b.base_url), std::move(b.auth_kind), std::move(b.creds), std::move(repo_id),
             std::move(path), std::move(config), std::move(notes), std::move(filter),
             bool_param(repo_given), bool_param(path_given)});
    }

    // repo_ok, Cluster (NULLs: the name belongs to an active cluster)
    Action on_rows(Context &, const PGresult *res) override {
        expect_one_row(res, 1 + db::kClusterCols, "cluster insert");
        db::Row row(res, 0);
        if (!row.boolean_value(0)) {
            return Action::not_found(ErrorCode::kConfigRepoNotFound, "Config repo", repo_id_);
        }
        if (row.null(1)) {
            return Action::error(ErrorCode::kClusterNameTaken,
                                 conflict_message(ErrorCode::kClusterNameTaken));
        }
        return Action::respond(object_response(201, render_cluster, res, 1));
    }

  protected:
    std::string conflict_message(ErrorCode code) override {
        if (code == ErrorCode::kClusterNameTaken) {
            return "name " + name_ + " is already registered";
        }
        return Handler::conflict_message(code);
    }

  private:
    std::string name_;
    std::string repo_id_;
};

// PATCH {config_repo_id?, config_path?, notes?}: absent keeps, null clears,
// a value sets; an empty object changes nothing and answers the cluster.
class PatchHandler : public Handler {
  public:
    PatchHandler() : Handler(Endpoint::kClusterPatch) {}

    Action start(Context &ctx) override {
        BodyReader r(ctx.body(), false);
        Patch repo = r.patch_string("config_repo_id", kIdRule);
        Patch path = r.patch_string("config_path", kConfigPathRule);
        Patch notes = r.patch_string("notes", kNotesRule);
        r.done();

        if (!repo.present && !path.present && !notes.present) {
            read_only_ = true;
            return Action::query(db::Stmt::kClusterGet, {ctx.id()});
        }
        repo_id_ = repo.value.value_or("");
        return Action::write(
            db::Stmt::kClusterPatch,
            {ctx.id(), bool_param(repo.present), std::move(repo.value), bool_param(path.present),
             std::move(path.value), bool_param(notes.present), std::move(notes.value)});
    }

    // cluster_ok, repo_ok, Cluster (or a plain Cluster for an empty patch)
    Action on_rows(Context &ctx, const PGresult *res) override {
        if (read_only_) {
            expect_columns(res, db::kClusterCols);
            if (PQntuples(res) == 0) {
                return not_found(ctx);
            }
            return Action::respond(object_response(200, render_cluster, res, 0));
        }
        expect_one_row(res, 2 + db::kClusterCols, "cluster patch");
        db::Row row(res, 0);
        if (!row.boolean_value(0)) {
            return not_found(ctx);
        }
        if (!row.boolean_value(1)) {
            return Action::not_found(ErrorCode::kConfigRepoNotFound, "Config repo", repo_id_);
        }
        if (row.null(2)) {
            // The cluster was soft-deleted between the check and the update.
            return not_found(ctx);
        }
        return Action::respond(object_response(200, render_cluster, res, 2));
    }

  private:
    static Action not_found(Context &ctx) {
        return Action::not_found(ErrorCode::kClusterNotFound, "Cluster", ctx.id());
    }

    bool read_only_ = false;
    std::string repo_id_;
};

// DELETE: soft delete; proposals keep showing the row's name (docs/api.md).
class DeleteHandler : public Handler {
  public:
    DeleteHandler() : Handler(Endpoint::kClusterDelete) {}

    Action start(Context &ctx) override {
        return Action::write(db::Stmt::kClusterDelete, {ctx.id()});
    }

    Action on_rows(Context &ctx, const PGresult *res) override {
        if (PQntuples(res) == 0) {
            return Action::error(ErrorCode::kClusterNotFound, "cluster " + ctx.id() + " not found");
        }
        Response r;
        r.status = 204;
        return Action::respond(std::move(r));
    }
};

// Validated as a create; this server never probes a search cluster.
class TestConnectionHandler : public Handler {
  public:
    TestConnectionHandler() : Handler(Endpoint::kClusterTestConnection) {}

    Action start(Context &ctx) override {
        BodyReader r(ctx.body(), true);
        ClusterBody b;
        b.read(r, false);
        r.done();
        b.check_kinds();
        return Action::error(ErrorCode::kClusterProbeUnsupported,
                             "this server does not probe search clusters; register the cluster "
                             "without a connection test");
    }
};

constexpr std::string_view kListParams[] = {"engine_type", "environment", "sort",  "q",
                                            "since",       "limit",       "cursor"};
constexpr SortKey kSortKeys[] = {
    {"name", KeyType::kText}, {"created_at", KeyType::kTimestamp}, {"environment", KeyType::kText}};
constexpr ListSpec kListSpec{kListParams, kSortKeys, true, db::Stmt::kClusterListSorted};

std::vector<Param> list_filters(const QueryArgs &args, Problems &problems) {
    std::vector<Param> f;
    f.push_back(parse_enum_filter(args, "engine_type", kSearchEngines, problems));
    f.push_back(parse_enum_filter(args, "environment", kEnvironments, problems));
    return f;
}

}  // namespace

std::unique_ptr<Handler> make_cluster_handler(Endpoint e) {
    switch (e) {
        case Endpoint::kClusterCreate:
            return std::make_unique<CreateHandler>();
        case Endpoint::kClusterPatch:
            return std::make_unique<PatchHandler>();
        case Endpoint::kClusterDelete:
            return std::make_unique<DeleteHandler>();
        case Endpoint::kClusterTestConnection:
            return std::make_unique<TestConnectionHandler>();
        case Endpoint::kClusterList:
            return std::make_unique<ListHandler>(e, db::Stmt::kClusterList, db::kClusterCols,
                                                 render_cluster, kCreatedCol, list_filters,
                                                 &kListSpec);
        default:
            return std::make_unique<GetByIdHandler>(e, db::Stmt::kClusterGet, db::kClusterCols,
                                                    render_cluster, ErrorCode::kClusterNotFound,
                                                    "Cluster");
    }
}

}  // namespace relyloop::core
