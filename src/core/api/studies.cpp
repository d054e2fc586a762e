// GET /api/v1/studies, GET /api/v1/studies/{id}, GET .../trials,
// POST .../cancel, GET .../digest

#include "api/crud.hpp"
#include "api/validation.hpp"
#include "common/timefmt.hpp"

namespace relyloop::core {

namespace {

constexpr int kCreatedCol = db::layout::study::created_at;

std::vector<Param> list_filters(const QueryArgs &args, Problems &problems) {
    std::vector<Param> f;
    f.push_back(parse_enum_filter(args, "status", kStudyStatuses, problems));
    f.push_back(parse_id_filter(args, "cluster_id", problems));
    auto target = args.get("target");
    if (target && (target->size() > 1024 || [&] {
            size_t n = 0;
            for (char ch : *target) {
                n += (static_cast<unsigned char>(ch) & 0xC0) != 0x80 ? 1 : 0;
            }
            return n > 256;
        }())) {
        problems.add("query.target", "must be at most 256 characters");
        target.reset();
    }
    f.push_back(std::move(target));
    return f;
}

constexpr std::string_view kListParams[] = {"status", "cluster_id", "target", "sort",
                                            "q",      "since",      "limit",  "cursor"};
constexpr SortKey kSortKeys[] = {{"name", KeyType::kText},
                                 {"created_at", KeyType::kTimestamp},
                                 {"completed_at", KeyType::kTimestamp},
                                 {"best_metric", KeyType::kNumber},
                                 {"status", KeyType::kText}};
constexpr ListSpec kListSpec{kListParams, kSortKeys, true, db::Stmt::kStudyListSorted};
constexpr std::string_view kTrialParams[] = {"sort", "since", "limit", "cursor"};

Action study_not_found(const Context &ctx) {
    return Action::not_found(ErrorCode::kStudyNotFound, "Study", ctx.id());
}

db::Stmt trial_statement(TrialSort s) {
    switch (s) {
        case TrialSort::kMetricAsc:
            return db::Stmt::kTrialListMetricAsc;
        case TrialSort::kNumberAsc:
            return db::Stmt::kTrialListNumberAsc;
        case TrialSort::kEndedDesc:
            return db::Stmt::kTrialListEndedDesc;
        case TrialSort::kEndedAsc:
            return db::Stmt::kTrialListEndedAsc;
        case TrialSort::kMetricDesc:
            break;
    }
    return db::Stmt::kTrialListMetricDesc;
}

// ?sort= picks the order; the cursor carries the sort key of that order.
class TrialListHandler : public Handler {
  public:
    TrialListHandler() : Handler(Endpoint::kTrialList) {}

    Action start(Context &ctx) override {
        Problems problems;
        reject_unknown_params(ctx.args(), kTrialParams, problems);
        limit_ = parse_limit(ctx.args(), problems);
        Param since;
        if (auto s = ctx.args().get("since")) {
            since = parse_rfc3339(*s);
            if (!since) {
                problems.add("query.since", "must be an RFC 3339 timestamp");
            }
        }
        bool sort_ok = true;
        if (auto s = ctx.args().get("sort")) {
            auto parsed = parse_trial_sort(*s);
            if (parsed) {
                sort_ = *parsed;
            } else {
                problems.add("query.sort", one_of_reason(kTrialSortNames));
                sort_ok = false;
            }
        }
        std::optional<TrialCursor> cursor;
        if (auto c = ctx.args().get("cursor"); c && sort_ok) {
            cursor = decode_trial_cursor(*c, sort_);
            if (!cursor) {
                problems.add("query.cursor", "invalid cursor");
            }
        }
        problems.raise_if_any();
        Param key;
        Param id;
        if (cursor) {
            key = std::move(cursor->key);
            id = std::move(cursor->id);
        }
        return Action::query(trial_statement(sort_),
                             {ctx.id(), std::to_string(limit_ + 1), std::move(key), std::move(id),
                              std::move(since)});
    }

    // study_found, total, Trial
    Action on_rows(Context &ctx, const PGresult *res) override {
        expect_columns(res, 2 + db::kTrialCols);
        if (PQntuples(res) == 0 || !db::Row(res, 0).boolean_value(0)) {
            return study_not_found(ctx);
        }
        TrialSort sort = sort_;
        return Action::respond(
            list_response(res, limit_, 1, 2, render_trial, [sort](const db::Row &r) {
                // The Trial layout at 2.
                int key_col = sort == TrialSort::kNumberAsc
                                  ? 2 + db::layout::trial::optuna_trial_number
                              : (sort == TrialSort::kEndedDesc || sort == TrialSort::kEndedAsc)
                                  ? 2 + db::layout::trial::ended_at
                                  : 2 + db::layout::trial::primary_metric;
                return encode_trial_cursor(sort, r.c_str(key_col),
                                           r.text(2 + db::layout::trial::id));
            }));
    }

  private:
    int limit_ = kDefaultLimit;
    TrialSort sort_ = TrialSort::kMetricDesc;
};

// queued/running → cancelled with completed_at; anything else is a 409.
class CancelHandler : public Handler {
  public:
    CancelHandler() : Handler(Endpoint::kStudyCancel) {}

    Action start(Context &ctx) override {
        // No body is needed; one that is sent must still be a JSON object.
        (void)parse_body_object(ctx.body(), false);
        return Action::write(db::Stmt::kStudyCancel, {ctx.id()});
    }

    // prior_status, Study
    Action on_rows(Context &ctx, const PGresult *res) override {
        expect_columns(res, 1 + db::kStudyCols);
        db::Row row(res, 0);
        if (PQntuples(res) == 0 || row.null(0)) {
            return study_not_found(ctx);
        }
        if (row.null(1)) {
            // queued/running here means a concurrent request changed it first.
            std::string_view prior = row.text(0);
            bool raced = prior == "queued" || prior == "running";
            return Action::error(
                ErrorCode::kInvalidStateTransition,
                "Study \"" + ctx.id() + "\" is " +
                    (raced ? std::string("no longer queued or running") : std::string(prior)) +
                    "; only queued or running studies can be cancelled");
        }
        return Action::respond(object_response(200, render_study, res, 1));
    }
};

class DigestHandler : public Handler {
  public:
    DigestHandler() : Handler(Endpoint::kDigestGet) {}

    Action start(Context &ctx) override { return Action::query(db::Stmt::kDigestGet, {ctx.id()}); }

    // study_found, study status, Digest
    Action on_rows(Context &ctx, const PGresult *res) override {
        expect_columns(res, 2 + db::kDigestCols);
        db::Row row(res, 0);
        if (PQntuples(res) == 0 || !row.boolean_value(0)) {
            return study_not_found(ctx);
        }
        if (row.text(1) != "completed") {
            return Action::error(ErrorCode::kDigestNotReady,
                                 "study is in status '" + std::string(row.text(1)) +
                                     "'; digest is only available on completed studies");
        }
        if (row.null(2)) {
            return Action::error(ErrorCode::kDigestNotReady,
                                 "digest for study " + ctx.id() + " has not been written yet");
        }
        log_followup_events(ctx, row, 2 + 5);
        return Action::respond(object_response(200, render_digest, res, 2));
    }
};

// GET /studies/{id}: the generic read, plus the log line of a study whose
// objective.direction the convergence verdict cannot use.
class StudyGetHandler : public GetByIdHandler {
  public:
    StudyGetHandler()
        : GetByIdHandler(Endpoint::kStudyGet, db::Stmt::kStudyGet, db::kStudyCols, render_study,
                         ErrorCode::kStudyNotFound, "Study") {}

    Action on_rows(Context &ctx, const PGresult *res) override {
        if (PQntuples(res) > 0 && PQnfields(res) == db::kStudyCols) {
            db::Row row(res, 0);
            const int objective = db::kStudyAnalyticsCol + 1;
            if (!row.null(objective) && analytics::direction_unusable(row.text(objective))) {
                ctx.log(RL_LOG_WARN, "convergence_invalid_direction: study " + ctx.id());
            }
        }
        return GetByIdHandler::on_rows(ctx, res);
    }
};

}  // namespace

std::unique_ptr<Handler> make_study_handler(Endpoint e) {
    switch (e) {
        case Endpoint::kStudyList:
            return std::make_unique<ListHandler>(e, db::Stmt::kStudyList, db::kStudyCols,
                                                 render_study_list_row, kCreatedCol, list_filters,
                                                 &kListSpec);
        case Endpoint::kTrialList:
            return std::make_unique<TrialListHandler>();
        case Endpoint::kStudyCancel:
            return std::make_unique<CancelHandler>();
        case Endpoint::kDigestGet:
            return std::make_unique<DigestHandler>();
        case Endpoint::kStudyGet:
            return std::make_unique<StudyGetHandler>();
        default:
            return std::make_unique<GetByIdHandler>(e, db::Stmt::kStudyGet, db::kStudyCols,
                                                    render_study, ErrorCode::kStudyNotFound,
                                                    "Study");
    }
}

}  // namespace relyloop::core
