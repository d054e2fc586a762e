#include "pipeline/params_edit.hpp"

#include <simdjson.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "common/error.hpp"
#include "common/json_writer.hpp"
#include "common/raii.hpp"
#include "common/strings.hpp"
#include "common/validate.hpp"
#include "pipeline/json_text.hpp"

namespace relyloop::worker {

namespace {

[[noreturn]] void fail(ErrorCode code, const std::string &message) { throw Error(code, message); }

// ---------------------------------------------------------------------------
// Type checks (step 7)

// The hint's type name, trimmed and lower-cased, with upstream RelyLoop's
// aliases folded (docs/upstream-schema.md): "number"/"double" are "float",
// "integer" is "int", "boolean" is "bool".
std::string hint_type(std::string_view raw) {
    std::string t = ascii_lower(trim_ascii_space(raw));
    if (t == "number" || t == "double") return "float";
    if (t == "integer") return "int";
    if (t == "boolean") return "bool";
    return t;
}

void check_one(const std::string &param, const json_t *hint, const json_t *to) {
    std::string type;
    const json_t *min = nullptr;
    const json_t *max = nullptr;
    const json_t *values = nullptr;
    if (json_is_string(hint)) {
        type = hint_type(json_string_value(hint));
    } else if (json_is_object(hint)) {
        const json_t *t = json_object_get(hint, "type");
        // A type that is not a string is never an error: the value is unchecked.
        type = json_is_string(t) ? hint_type(json_string_value(t)) : std::string();
        min = json_object_get(hint, "min");
        max = json_object_get(hint, "max");
        values = json_object_get(hint, "values");
        if (min != nullptr && json_is_null(min)) min = nullptr;
        if (max != nullptr && json_is_null(max)) max = nullptr;
        if (values != nullptr && json_is_null(values)) values = nullptr;
    } else {
        fail(ErrorCode::kParamNotInTemplate,
             "param " + json::quote(param) + " has an unusable declaration " + json_text(hint));
    }

    auto mismatch = [&](const char *want) {
        fail(ErrorCode::kParamNotInTemplate, "param " + json::quote(param) + " is declared " +
                                                 type + " but the proposal sets " + json_text(to) +
                                                 " (" + want + " expected)");
    };
    if (type == "float") {
        if (!json_is_number(to)) mismatch("a number");
    } else if (type == "int") {
        if (!json_is_integer(to)) mismatch("an integer");
    } else if (type == "bool") {
        if (!json_is_boolean(to)) mismatch("true or false");
    } else if (type == "string") {
        if (!json_is_string(to)) mismatch("a string");
    } else if (type == "categorical") {
        if (values == nullptr && !json_is_string(to) && !json_is_number(to) &&
            !json_is_boolean(to)) {
            mismatch("a string, number or boolean");
        }
    } else {
        // Any other type name (upstream: free-form): unchecked.
        return;
    }

    if (type == "float" || type == "int") {
        double v = json_number_value(to);
        if (min != nullptr && json_is_number(min) && v < json_number_value(min)) {
            fail(ErrorCode::kParamNotInTemplate, "param " + json::quote(param) + " = " +
                                                     json_text(to) + " is below the declared min " +
                                                     json_text(min));
        }
        if (max != nullptr && json_is_number(max) && v > json_number_value(max)) {
            fail(ErrorCode::kParamNotInTemplate, "param " + json::quote(param) + " = " +
                                                     json_text(to) + " is above the declared max " +
                                                     json_text(max));
        }
    }
    if (values != nullptr) {
        if (!json_is_array(values)) {
            fail(ErrorCode::kParamNotInTemplate,
                 "param " + json::quote(param) + " declares `values` that are not a list");
        }
        bool found = false;
        for (size_t i = 0; i < json_array_size(values) && !found; i++) {
            found = json_same_value(json_array_get(values, i), to);
        }
        if (!found) {
            fail(ErrorCode::kParamNotInTemplate,
                 "param " + json::quote(param) + " = " + json_text(to) +
                     " is not one of the declared values " + json_text(values));
        }
    }
}

// ---------------------------------------------------------------------------
// Where things are in the text (simdjson On Demand)

struct Member {
    std::string key;
    size_t key_pos = 0;      // the opening quote
    size_t key_end = 0;      // one past the closing quote
    size_t value_start = 0;  // first byte of the value
    size_t value_end = 0;    // one past the last byte of the value
    int child = -1;          // index of the object this value is, if one
};

struct ObjectSpan {
    size_t open = 0;   // '{'
    size_t close = 0;  // '}'
    std::vector<Member> members;
};

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

size_t trimmed_end(const std::string &text, size_t start, size_t len) {
    size_t end = start + len;
    while (end > start && is_ws(text[end - 1])) {
        end--;
    }
    return end;
}

size_t key_end_from(const std::string &text, size_t quote) {
    for (size_t i = quote + 1; i < text.size(); i++) {
        if (text[i] == '\\') {
            i++;
        } else if (text[i] == '"') {
            return i + 1;
        }
    }
    return text.size();
}

class Indexer {
  public:
    Indexer(const std::string &text, const simdjson::padded_string &padded)
        : text_(text), base_(padded.data()) {}

    std::vector<ObjectSpan> objects;

    void bad(simdjson::error_code e) {
        fail(ErrorCode::kParamsFileNotFound,
             std::string("is not valid JSON (") + simdjson::error_message(e) + ")");
    }

    int index(simdjson::ondemand::object obj, size_t open) {
        int self = static_cast<int>(objects.size());
        objects.push_back(ObjectSpan{});
        objects[self].open = open;
        std::vector<Member> members;
        for (auto field_result : obj) {
            simdjson::ondemand::field field;
            if (auto e = std::move(field_result).get(field)) bad(e);
            Member m;
            // The raw key points just past its opening quote; read it before
            // unescaped_key(), which consumes it.
            m.key_pos = static_cast<size_t>(field.key().raw() - base_) - 1;
            m.key_end = key_end_from(text_, m.key_pos);
            std::string_view key;
            if (auto e = field.unescaped_key().get(key)) bad(e);
            m.key = std::string(key);
            simdjson::ondemand::value value = field.value();
            std::string_view token = value.raw_json_token();
            m.value_start = static_cast<size_t>(token.data() - base_);
            simdjson::ondemand::json_type type;
            if (auto e = value.type().get(type)) bad(e);
            if (type == simdjson::ondemand::json_type::object) {
                simdjson::ondemand::object child;
                if (auto e = value.get_object().get(child)) bad(e);
                m.child = index(child, m.value_start);
                m.value_end = objects[m.child].close + 1;
            } else if (type == simdjson::ondemand::json_type::array) {
                simdjson::ondemand::array arr;
                if (auto e = value.get_array().get(arr)) bad(e);
                std::string_view raw;
                if (auto e = arr.raw_json().get(raw)) bad(e);
                m.value_end = trimmed_end(text_, m.value_start, raw.size());
            } else {
                // The token runs up to the next structural character, so it
                // carries the whitespace that follows the value.
                m.value_end = trimmed_end(text_, m.value_start, token.size());
            }
            members.push_back(std::move(m));
        }
        size_t pos = members.empty() ? open + 1 : members.back().value_end;
        while (pos < text_.size() && text_[pos] != '}') {
            if (!is_ws(text_[pos]) && text_[pos] != ',') {
                fail(ErrorCode::kParamsFileNotFound, "is not valid JSON (unexpected text)");
            }
            pos++;
        }
        if (pos >= text_.size()) {
            fail(ErrorCode::kParamsFileNotFound, "is not valid JSON (unterminated object)");
        }
        objects[self].close = pos;
        objects[self].members = std::move(members);
        return self;
    }

  private:
    const std::string &text_;
    const char *base_;
};

// ---------------------------------------------------------------------------
// The file's own style

struct Style {
    std::string nl = "\n";
    std::string unit = "  ";
    std::string colon = ": ";
    std::string comma = " ";  // between "," and the next key on one line
    bool multiline = true;
};

// The whitespace before `pos` on its line, and whether only whitespace
// precedes it there.
std::pair<std::string, bool> line_prefix(const std::string &text, size_t pos) {
    size_t ls = 0;
    if (pos > 0) {
        size_t nl = text.rfind('\n', pos - 1);
        ls = nl == std::string::npos ? 0 : nl + 1;
    }
    std::string prefix = text.substr(ls, pos - ls);
    bool own =
        std::all_of(prefix.begin(), prefix.end(), [](char c) { return c == ' ' || c == '\t'; });
    return {prefix, own};
}

std::string line_indent(const std::string &text, size_t pos) {
    auto [prefix, own] = line_prefix(text, pos);
    size_t n = 0;
    while (n < prefix.size() && (prefix[n] == ' ' || prefix[n] == '\t')) {
        n++;
    }
    return prefix.substr(0, n);
}

Style detect_style(const std::string &text, const std::vector<ObjectSpan> &objects) {
    Style s;
    size_t first_nl = text.find('\n');
    if (first_nl != std::string::npos && first_nl > 0 && text[first_nl - 1] == '\r') {
        s.nl = "\r\n";
    }
    const ObjectSpan &root = objects.front();
    size_t nl_in_root = text.find('\n', root.open);
    s.multiline = (nl_in_root != std::string::npos && nl_in_root < root.close) ||
                  (root.members.empty() && first_nl != std::string::npos);
    bool colon_found = false;
    bool unit_found = false;
    bool comma_found = false;
    for (const ObjectSpan &o : objects) {
        for (size_t i = 0; i < o.members.size(); i++) {
            const Member &m = o.members[i];
            if (!colon_found) {
                std::string c = text.substr(m.key_end, m.value_start - m.key_end);
                if (c.find('\n') == std::string::npos) {
                    s.colon = c;
                    colon_found = true;
                }
            }
            if (!unit_found) {
                auto [prefix, own] = line_prefix(text, m.key_pos);
                std::string container = line_indent(text, o.open);
                if (own && prefix.size() > container.size() &&
                    prefix.compare(0, container.size(), container) == 0) {
                    s.unit = prefix.substr(container.size());
                    unit_found = true;
                }
            }
            if (!comma_found && i > 0) {
                size_t comma = text.find(',', o.members[i - 1].value_end);
                if (comma != std::string::npos && comma < m.key_pos) {
                    std::string gap = text.substr(comma + 1, m.key_pos - comma - 1);
                    if (gap.find('\n') == std::string::npos) {
                        s.comma = gap;
                        comma_found = true;
                    }
                }
            }
        }
    }
    if (!comma_found) {
        // Nothing to copy: follow the colon ("a":1 → compact, "a": 1 → spaced).
        s.comma = !s.colon.empty() && s.colon.back() == ' ' ? " " : "";
    }
    return s;
}

// ---------------------------------------------------------------------------
// The plan: replacements of existing values, insertions of new keys

struct NewNode {
    std::string key;
    const json_t *value = nullptr;  // null → an object made of `children`
    std::vector<NewNode> children;
};

struct Splice {
    size_t start;
    size_t end;
    std::string text;
};

std::string render_object(const std::vector<NewNode> &nodes, const std::string &indent,
                          const Style &style);

std::string render_member(const NewNode &n, const std::string &indent, const Style &style) {
    std::string out = json::quote(n.key) + style.colon;
    out += n.value != nullptr ? json_text(n.value) : render_object(n.children, indent, style);
    return out;
}

// A new object value whose member line is indented by `indent`.
std::string render_object(const std::vector<NewNode> &nodes, const std::string &indent,
                          const Style &style) {
    std::string out = "{";
    if (!style.multiline) {
        for (size_t i = 0; i < nodes.size(); i++) {
            if (i > 0) out += "," + style.comma;
            out += render_member(nodes[i], indent, style);
        }
        return out + "}";
    }
    std::string inner = indent + style.unit;
    for (size_t i = 0; i < nodes.size(); i++) {
        out += (i > 0 ? "," : "") + style.nl + inner + render_member(nodes[i], inner, style);
    }
    return out + style.nl + indent + "}";
}

void add_path(std::vector<NewNode> &nodes, const std::vector<std::string> &path, size_t from,
              const json_t *value, const std::string &param) {
    const std::string &key = path[from];
    auto it =
        std::find_if(nodes.begin(), nodes.end(), [&](const NewNode &n) { return n.key == key; });
    bool last = from + 1 == path.size();
    if (it == nodes.end()) {
        nodes.push_back(NewNode{key, nullptr, {}});
        it = nodes.end() - 1;
        if (last) {
            it->value = value;
            return;
        }
    } else if (last || it->value != nullptr) {
        fail(ErrorCode::kParamNotInTemplate,
             "param " + json::quote(param) + " overlaps another param of the proposal");
    }
    add_path(it->children, path, from + 1, value, param);
}

std::vector<std::string> split_dotted(const std::string &key) {
    std::vector<std::string> out;
    size_t start = 0;
    for (;;) {
        size_t dot = key.find('.', start);
        out.push_back(
            key.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
    for (const std::string &seg : out) {
        if (seg.empty()) return {key};  // "a..b", ".a": only ever a literal key
    }
    return out;
}

const Member *find_member(const ObjectSpan &o, const std::string &key) {
    // With duplicates rejected up front there is at most one.
    for (const Member &m : o.members) {
        if (m.key == key) return &m;
    }
    return nullptr;
}

bool is_prefix(const std::vector<std::string> &a, const std::vector<std::string> &b) {
    return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

}  // namespace

void check_config_diff(const json_t *declared_params, const json_t *config_diff) {
    if (!json_is_object(config_diff)) {
        fail(ErrorCode::kParamNotInTemplate, "config_diff is not an object of {from, to} entries");
    }
    if (!json_is_object(declared_params)) {
        fail(ErrorCode::kParamNotInTemplate, "the template declares no params");
    }
    const char *param = nullptr;
    json_t *entry = nullptr;
    json_object_foreach(const_cast<json_t *>(config_diff), param, entry) {
        const json_t *hint = json_object_get(declared_params, param);
        if (hint == nullptr) {
            fail(ErrorCode::kParamNotInTemplate,
                 "param " + json::quote(param) + " is not declared by the template");
        }
        const json_t *to = json_is_object(entry) ? json_object_get(entry, "to") : nullptr;
        if (to == nullptr) {
            fail(ErrorCode::kParamNotInTemplate,
                 "param " + json::quote(param) + " has no `to` value in config_diff");
        }
        check_one(param, hint, to);
    }
}

ParamsEdit apply_config_diff(std::string_view original, const json_t *declared_params,
                             const json_t *config_diff) {
    check_config_diff(declared_params, config_diff);

    // A 0-byte params file is an empty object (as upstream RelyLoop reads it).
    std::string text(original.empty() ? std::string_view("{}") : original);
    std::string why;
    Json doc = json_parse(text, &why, JSON_REJECT_DUPLICATES);
    if (!doc) {
        fail(ErrorCode::kParamsFileNotFound, "is not valid JSON: " + why);
    }
    if (!json_is_object(doc.get())) {
        fail(ErrorCode::kParamsFileNotFound, std::string("holds a JSON ") +
                                                 (json_is_array(doc.get()) ? "array" : "scalar") +
                                                 ", not an object");
    }

    simdjson::padded_string padded(text);
    simdjson::ondemand::parser parser;
    simdjson::ondemand::document sdoc;
    if (auto e = parser.iterate(padded).get(sdoc)) {
        fail(ErrorCode::kParamsFileNotFound,
             std::string("is not valid JSON (") + simdjson::error_message(e) + ")");
    }
    simdjson::ondemand::object root;
    if (auto e = sdoc.get_object().get(root)) {
        fail(ErrorCode::kParamsFileNotFound,
             std::string("is not valid JSON (") + simdjson::error_message(e) + ")");
    }
    size_t open = 0;
    while (open < text.size() && text[open] != '{') open++;
    Indexer indexer(text, padded);
    indexer.index(root, open);
    const std::vector<ObjectSpan> &objects = indexer.objects;
    Style style = detect_style(text, objects);

    ParamsEdit result;
    std::vector<Splice> splices;
    std::vector<std::pair<int, std::vector<NewNode>>> inserts;  // per object index
    std::vector<std::vector<std::string>> targets;

    const char *param = nullptr;
    json_t *entry = nullptr;
    json_object_foreach(const_cast<json_t *>(config_diff), param, entry) {
        const std::string key(param);
        const json_t *to = json_object_get(entry, "to");
        const json_t *from = json_object_get(entry, "from");

        std::vector<std::string> path = json_object_get(doc.get(), param) != nullptr
                                            ? std::vector<std::string>{key}
                                            : split_dotted(key);
        for (const auto &other : targets) {
            if (is_prefix(other, path) || is_prefix(path, other)) {
                fail(ErrorCode::kParamNotInTemplate,
                     "param " + json::quote(key) + " overlaps another param of the proposal");
            }
        }
        targets.push_back(path);

        // Walk the decoded document and the text index side by side.
        int obj = 0;
        const json_t *cur = doc.get();
        const Member *target = nullptr;
        size_t depth = 0;
        for (; depth < path.size(); depth++) {
            const Member *m = find_member(objects[obj], path[depth]);
            if (m == nullptr) break;
            const json_t *val = json_object_get(cur, path[depth].c_str());
            if (depth + 1 == path.size()) {
                target = m;
                cur = val;
                break;
            }
            if (m->child < 0 || !json_is_object(val)) {
                fail(ErrorCode::kParamNotInTemplate,
                     "param " + json::quote(key) + " cannot be set: " + json::quote(path[depth]) +
                         " in the params file is not an object");
            }
            obj = m->child;
            cur = val;
        }
        const json_t *current = target != nullptr ? cur : nullptr;

        if (from != nullptr && !json_same_value(from, current)) {
            result.drifts.push_back(ParamDrift{
                key, json_text(from), current != nullptr ? json_text(current) : "(absent)"});
        }
        if (current != nullptr && json_same_value(current, to)) {
            continue;
        }
        result.changed.push_back(key);
        if (target != nullptr) {
            splices.push_back(Splice{target->value_start, target->value_end, json_text(to)});
            continue;
        }
        auto it = std::find_if(inserts.begin(), inserts.end(),
                               [&](const auto &p) { return p.first == obj; });
        if (it == inserts.end()) {
            inserts.emplace_back(obj, std::vector<NewNode>{});
            it = inserts.end() - 1;
        }
        add_path(it->second, path, depth, to, key);
    }

    if (result.changed.empty()) {
        fail(ErrorCode::kNoChanges, "the params file already holds every value of the proposal");
    }

    for (const auto &[obj_index, nodes] : inserts) {
        const ObjectSpan &o = objects[obj_index];
        if (!o.members.empty()) {
            const Member &last = o.members.back();
            auto [prefix, own] = line_prefix(text, last.key_pos);
            std::string add;
            for (const NewNode &n : nodes) {
                if (own && style.multiline) {
                    add += "," + style.nl + prefix + render_member(n, prefix, style);
                } else {
                    Style inline_style = style;
                    inline_style.multiline = false;
                    add += "," + style.comma + render_member(n, prefix, inline_style);
                }
            }
            splices.push_back(Splice{last.value_end, last.value_end, add});
        } else {
            // An empty object: rewritten whole, as a new one would be.
            splices.push_back(Splice{o.open, o.close + 1,
                                     render_object(nodes, line_indent(text, o.open), style)});
        }
    }

    std::sort(splices.begin(), splices.end(), [](const Splice &a, const Splice &b) {
        return a.start != b.start ? a.start < b.start : a.end < b.end;
    });
    for (size_t i = 1; i < splices.size(); i++) {
        if (splices[i - 1].end > splices[i].start) {
            fail(ErrorCode::kInternalError, "params edit: overlapping edits");
        }
    }
    std::string out = text;
    for (auto it = splices.rbegin(); it != splices.rend(); ++it) {
        out.replace(it->start, it->end - it->start, it->text);
    }

    // The splice must leave a valid document: never commit a broken file.
    Json check = json_parse(out, &why, JSON_REJECT_DUPLICATES);
    if (!check || !json_is_object(check.get())) {
        fail(ErrorCode::kInternalError, "params edit produced invalid JSON: " + why);
    }
    result.text = std::move(out);
    return result;
}

// ---------------------------------------------------------------------------
// The file

namespace {

bool inside(const std::string &path, const std::string &root) {
    return path == root || (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
                            path[root.size()] == '/');
}

std::string real_path(const std::string &p) {
    char buf[PATH_MAX];
    return realpath(p.c_str(), buf) != nullptr ? std::string(buf) : std::string();
}

}  // namespace

ParamsFilePath resolve_params_file(const std::string &workdir, std::string_view config_path,
                                   std::string_view template_name) {
    std::string cp(config_path);
    if (!valid_config_path(config_path)) {
        fail(ErrorCode::kConfigPathInvalid,
             "config_path " + json::quote(cp) + " is not a safe relative path");
    }
    {
        size_t start = 0;
        for (;;) {
            size_t slash = cp.find('/', start);
            std::string seg =
                cp.substr(start, slash == std::string::npos ? cp.npos : slash - start);
            if (seg == ".git") {
                fail(ErrorCode::kConfigPathInvalid,
                     "config_path " + json::quote(cp) + " points into the .git directory");
            }
            if (slash == std::string::npos) break;
            start = slash + 1;
        }
    }
    if (!valid_stored_template_name(template_name)) {
        fail(ErrorCode::kConfigPathInvalid,
             "template name " + json::quote(template_name) + " cannot be used as a file name");
    }
    ParamsFilePath out;
    out.display = std::string(strip_trailing_slashes(cp, 1)) + "/" + std::string(template_name) +
                  ".params.json";

    std::string root = real_path(workdir);
    if (root.empty()) {
        fail(ErrorCode::kInternalError, "the clone directory is missing");
    }
    std::string dir = real_path(root + "/" + cp);
    if (dir.empty()) {
        fail(ErrorCode::kParamsFileNotFound, out.display + ": no such file (directory " +
                                                 json::quote(cp) + " not in the repository)");
    }
    if (!inside(dir, root)) {
        fail(ErrorCode::kConfigPathInvalid,
             "config_path " + json::quote(cp) + " resolves outside the repository (symlink?)");
    }
    if (inside(dir, root + "/.git")) {
        fail(ErrorCode::kConfigPathInvalid,
             "config_path " + json::quote(cp) + " points into the .git directory");
    }
    out.absolute = dir + "/" + std::string(template_name) + ".params.json";
    struct stat st {};
    if (lstat(out.absolute.c_str(), &st) != 0) {
        fail(ErrorCode::kParamsFileNotFound, out.display + ": no such file in the repository");
    }
    if (S_ISLNK(st.st_mode)) {
        fail(ErrorCode::kConfigPathInvalid,
             out.display + " is a symlink; the params file must be a regular file");
    }
    if (!S_ISREG(st.st_mode)) {
        fail(ErrorCode::kParamsFileNotFound, out.display + " is not a regular file");
    }
    out.relative = out.absolute.substr(root.size() + 1);
    return out;
}

}  // namespace relyloop::worker
