// POST/GET /api/v1/query-templates, GET /api/v1/query-templates/{id}

#include <limits>

#include "api/crud.hpp"
#include "api/validation.hpp"
#include "common/json_writer.hpp"
#include "common/uuid.hpp"
#include "common/validate.hpp"

namespace relyloop::core {

namespace {

// Spaces allowed inside (docs/api.md, "Query templates").
bool template_name(std::string_view s) {
    auto alnum = [](char ch) {
        return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
    };
    if (s.empty() || !alnum(s[0])) {
        return false;
    }
    for (char ch : s) {
        if (!alnum(ch) && ch != ' ' && ch != '.' && ch != '_' && ch != '-') {
            return false;
        }
    }
    return true;
}

constexpr StringRule kNameRule{256, 1, template_name, "must match ^[A-Za-z0-9][A-Za-z0-9 ._-]*$"};
constexpr StringRule kBodyRule{std::numeric_limits<size_t>::max(), 1};

constexpr int kCreatedCol = db::layout::query_template::created_at;

class CreateHandler : public Handler {
  public:
    CreateHandler() : Handler(Endpoint::kTemplateCreate) {}

    Action start(Context &ctx) override {
        BodyReader r(ctx.body(), true);
        auto name = r.string("name", true, kNameRule);
        auto engine = r.one_of("engine_type", true, kEngineTypes);
        auto text = r.string("body", true, kBodyRule);
        const json_t *params = r.object("declared_params", true);
        if (params != nullptr) {
            validate_declared_params(params, r.path("declared_params"), r.problems());
        }
        auto version = r.integer("version", false, 1, std::numeric_limits<int32_t>::max());
        auto parent = r.string("parent_id", false, kIdRule);
        r.done();

        name_ = *name;
        version_ = version.value_or(1);
        parent_ = parent.value_or("");
        return Action::write(db::Stmt::kTemplateInsert,
                             {uuid_v7(), std::move(name), std::move(engine), std::move(text),
                              json::dump(params), std::to_string(version_), std::move(parent)});
    }

    // parent_ok, Template
    Action on_rows(Context &, const PGresult *res) override {
        expect_one_row(res, 1 + db::kTemplateCols, "template insert");
        if (!db::Row(res, 0).boolean_value(0)) {
            return Action::not_found(ErrorCode::kTemplateNotFound, "Parent template", parent_);
        }
        return Action::respond(object_response(201, render_template, res, 1));
    }

  protected:
    std::string conflict_message(ErrorCode code) override {
        if (code == ErrorCode::kTemplateNameTaken) {
            return "Template \"" + name_ + "\" version " + std::to_string(version_) +
                   " already exists";
        }
        return Handler::conflict_message(code);
    }

  private:
    std::string name_;
    long long version_ = 1;
    std::string parent_;
};

std::vector<Param> list_filters(const QueryArgs &args, Problems &problems) {
    return {parse_enum_filter(args, "engine_type", kSearchEngines, problems)};
}

constexpr std::string_view kListParams[] = {"engine_type", "sort", "q", "since", "limit", "cursor"};
constexpr SortKey kSortKeys[] = {{"name", KeyType::kText},
                                 {"created_at", KeyType::kTimestamp},
                                 {"engine_type", KeyType::kText},
                                 {"version", KeyType::kNumber}};
constexpr ListSpec kListSpec{kListParams, kSortKeys, true, db::Stmt::kTemplateListSorted};

}  // namespace

std::unique_ptr<Handler> make_template_handler(Endpoint e) {
    switch (e) {
        case Endpoint::kTemplateCreate:
            return std::make_unique<CreateHandler>();
        case Endpoint::kTemplateList:
            return std::make_unique<ListHandler>(e, db::Stmt::kTemplateList, db::kTemplateCols,
                                                 render_template, kCreatedCol, list_filters,
                                                 &kListSpec);
        default:
            return std::make_unique<GetByIdHandler>(e, db::Stmt::kTemplateGet, db::kTemplateCols,
                                                    render_template, ErrorCode::kTemplateNotFound,
                                                    "Template");
    }
}

}  // namespace relyloop::core
