#include "common/analytics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>

namespace relyloop::analytics {

// --- inputs -----------------------------------------------------------------

namespace {

Json parse_json(std::optional<std::string_view> text) {
    if (!text) {
        return Json();
    }
    json_error_t err;
    return Json(json_loadb(text->data(), text->size(), JSON_DECODE_ANY | JSON_ALLOW_NUL, &err));
}

std::optional<double> parse_double(std::optional<std::string_view> text) {
    if (!text) {
        return std::nullopt;
    }
    std::string s(*text);
    char *end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (end == s.c_str() || *end != '\0' || !std::isfinite(v)) {
        return std::nullopt;
    }
    return v;
}

bool is_true(std::optional<std::string_view> text) { return text && *text == "t"; }

Json object_or_empty(std::optional<std::string_view> text) {
    Json j = parse_json(text);
    return json_is_object(j.get()) ? std::move(j) : Json();
}

}  // namespace

StudyInput input_from_columns(std::span<const std::optional<std::string_view>> c) {
    StudyInput in;
    if (c.size() < static_cast<size_t>(kAnalyticsInputCols)) {
        return in;
    }
    in.status = c[0] ? std::string(*c[0]) : std::string();
    in.objective = parse_json(c[1]);
    in.best_metric = parse_double(c[2]);
    in.has_winner = is_true(c[3]);
    // optuna_trial_number is an INTEGER column; anything else is no number
    if (auto n = parse_double(c[4]); n && std::isfinite(*n) && std::fabs(*n) < 9.0e15) {
        in.winner_number = static_cast<long long>(*n);
    }
    in.winner_metric = parse_double(c[5]);
    in.winner_pqm = object_or_empty(c[6]);
    in.has_baseline = is_true(c[7]);
    in.baseline_pqm = object_or_empty(c[8]);
    in.has_runner_up = is_true(c[9]);
    in.runner_up_pqm = object_or_empty(c[10]);
    Json series = parse_json(c[11]);
    for (size_t i = 0; i < json_array_size(series.get()); i++) {
        const json_t *p = json_array_get(series.get(), i);
        const json_t *num = json_array_get(p, 0);
        const json_t *m = json_array_get(p, 1);
        if (json_is_integer(num) && json_is_number(m) && std::isfinite(json_number_value(m))) {
            in.series.push_back(
                {static_cast<long long>(json_integer_value(num)), json_number_value(m)});
        }
    }
    Json queries = parse_json(c[12]);
    if (json_is_object(queries.get())) {
        const char *key = nullptr;
        json_t *value = nullptr;
        json_object_foreach(queries.get(), key, value) {
            if (json_is_string(value)) {
                in.query_texts.emplace(key, json_string_value(value));
            }
        }
    }
    return in;
}

// --- confidence -------------------------------------------------------------

namespace {

struct MetricKey {
    std::string base;   // ndcg, map, precision, recall, mrr
    std::string token;  // the per-query key
    std::optional<long long> k;
    double threshold = 0;
};

std::optional<MetricKey> metric_key(const json_t *objective) {
    if (!json_is_object(objective)) {
        return std::nullopt;
    }
    const json_t *metric = json_object_get(objective, "metric");
    if (!json_is_string(metric)) {
        return std::nullopt;
    }
    MetricKey key;
    key.base = json_string_value(metric);
    const json_t *k = json_object_get(objective, "k");
    if (json_is_integer(k)) {
        key.k = json_integer_value(k);
    }
    if (key.base == "ndcg" || key.base == "precision" || key.base == "recall") {
        static constexpr long long kAllowed[] = {1, 3, 5, 10, 20, 50, 100};
        if (!key.k ||
            std::find(std::begin(kAllowed), std::end(kAllowed), *key.k) == std::end(kAllowed)) {
            return std::nullopt;
        }
        key.token = key.base + "@" + std::to_string(*key.k);
        key.threshold = 0.01;
    } else if (key.base == "map") {
        key.token = key.k ? "map@" + std::to_string(*key.k) : "map";
        key.threshold = 0.02;
    } else if (key.base == "mrr") {
        key.token = "mrr";
        key.threshold = 0.02;
    } else {
        return std::nullopt;
    }
    return key;
}

// The keys of an object in PostgreSQL jsonb order (as jsonb_each yields
// them): shorter keys first, then bytewise.
std::vector<std::string> jsonb_keys(const json_t *obj) {
    std::vector<std::string> keys;
    const char *key = nullptr;
    json_t *value = nullptr;
    json_object_foreach(const_cast<json_t *>(obj), key, value) { keys.emplace_back(key); }
    std::sort(keys.begin(), keys.end(), [](const std::string &a, const std::string &b) {
        if (a.size() != b.size()) return a.size() < b.size();
        return std::memcmp(a.data(), b.data(), a.size()) < 0;
    });
    return keys;
}

// The per-query score of `token` under query id `id`, when numeric.
std::optional<double> score(const json_t *pqm, const char *id, const std::string &token) {
    const json_t *entry = json_object_get(pqm, id);
    if (!json_is_object(entry)) {
        return std::nullopt;
    }
    const json_t *v = json_object_get(entry, token.c_str());
    if (!json_is_number(v) || !std::isfinite(json_number_value(v))) {
        return std::nullopt;
    }
    return json_number_value(v);
}

Json real(double v) { return Json(json_real(v)); }
Json integer(long long v) { return Json(json_integer(v)); }

void set(json_t *obj, const char *key, Json value) {
    json_object_set_new(obj, key, value ? value.release() : json_null());
}

bool has_entries(const Json &pqm) {
    return json_is_object(pqm.get()) && json_object_size(pqm.get()) > 0;
}

Json outcomes(const StudyInput &in, const MetricKey &key) {
    const json_t *comparison = nullptr;
    const char *against = nullptr;
    if (in.has_baseline && has_entries(in.baseline_pqm)) {
        comparison = in.baseline_pqm.get();
        against = "baseline";
    } else if (in.has_runner_up && has_entries(in.runner_up_pqm)) {
        comparison = in.runner_up_pqm.get();
        against = "runner_up";
    }
    if (comparison == nullptr || !has_entries(in.winner_pqm)) {
        return Json();
    }
    struct Row {
        std::string id;
        double winner;
        double other;
        double delta;
    };
    std::vector<Row> rows;
    long long improved = 0;
    long long unchanged = 0;
    long long regressed = 0;
    for (const std::string &id : jsonb_keys(in.winner_pqm.get())) {
        auto w = score(in.winner_pqm.get(), id.c_str(), key.token);
        auto c = score(comparison, id.c_str(), key.token);
        if (!w || !c) {
            continue;
        }
        double delta = *w - *c;
        if (delta > key.threshold) {
            improved++;
        } else if (delta < -key.threshold) {
            regressed++;
        } else {
            unchanged++;
        }
        rows.push_back({id, *w, *c, delta});
    }
    auto top = [&](bool regressors) {
        std::vector<Row> picked;
        for (const Row &r : rows) {
            if (regressors ? r.delta < -key.threshold : r.delta > key.threshold) {
                picked.push_back(r);
            }
        }
        std::stable_sort(picked.begin(), picked.end(), [&](const Row &a, const Row &b) {
            return regressors ? a.delta < b.delta : a.delta > b.delta;
        });
        if (picked.size() > 5) picked.resize(5);
        Json arr(json_array());
        for (const Row &r : picked) {
            auto text = in.query_texts.find(r.id);
            if (text == in.query_texts.end()) {
                continue;
            }
            Json row(json_object());
            set(row.get(), "query_id", Json(json_stringn(r.id.data(), r.id.size())));
            set(row.get(), "query_text",
                Json(json_stringn(text->second.data(), text->second.size())));
            set(row.get(), "winner_score", real(r.winner));
            set(row.get(), "comparison_score", real(r.other));
            set(row.get(), "delta", real(r.delta));
            json_array_append_new(arr.get(), row.release());
        }
        return arr;
    };
    Json out(json_object());
    set(out.get(), "improved", integer(improved));
    set(out.get(), "unchanged", integer(unchanged));
    set(out.get(), "regressed", integer(regressed));
    set(out.get(), "comparison_against", Json(json_string(against)));
    set(out.get(), "top_regressors", top(true));
    set(out.get(), "top_improvers", top(false));
    return out;
}

}  // namespace

Json confidence(const StudyInput &in) {
    if (!in.has_winner || in.series.empty()) {
        return Json();
    }
    std::optional<MetricKey> key = metric_key(in.objective.get());
    if (!key) {
        return Json();
    }
    Json out(json_object());

    // headline
    std::vector<double> values;
    long long n_queries = 0;
    bool winner_has = has_entries(in.winner_pqm);
    if (winner_has) {
        for (const std::string &id : jsonb_keys(in.winner_pqm.get())) {
            if (auto v = score(in.winner_pqm.get(), id.c_str(), key->token)) {
                values.push_back(*v);
                n_queries++;
            }
        }
    }
    Json headline(json_object());
    set(headline.get(), "metric", Json(json_string(key->base.c_str())));
    double value = in.best_metric ? *in.best_metric : in.winner_metric ? *in.winner_metric : 0.0;
    set(headline.get(), "value", real(value));
    set(headline.get(), "k", key->k ? integer(*key->k) : Json());
    set(headline.get(), "n_queries", winner_has ? integer(n_queries) : Json());
    set(out.get(), "headline", std::move(headline));

    // ci_95
    if (values.size() >= 5) {
        Interval ci = bootstrap_ci95(values);
        Json o(json_object());
        set(o.get(), "low", real(ci.low));
        set(o.get(), "high", real(ci.high));
        set(o.get(), "method", Json(json_string("bootstrap_n1000")));
        set(o.get(), "n_samples", integer(static_cast<long long>(values.size())));
        set(out.get(), "ci_95", std::move(o));
    } else {
        set(out.get(), "ci_95", Json());
    }

    // runner_up_gap
    const size_t n = in.series.size();
    if (n >= 2) {
        std::vector<double> m;
        m.reserve(n);
        for (const SeriesPoint &p : in.series) m.push_back(p.metric);
        std::sort(m.begin(), m.end(), std::greater<>());
        double top10 = 0;
        for (size_t i = 0; i < std::min<size_t>(10, n); i++) {
            top10 = std::max(top10, m[0] - m[i]);
        }
        Json o(json_object());
        set(o.get(), "value", real(m[0] - m[1]));
        set(o.get(), "classification",
            Json(json_string(top10 <= 0.005 ? "robust_plateau" : "sharp_peak")));
        set(o.get(), "top10_within", real(top10));
        set(o.get(), "runner_up_metric", real(m[1]));
        set(out.get(), "runner_up_gap", std::move(o));
    } else {
        set(out.get(), "runner_up_gap", Json());
    }

    // late_trial_stddev
    if (n >= 10) {
        size_t window =
            std::max<size_t>(5, static_cast<size_t>(std::floor(static_cast<double>(n) * 0.2)));
        std::vector<double> last;
        for (size_t i = n - window; i < n; i++) last.push_back(in.series[i].metric);
        Json o(json_object());
        set(o.get(), "value", real(sample_stddev(last)));
        set(o.get(), "window_size", integer(static_cast<long long>(window)));
        set(o.get(), "min_window_required", integer(10));
        set(out.get(), "late_trial_stddev", std::move(o));
    } else {
        set(out.get(), "late_trial_stddev", Json());
    }

    // convergence
    const SeriesPoint *winner = nullptr;
    if (in.winner_number) {
        for (const SeriesPoint &p : in.series) {
            if (p.number == *in.winner_number) {
                winner = &p;
                break;
            }
        }
    }
    if (n >= 3 && winner != nullptr) {
        long long max_n = in.series.front().number;
        for (const SeriesPoint &p : in.series) max_n = std::max(max_n, p.number);
        auto big_n = static_cast<double>(max_n);
        auto wn = static_cast<double>(winner->number);
        const char *regime = "noisy";
        if (wn >= 0.9 * big_n) {
            regime = "late_rising";
        } else if (wn <= 0.5 * big_n) {
            for (const SeriesPoint &p : in.series) {
                if (static_cast<double>(p.number) >= 0.75 * big_n &&
                    winner->metric - p.metric <= 0.005) {
                    regime = "early_held";
                    break;
                }
            }
        }
        Json o(json_object());
        set(o.get(), "best_at_trial", integer(winner->number));
        set(o.get(), "total_trials", integer(max_n + 1));
        set(o.get(), "regime", Json(json_string(regime)));
        set(out.get(), "convergence", std::move(o));
    } else {
        set(out.get(), "convergence", Json());
    }

    set(out.get(), "per_query_outcomes", outcomes(in, *key));
    return out;
}

// --- convergence verdict ----------------------------------------------------

Json convergence(const StudyInput &in, bool *invalid_direction) {
    if (invalid_direction != nullptr) *invalid_direction = false;
    if (in.status == "queued" || in.status == "running") {
        return Json();
    }
    bool minimize = false;
    const json_t *dir = json_is_object(in.objective.get())
                            ? json_object_get(in.objective.get(), "direction")
                            : nullptr;
    if (dir != nullptr && !json_is_null(dir)) {
        const char *d = json_string_value(dir);
        if (d != nullptr && std::strcmp(d, "minimize") == 0) {
            minimize = true;
        } else if (d == nullptr || std::strcmp(d, "maximize") != 0) {
            if (invalid_direction != nullptr) *invalid_direction = true;
            return Json();
        }
    }
    const size_t total = in.series.size();
    if (total < 5) {
        return Json();
    }
    std::vector<double> curve;
    curve.reserve(total);
    Json points(json_array());
    double best = in.series.front().metric;
    for (const SeriesPoint &p : in.series) {
        best = minimize ? std::min(best, p.metric) : std::max(best, p.metric);
        curve.push_back(best);
        Json pt(json_object());
        set(pt.get(), "trial_number", integer(p.number));
        set(pt.get(), "best_so_far", real(best));
        json_array_append_new(points.get(), pt.release());
    }
    size_t window = std::min<size_t>(20, std::max<size_t>(5, total / 5));
    double improvement = curve.back() - curve[total - window];
    if (minimize) improvement = -improvement;
    const char *verdict = total < 50             ? "too_few_trials"
                          : improvement <= 0.005 ? "converged"
                                                 : "still_improving";
    Json out(json_object());
    set(out.get(), "verdict", Json(json_string(verdict)));
    set(out.get(), "direction", Json(json_string(minimize ? "minimize" : "maximize")));
    set(out.get(), "window_size", integer(static_cast<long long>(window)));
    set(out.get(), "epsilon", real(0.005));
    set(out.get(), "warmup_floor", integer(50));
    set(out.get(), "total_complete_trials", integer(static_cast<long long>(total)));
    set(out.get(), "improvement_in_window", real(improvement));
    set(out.get(), "best_so_far_curve", std::move(points));
    return out;
}

bool direction_unusable(std::optional<std::string_view> objective) {
    Json o = parse_json(objective);
    const json_t *dir = json_is_object(o.get()) ? json_object_get(o.get(), "direction") : nullptr;
    if (dir == nullptr || json_is_null(dir)) {
        return false;
    }
    const char *d = json_string_value(dir);
    return d == nullptr || (std::strcmp(d, "maximize") != 0 && std::strcmp(d, "minimize") != 0);
}

}  // namespace relyloop::analytics
