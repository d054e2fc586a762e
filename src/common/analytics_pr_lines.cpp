// The PR body's Confidence lines (common/analytics.hpp, confidence_lines): text
// rendered from the confidence object, for the worker's PR body.

#include <cstdio>
#include <string>

#include "common/analytics.hpp"

namespace relyloop::analytics {

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
