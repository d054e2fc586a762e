#pragma once

// The two shapes most endpoints share: one row by id, and a created_at list.

#include <string>
#include <vector>

#include "api/handler.hpp"
#include "api/pagination.hpp"
#include "api/render.hpp"

namespace relyloop::core {

// A boolean statement parameter.
[[nodiscard]] inline Param bool_param(bool b) { return std::string(b ? "t" : "f"); }

// GET /<resource>/{id}: one statement with $1 = id, 0..1 rows of a layout.
class GetByIdHandler : public Handler {
  public:
    GetByIdHandler(Endpoint e, db::Stmt stmt, int ncols, RenderFn render, ErrorCode not_found,
                   const char *what)
        : Handler(e),
          stmt_(stmt),
          ncols_(ncols),
          render_(render),
          not_found_(not_found),
          what_(what) {}

    Action start(Context &ctx) override { return Action::query(stmt_, {ctx.id()}); }

    Action on_rows(Context &ctx, const PGresult *res) override {
        expect_columns(res, ncols_);
        if (PQntuples(res) == 0) {
            return Action::not_found(not_found_, what_, ctx.id());
        }
        return Action::respond(object_response(200, render_, res, 0));
    }

  private:
    db::Stmt stmt_;
    int ncols_;
    RenderFn render_;
    ErrorCode not_found_;
    const char *what_;
};

// GET /<resource>: $1 fetch count, $2/$3 cursor, $4 since, then the filters;
// rows of total + layout, ordered created_at DESC, id DESC.
class ListHandler : public Handler {
  public:
    using Filters = std::vector<Param> (*)(const QueryArgs &, Problems &);

    ListHandler(Endpoint e, db::Stmt stmt, int ncols, RenderFn render, int created_col,
                Filters filters = nullptr)
        : Handler(e),
          stmt_(stmt),
          ncols_(ncols),
          render_(render),
          created_col_(created_col),
          filters_(filters) {}

    Action start(Context &ctx) override {
        Problems problems;
        ListParams lp = parse_list_params(ctx.args(), problems);
        std::vector<Param> params;
        params.reserve(8);
        params.emplace_back(std::to_string(lp.limit + 1));
        if (lp.cursor) {
            params.emplace_back(std::move(lp.cursor->created_at));
            params.emplace_back(std::move(lp.cursor->id));
        } else {
            params.emplace_back();
            params.emplace_back();
        }
        params.push_back(std::move(lp.since));
        if (filters_ != nullptr) {
            for (Param &p : filters_(ctx.args(), problems)) {
                params.push_back(std::move(p));
            }
        }
        problems.raise_if_any();
        limit_ = lp.limit;
        return Action::query(stmt_, std::move(params));
    }

    Action on_rows(Context &, const PGresult *res) override {
        expect_columns(res, 1 + ncols_);
        int created = 1 + created_col_;
        return Action::respond(list_response(
            res, limit_, 0, 1, render_,
            [created](const db::Row &r) { return created_at_cursor(r, 1, created); }));
    }

  private:
    db::Stmt stmt_;
    int ncols_;
    RenderFn render_;
    int created_col_;
    Filters filters_;
    int limit_ = kDefaultLimit;
};

}  // namespace relyloop::core
