#include "common/followups.hpp"

#include <cctype>
#include <cmath>
#include <set>

#include "common/json_writer.hpp"
#include "common/redact.hpp"

namespace relyloop::followups {

namespace {

constexpr double kMaxCardinality = 1'000'000;
constexpr size_t kMaxReason = 400;

const std::set<std::string, std::less<>> kSteps = {"lowercase",
                                                   "trim",
                                                   "collapse_whitespace",
                                                   "strip_punctuation",
                                                   "expand_contractions_en",
                                                   "expand_contractions_custom"};

struct Invalid {
    std::string reason;
};

// Throws Invalid unless every key of `o` is one of `allowed`.
void only_keys(const json_t *o, std::initializer_list<std::string_view> allowed,
               const std::string &where) {
    const char *key = nullptr;
    json_t *v = nullptr;
    json_object_foreach(const_cast<json_t *>(o), key, v) {
        bool ok = false;
        for (std::string_view a : allowed) {
            ok = ok || a == key;
        }
        if (!ok) {
            throw Invalid{where + ": unknown field '" + key + "'"};
        }
    }
}

bool is_number(const json_t *v) { return json_is_integer(v) || json_is_real(v); }

double number(const json_t *v) { return json_number_value(v); }

// An integer: a JSON integer, or a real with no fraction.
bool integral(const json_t *v, long long *out) {
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) {
            *out = static_cast<long long>(d);
            return true;
        }
    }
    return false;
}

std::string json_repr(const json_t *v) { return json::dump(v); }

// One parameter spec → its normalised form and cardinality.
Json param_spec(const std::string &name, const json_t *spec, double *cardinality) {
    std::string where = "search_space.params." + name;
    if (!json_is_object(spec)) {
        throw Invalid{where + ": not an object"};
    }
    const json_t *type = json_object_get(spec, "type");
    if (!json_is_string(type)) {
        throw Invalid{where + ": type missing"};
    }
    std::string_view t = json_string_value(type);
    Json out(json_object());
    json_object_set_new(out.get(), "type", json_string(json_string_value(type)));
    if (t == "float") {
        only_keys(spec, {"type", "low", "high", "log"}, where);
        const json_t *lo = json_object_get(spec, "low");
        const json_t *hi = json_object_get(spec, "high");
        const json_t *lg = json_object_get(spec, "log");
        if (!is_number(lo) || !is_number(hi)) {
            throw Invalid{where + ": low and high must be numbers"};
        }
        if (lg != nullptr && !json_is_boolean(lg)) {
            throw Invalid{where + ": log must be a boolean"};
        }
        bool log = lg != nullptr && json_is_true(lg);
        if (!(number(lo) < number(hi))) {
            throw Invalid{where + ": low must be below high"};
        }
        if (log && !(number(lo) > 0)) {
            throw Invalid{where + ": log scale needs low > 0"};
        }
        json_object_set_new(out.get(), "low", json_real(number(lo)));
        json_object_set_new(out.get(), "high", json_real(number(hi)));
        json_object_set_new(out.get(), "log", json_boolean(log));
        *cardinality *= 100;
    } else if (t == "int") {
        only_keys(spec, {"type", "low", "high"}, where);
        long long lo = 0;
        long long hi = 0;
        if (!integral(json_object_get(spec, "low"), &lo) ||
            !integral(json_object_get(spec, "high"), &hi)) {
            throw Invalid{where + ": low and high must be integers"};
        }
        if (lo > hi) {
            throw Invalid{where + ": low must not exceed high"};
        }
        json_object_set_new(out.get(), "low", json_integer(lo));
        json_object_set_new(out.get(), "high", json_integer(hi));
        *cardinality *= static_cast<double>(hi) - static_cast<double>(lo) + 1;
    } else if (t == "categorical") {
        only_keys(spec, {"type", "choices"}, where);
        const json_t *choices = json_object_get(spec, "choices");
        if (!json_is_array(choices) || json_array_size(choices) == 0) {
            throw Invalid{where + ": choices must be a non-empty array"};
        }
        for (size_t i = 0; i < json_array_size(choices); i++) {
            const json_t *c = json_array_get(choices, i);
            if (!json_is_string(c) && !is_number(c) && !json_is_boolean(c)) {
                throw Invalid{where + ": choices must be strings, numbers or booleans"};
            }
        }
        json_object_set_new(out.get(), "choices", json_deep_copy(choices));
        *cardinality *= static_cast<double>(json_array_size(choices));
    } else if (t == "normalizer_pipeline") {
        only_keys(spec, {"type", "steps"}, where);
        const json_t *steps = json_object_get(spec, "steps");
        if (!json_is_array(steps) || json_array_size(steps) == 0) {
            throw Invalid{where + ": steps must be a non-empty array"};
        }
        std::set<std::string> seen;
        for (size_t i = 0; i < json_array_size(steps); i++) {
            const json_t *s = json_array_get(steps, i);
            if (!json_is_string(s) || kSteps.count(json_string_value(s)) == 0) {
                throw Invalid{where + ": unknown step " + json_repr(s)};
            }
            if (!seen.insert(json_string_value(s)).second) {
                throw Invalid{where + ": duplicate step " + json_repr(s)};
            }
        }
        json_object_set_new(out.get(), "steps", json_deep_copy(steps));
        *cardinality *= std::pow(2.0, static_cast<double>(json_array_size(steps)));
    } else {
        throw Invalid{where + ": unknown type '" + std::string(t) + "'"};
    }
    return out;
}

Json search_space(const json_t *ss) {
    if (!json_is_object(ss)) {
        throw Invalid{"search_space: not an object"};
    }
    only_keys(ss, {"params"}, "search_space");
    const json_t *params = json_object_get(ss, "params");
    if (!json_is_object(params) || json_object_size(params) == 0) {
        throw Invalid{"search_space.params: needs at least one parameter"};
    }
    Json out_params(json_object());
    double cardinality = 1;
    const char *key = nullptr;
    json_t *spec = nullptr;
    json_object_foreach(const_cast<json_t *>(params), key, spec) {
        json_object_set_new(out_params.get(), key, param_spec(key, spec, &cardinality).release());
    }
    if (cardinality > kMaxCardinality) {
        throw Invalid{"search_space: cardinality above 1000000"};
    }
    Json out(json_object());
    json_object_set_new(out.get(), "params", out_params.release());
    return out;
}

Json valid_item(const json_t *o) {
    const json_t *kind = json_object_get(o, "kind");
    if (!json_is_string(kind)) {
        throw Invalid{"kind missing"};
    }
    std::string_view k = json_string_value(kind);
    const json_t *rationale = json_object_get(o, "rationale");
    if (!json_is_string(rationale)) {
        throw Invalid{"rationale must be a string"};
    }
    Json out(json_object());
    json_object_set_new(out.get(), "kind", json_string(json_string_value(kind)));
    json_object_set_new(out.get(), "rationale", json_string(json_string_value(rationale)));
    if (k == "text") {
        only_keys(o, {"kind", "rationale", "search_space"}, "text");
        const json_t *ss = json_object_get(o, "search_space");
        if (ss != nullptr && !json_is_null(ss)) {
            throw Invalid{"text: search_space must be null"};
        }
        json_object_set_new(out.get(), "search_space", json_null());
    } else if (k == "narrow" || k == "widen") {
        only_keys(o, {"kind", "rationale", "search_space"}, std::string(k));
        json_object_set_new(out.get(), "search_space",
                            search_space(json_object_get(o, "search_space")).release());
    } else if (k == "swap_template") {
        only_keys(o, {"kind", "rationale", "template_id", "search_space"}, "swap_template");
        const json_t *tid = json_object_get(o, "template_id");
        if (!json_is_string(tid) || json_string_length(tid) != 36) {
            throw Invalid{"swap_template: template_id must be a string of 36 characters"};
        }
        json_object_set_new(out.get(), "template_id", json_string(json_string_value(tid)));
        json_object_set_new(out.get(), "search_space",
                            search_space(json_object_get(o, "search_space")).release());
    } else {
        throw Invalid{"unknown kind '" + std::string(k) + "'"};
    }
    return out;
}

Json text_item(const std::string &rationale) {
    Json out(json_object());
    json_object_set_new(out.get(), "kind", json_string("text"));
    json_object_set_new(out.get(), "rationale", json_stringn(rationale.data(), rationale.size()));
    json_object_set_new(out.get(), "search_space", json_null());
    return out;
}

// A reason of at most kMaxReason bytes: head…tail, redacted before the cut
// (a token cut in its middle would match no pattern any more).
std::string clip(const std::string &raw) {
    const std::string s = redact(raw);
    if (s.size() <= kMaxReason) {
        return s;
    }
    const std::string dots = "\xe2\x80\xa6";
    size_t keep = (kMaxReason - dots.size()) / 2;
    size_t head = keep;
    while (head > 0 && (static_cast<unsigned char>(s[head]) & 0xc0) == 0x80) {
        head--;
    }
    size_t tail = s.size() - keep;
    while (tail < s.size() && (static_cast<unsigned char>(s[tail]) & 0xc0) == 0x80) {
        tail++;
    }
    return s.substr(0, head) + dots + s.substr(tail);
}

bool blank(const char *s) {
    for (; *s != '\0'; s++) {
        if (std::isspace(static_cast<unsigned char>(*s)) == 0) {
            return false;
        }
    }
    return true;
}

void note(std::vector<Event> *events, const char *event, std::string detail) {
    if (events != nullptr) {
        events->push_back(Event{event, std::move(detail)});
    }
}

std::string number_text(const json_t *v) { return json_repr(v); }

std::string choice_text(const json_t *v) {
    return json_is_string(v) ? std::string(json_string_value(v)) : json_repr(v);
}

std::string params_text(const json_t *ss) {
    std::string out;
    const char *name = nullptr;
    json_t *spec = nullptr;
    json_object_foreach(json_object_get(ss, "params"), name, spec) {
        if (!out.empty()) {
            out += ", ";
        }
        std::string_view type = json_string_value(json_object_get(spec, "type"));
        out += "`" + std::string(name) + "` ";
        if (type == "float" || type == "int") {
            out += "[" + number_text(json_object_get(spec, "low")) + ", " +
                   number_text(json_object_get(spec, "high")) + "]";
            if (json_is_true(json_object_get(spec, "log"))) {
                out += " log";
            }
        } else {
            bool steps = type == "normalizer_pipeline";
            const json_t *list = json_object_get(spec, steps ? "steps" : "choices");
            out += steps ? "steps {" : "{";
            for (size_t i = 0; i < json_array_size(list); i++) {
                out += (i == 0 ? "" : ", ") + choice_text(json_array_get(list, i));
            }
            out += "}";
        }
    }
    return out;
}

}  // namespace

Json parse(std::string_view stored, bool is_null, std::vector<Event> *events) {
    Json out(json_array());
    if (is_null) {
        return out;
    }
    json_error_t err;
    Json top(json_loadb(stored.data(), stored.size(), JSON_DECODE_ANY, &err));
    if (!json_is_array(top.get())) {
        note(events, "digest_followups_top_level_malformed", "suggested_followups is not an array");
        return out;
    }
    for (size_t i = 0; i < json_array_size(top.get()); i++) {
        const json_t *item = json_array_get(top.get(), i);
        if (json_is_string(item)) {
            json_array_append_new(out.get(), text_item(json_string_value(item)).release());
            continue;
        }
        if (!json_is_object(item)) {
            note(events, "digest_followup_dropped",
                 "item " + std::to_string(i) + " is not an object");
            continue;
        }
        try {
            json_array_append_new(out.get(), valid_item(item).release());
        } catch (const Invalid &bad) {
            const json_t *r = json_object_get(item, "rationale");
            if (json_is_string(r) && !blank(json_string_value(r))) {
                std::string reason = clip(bad.reason);
                json_array_append_new(out.get(), text_item("[validation failed: " + reason + "] " +
                                                           json_string_value(r))
                                                     .release());
                note(events, "digest_followup_validation_downgraded",
                     "item " + std::to_string(i) + ": " + reason);
            } else {
                note(events, "digest_followup_dropped",
                     "item " + std::to_string(i) + ": " + clip(bad.reason));
            }
        }
    }
    return out;
}

std::string parse_to_json(std::string_view stored, bool is_null, std::vector<Event> *events) {
    Json items = parse(stored, is_null, events);
    return json::dump(items.get());
}

std::string pr_line(const json_t *item) {
    std::string kind = json_string_value(json_object_get(item, "kind"));
    std::string rationale = json_string_value(json_object_get(item, "rationale"));
    if (kind == "text") {
        return rationale;
    }
    const json_t *ss = json_object_get(item, "search_space");
    if (kind == "swap_template") {
        return "**swap_template:** " + rationale + " (template `" +
               json_string_value(json_object_get(item, "template_id")) + "`; " + params_text(ss) +
               ")";
    }
    return "**" + kind + ":** " + rationale + " (" + params_text(ss) + ")";
}

}  // namespace relyloop::followups
