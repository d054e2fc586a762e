#pragma once

// The two shapes most endpoints share: one row by id, and a created_at list.

#include <span>
#include <string>
#include <vector>

#include "api/handler.hpp"
#include "api/pagination.hpp"
#include "api/render.hpp"
#include "common/timefmt.hpp"

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

// What a list endpoint takes beyond the created_at list of ListHandler.
struct ListSpec {
    // The query parameters it takes; any other is a 422.
    std::span<const std::string_view> params;
    // ?sort= keys (empty: no ?sort=); each is offered :asc and :desc.
    std::span<const SortKey> sort_keys;
    bool searchable = false;  // ?q= (full text, rank order without a sort)
    db::Stmt sorted_stmt = db::Stmt::kHealthPing;
};

// GET /<resource>: $1 fetch count, $2/$3 cursor, $4 since, then the filters;
// rows of total + layout, ordered created_at DESC, id DESC. With a ListSpec,
// ?sort= or ?q= switch to its sorted statement (statements.cpp,
// RL_SORTED_LIST): $5 key, $6 direction, $7/$8 cursor value, $9 q, the
// filters from $10; rows of total, the three keys, layout.
class ListHandler : public Handler {
  public:
    using Filters = std::vector<Param> (*)(const QueryArgs &, Problems &);

    ListHandler(Endpoint e, db::Stmt stmt, int ncols, RenderFn render, int created_col,
                Filters filters = nullptr, const ListSpec *spec = nullptr)
        : Handler(e),
          stmt_(stmt),
          ncols_(ncols),
          render_(render),
          created_col_(created_col),
          filters_(filters),
          spec_(spec) {}

    Action start(Context &ctx) override {
        Problems problems;
        const QueryArgs &args = ctx.args();
        if (spec_ != nullptr) {
            reject_unknown_params(args, spec_->params, problems);
        }
        int limit = parse_limit(args, problems);
        std::optional<std::string> since;
        if (auto s = args.get("since")) {
            since = parse_rfc3339(*s);
            if (!since) {
                problems.add("query.since", "must be an RFC 3339 timestamp");
            }
        }
        parse_sort(args, problems);
        std::optional<std::string> q;
        if (spec_ != nullptr && spec_->searchable) {
            q = args.get("q");
            if (q && (utf8_length(*q) < 2 || utf8_length(*q) > 200)) {
                problems.add("query.q", "must be between 2 and 200 characters");
            }
            if (q && !sorted_) {
                sorted_ = true;
                key_ = kRankKey;
                tag_ = "rank:desc";
                desc_ = true;
            }
        }
        std::vector<Param> params;
        params.reserve(20);
        params.emplace_back(std::to_string(limit + 1));
        auto c = args.get("cursor");
        if (!sorted_) {
            std::optional<ListCursor> cursor;
            if (c) {
                cursor = decode_list_cursor(*c);
                if (!cursor) {
                    bad_cursor(*c, problems);
                }
            }
            params.emplace_back(cursor ? Param(std::move(cursor->created_at)) : Param());
            params.emplace_back(cursor ? Param(std::move(cursor->id)) : Param());
            params.push_back(std::move(since));
        } else {
            std::optional<SortedCursor> cursor;
            if (c) {
                cursor = decode_sorted_cursor(*c, key_, tag_);
                if (!cursor) {
                    bad_cursor(*c, problems);
                }
            }
            Param value;
            Param id;
            if (cursor) {
                value = std::move(cursor->value);
                id = std::move(cursor->id);
            }
            bool ts = key_.type == KeyType::kTimestamp;
            params.emplace_back(ts ? value : Param());
            params.push_back(std::move(id));
            params.push_back(std::move(since));
            params.emplace_back(std::string(key_.name));
            params.emplace_back(std::string(desc_ ? "desc" : "asc"));
            params.emplace_back(key_.type == KeyType::kText ? value : Param());
            params.emplace_back(key_.type == KeyType::kNumber ? value : Param());
            params.push_back(std::move(q));
        }
        if (filters_ != nullptr) {
            for (Param &p : filters_(args, problems)) {
                params.push_back(std::move(p));
            }
        }
        problems.raise_if_any();
        limit_ = limit;
        return Action::query(sorted_ ? spec_->sorted_stmt : stmt_, std::move(params));
    }

    Action on_rows(Context &, const PGresult *res) override {
        if (sorted_) {
            expect_columns(res, 4 + ncols_);
            int key_col = key_.type == KeyType::kTimestamp ? 1
                          : key_.type == KeyType::kText    ? 2
                                                           : 3;
            SortKey key = key_;
            std::string tag = tag_;
            return Action::respond(list_response(res, limit_, 0, 4, render_, [&](const db::Row &r) {
                return encode_sorted_cursor(key, tag, r.c_str(key_col), r.text(4));
            }));
        }
        expect_columns(res, 1 + ncols_);
        int created = 1 + created_col_;
        return Action::respond(list_response(
            res, limit_, 0, 1, render_,
            [created](const db::Row &r) { return created_at_cursor(r, 1, created); }));
    }

  private:
    static size_t utf8_length(std::string_view s) {
        size_t n = 0;
        for (char ch : s) {
            n += (static_cast<unsigned char>(ch) & 0xC0) != 0x80 ? 1 : 0;
        }
        return n;
    }

    // ?sort=<key>:<asc|desc>; created_at:desc is the plain list.
    void parse_sort(const QueryArgs &args, Problems &problems) {
        if (spec_ == nullptr || spec_->sort_keys.empty()) {
            return;
        }
        auto v = args.get("sort");
        if (!v) {
            return;
        }
        for (const SortKey &k : spec_->sort_keys) {
            for (bool desc : {false, true}) {
                std::string tag = std::string(k.name) + (desc ? ":desc" : ":asc");
                if (*v == tag) {
                    if (tag != kDefaultSortTag) {
                        sorted_ = true;
                        key_ = k;
                        tag_ = std::move(tag);
                        desc_ = desc;
                    }
                    return;
                }
            }
        }
        std::string allowed = "must be one of: ";
        bool first = true;
        for (const SortKey &k : spec_->sort_keys) {
            for (const char *dir : {":asc", ":desc"}) {
                allowed += first ? "" : ", ";
                allowed += std::string(k.name) + dir;
                first = false;
            }
        }
        problems.add("query.sort", allowed);
    }

    // A cursor of another order names it (docs/api.md, "Sorting").
    void bad_cursor(std::string_view cursor, Problems &problems) const {
        std::string current = sorted_ ? tag_ : std::string(kDefaultSortTag);
        std::optional<std::string> issued = sorted_cursor_tag(cursor);
        if (!issued && decode_list_cursor(cursor)) {
            issued = std::string(kDefaultSortTag);
        }
        if (issued && *issued != current) {
            problems.add("query.cursor", "invalid cursor: issued for sort " + *issued);
        } else {
            problems.add("query.cursor", "invalid cursor");
        }
    }

    db::Stmt stmt_;
    int ncols_;
    RenderFn render_;
    int created_col_;
    Filters filters_;
    const ListSpec *spec_;
    int limit_ = kDefaultLimit;
    bool sorted_ = false;
    SortKey key_{"created_at", KeyType::kTimestamp};
    std::string tag_;
    bool desc_ = true;
};

}  // namespace relyloop::core
