#include "common/analytics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>

namespace relyloop::analytics {

namespace {

using u128 = unsigned __int128;

// --- numpy's SeedSequence (pool of 4 uint32 words) -------------------------

constexpr uint32_t kInitA = 0x43b0d7e5;
constexpr uint32_t kMultA = 0x931e8875;
constexpr uint32_t kInitB = 0x8b51f9dd;
constexpr uint32_t kMultB = 0x58f38ded;
constexpr uint32_t kMixMultL = 0xca01f9dd;
constexpr uint32_t kMixMultR = 0x4973f715;
constexpr int kXShift = 16;
constexpr size_t kPoolSize = 4;

uint32_t hashmix(uint32_t value, uint32_t &hash_const) {
    value ^= hash_const;
    hash_const *= kMultA;
    value *= hash_const;
    value ^= value >> kXShift;
    return value;
}

uint32_t mix(uint32_t x, uint32_t y) {
    uint32_t result = kMixMultL * x - kMixMultR * y;
    result ^= result >> kXShift;
    return result;
}

// SeedSequence(entropy).generate_state(words, uint32).
std::vector<uint32_t> seed_sequence_state(uint64_t entropy, size_t words) {
    // An integer entropy becomes its little-endian uint32 words ([0] for 0).
    std::vector<uint32_t> ent;
    if (entropy == 0) {
        ent.push_back(0);
    }
    while (entropy != 0) {
        ent.push_back(static_cast<uint32_t>(entropy & 0xffffffffu));
        entropy >>= 32;
    }
    uint32_t pool[kPoolSize];
    uint32_t hash_const = kInitA;
    for (size_t i = 0; i < kPoolSize; i++) {
        pool[i] = hashmix(i < ent.size() ? ent[i] : 0, hash_const);
    }
    for (size_t src = 0; src < kPoolSize; src++) {
        for (size_t dst = 0; dst < kPoolSize; dst++) {
            if (src != dst) {
                pool[dst] = mix(pool[dst], hashmix(pool[src], hash_const));
            }
        }
    }
    for (size_t src = kPoolSize; src < ent.size(); src++) {
        for (size_t dst = 0; dst < kPoolSize; dst++) {
            pool[dst] = mix(pool[dst], hashmix(ent[src], hash_const));
        }
    }
    std::vector<uint32_t> out(words);
    uint32_t hc = kInitB;
    for (size_t i = 0; i < words; i++) {
        uint32_t v = pool[i % kPoolSize];
        v ^= hc;
        hc *= kMultB;
        v *= hc;
        v ^= v >> kXShift;
        out[i] = v;
    }
    return out;
}

constexpr u128 kPcgMult =
    (static_cast<u128>(2549297995355413924ULL) << 64) | 4865540595714422341ULL;

}  // namespace

// --- PCG64 (XSL-RR 128/64), seeded as numpy does ---------------------------

Pcg64::Pcg64(uint64_t entropy) {
    std::vector<uint32_t> w = seed_sequence_state(entropy, 8);
    uint64_t v[4];
    for (size_t i = 0; i < 4; i++) {
        v[i] = static_cast<uint64_t>(w[2 * i]) | (static_cast<uint64_t>(w[2 * i + 1]) << 32);
    }
    u128 initstate = (static_cast<u128>(v[0]) << 64) | v[1];
    u128 initseq = (static_cast<u128>(v[2]) << 64) | v[3];
    state_ = 0;
    inc_ = (initseq << 1) | 1;
    state_ = state_ * kPcgMult + inc_;
    state_ += initstate;
    state_ = state_ * kPcgMult + inc_;
}

uint64_t Pcg64::next_uint64() noexcept {
    state_ = state_ * kPcgMult + inc_;
    auto hi = static_cast<uint64_t>(state_ >> 64);
    auto lo = static_cast<uint64_t>(state_);
    uint64_t x = hi ^ lo;
    unsigned rot = static_cast<unsigned>(hi >> 58);
    return (x >> rot) | (x << ((64 - rot) & 63));
}

uint32_t Pcg64::next_uint32() noexcept {
    if (has_uint32_) {
        has_uint32_ = false;
        return uinteger_;
    }
    uint64_t next = next_uint64();
    has_uint32_ = true;
    uinteger_ = static_cast<uint32_t>(next >> 32);
    return static_cast<uint32_t>(next & 0xffffffffu);
}

uint64_t Pcg64::bounded(uint64_t n) noexcept {
    if (n <= 1) {
        return 0;
    }
    uint64_t rng = n - 1;
    if (rng == 0xffffffffULL) {
        return next_uint32();
    }
    auto rng_excl = static_cast<uint32_t>(n);
    uint64_t m = static_cast<uint64_t>(next_uint32()) * rng_excl;
    auto leftover = static_cast<uint32_t>(m & 0xffffffffu);
    if (leftover < rng_excl) {
        uint32_t threshold = (UINT32_MAX - static_cast<uint32_t>(rng)) % rng_excl;
        while (leftover < threshold) {
            m = static_cast<uint64_t>(next_uint32()) * rng_excl;
            leftover = static_cast<uint32_t>(m & 0xffffffffu);
        }
    }
    return m >> 32;
}

double pairwise_sum(const double *a, size_t n) noexcept {
    constexpr size_t kBlock = 128;
    if (n < 8) {
        double res = 0.;
        for (size_t i = 0; i < n; i++) {
            res += a[i];
        }
        return res;
    }
    if (n <= kBlock) {
        double r[8];
        for (size_t j = 0; j < 8; j++) {
            r[j] = a[j];
        }
        size_t i = 8;
        for (; i < n - (n % 8); i += 8) {
            for (size_t j = 0; j < 8; j++) {
                r[j] += a[i + j];
            }
        }
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) {
            res += a[i];
        }
        return res;
    }
    size_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

double percentile_linear(std::span<const double> sorted, double q) noexcept {
    size_t n = sorted.size();
    double quantile = q / 100.0;
    double virtual_index = static_cast<double>(n - 1) * quantile;
    double prev = std::floor(virtual_index);
    double gamma = virtual_index - prev;
    auto pi = static_cast<size_t>(prev);
    size_t ni = std::min(pi + 1, n - 1);
    pi = std::min(pi, n - 1);
    double a = sorted[pi];
    double b = sorted[ni];
    double diff = b - a;
    // numpy's _lerp: from the nearer end.
    return gamma >= 0.5 ? b - diff * (1 - gamma) : a + diff * gamma;
}

double sample_stddev(std::span<const double> values) {
    size_t n = values.size();
    double mean = pairwise_sum(values.data(), n) / static_cast<double>(n);
    std::vector<double> sq(n);
    for (size_t i = 0; i < n; i++) {
        double d = values[i] - mean;
        sq[i] = d * d;
    }
    return std::sqrt(pairwise_sum(sq.data(), n) / static_cast<double>(n - 1));
}

std::vector<double> bootstrap_means(std::span<const double> values, int resamples, uint64_t seed) {
    Pcg64 rng(seed);
    size_t n = values.size();
    std::vector<double> row(n);
    std::vector<double> means;
    means.reserve(static_cast<size_t>(resamples));
    for (int r = 0; r < resamples; r++) {
        for (size_t j = 0; j < n; j++) {
            row[j] = values[rng.bounded(n)];
        }
        means.push_back(pairwise_sum(row.data(), n) / static_cast<double>(n));
    }
    return means;
}

Interval bootstrap_ci95(std::span<const double> values) {
    std::vector<double> means = bootstrap_means(values, 1000, 42);
    std::sort(means.begin(), means.end());
    return {percentile_linear(means, 2.5), percentile_linear(means, 97.5)};
}

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

// --- PR body lines ----------------------------------------------------------

std::string fixed3(double v) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.3f", v);
    return buf;
}

namespace {

double num(const json_t *obj, const char *key) {
    return json_number_value(json_object_get(obj, key));
}

// A string member, "" when missing (the objects come from confidence(), so
// this is only a guard).
std::string text(const json_t *obj, const char *key) {
    const char *s = json_string_value(json_object_get(obj, key));
    return s != nullptr ? s : "";
}

std::string query_text_inline(const std::string &s) {
    std::string out;
    for (char c : s) {
        out.push_back(c == '\n' || c == '\r' ? ' ' : c == '`' ? '\'' : c);
    }
    return out;
}

}  // namespace

std::string confidence_lines(const json_t *conf) {
    std::string out;
    if (!json_is_object(conf)) {
        return out;
    }
    const json_t *headline = json_object_get(conf, "headline");
    const json_t *ci = json_object_get(conf, "ci_95");
    if (json_is_object(headline) && json_is_object(ci)) {
        std::string label = text(headline, "metric");
        const json_t *k = json_object_get(headline, "k");
        if (json_is_integer(k)) {
            label += "@" + std::to_string(json_integer_value(k));
        }
        const json_t *nq = json_object_get(headline, "n_queries");
        long long n = json_is_integer(nq) ? json_integer_value(nq)
                                          : json_integer_value(json_object_get(ci, "n_samples"));
        out += "- " + label + ": " + fixed3(num(headline, "value")) + " (95% CI " +
               fixed3(num(ci, "low")) + "-" + fixed3(num(ci, "high")) + ", N=" + std::to_string(n) +
               " queries)\n";
    }
    const json_t *pq = json_object_get(conf, "per_query_outcomes");
    if (json_is_object(pq)) {
        long long r = json_integer_value(json_object_get(pq, "regressed"));
        out += "- Queries: " + std::to_string(json_integer_value(json_object_get(pq, "improved"))) +
               " improved \u00b7 " +
               std::to_string(json_integer_value(json_object_get(pq, "unchanged"))) +
               " unchanged \u00b7 " + std::to_string(r) + " regressed (vs " +
               text(pq, "comparison_against") + ")\n";
        const json_t *rows = json_object_get(pq, "top_regressors");
        if (r > 0 && json_array_size(rows) > 0) {
            out += "- Queries that regressed: ";
            for (size_t i = 0; i < json_array_size(rows); i++) {
                const json_t *row = json_array_get(rows, i);
                if (i > 0) out += " \u00b7 ";
                out += "`" + query_text_inline(text(row, "query_text")) + "` (" +
                       fixed3(num(row, "comparison_score")) + " \u2192 " +
                       fixed3(num(row, "winner_score")) + ")";
            }
            out += "\n";
        }
    }
    const json_t *gap = json_object_get(conf, "runner_up_gap");
    if (json_is_object(gap)) {
        out += "- Runner-up gap " + fixed3(num(gap, "value")) + " (" + text(gap, "classification") +
               ")\n";
    }
    const json_t *late = json_object_get(conf, "late_trial_stddev");
    if (json_is_object(late)) {
        out += "- Late-trial 1\u03c3 = " + fixed3(num(late, "value")) + "\n";
    }
    const json_t *conv = json_object_get(conf, "convergence");
    if (json_is_object(conv)) {
        out += "- Convergence: " + text(conv, "regime") + " (best at trial " +
               std::to_string(json_integer_value(json_object_get(conv, "best_at_trial"))) + " of " +
               std::to_string(json_integer_value(json_object_get(conv, "total_trials"))) + ")\n";
    }
    return out;
}

}  // namespace relyloop::analytics
