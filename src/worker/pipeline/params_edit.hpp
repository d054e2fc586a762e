#pragma once

// Pipeline steps 6–7 (docs/worker.md): find the params file of a template in a clone and apply a
// proposal's config_diff to it as an in-place text splice.
//
// The edit never re-serializes the document. simdjson's On Demand parser
// reports where every key and value sits in the text; a changed value's token
// is replaced by the new value's JSON text, and a new key is inserted after
// the last member of its object in the file's own style (indentation unit,
// line ending, `": "` spacing). Every other byte stays as it was: key order,
// number spellings such as `1.0`, a trailing newline or its absence. Adding a
// key to an object adds a comma to that object's previous last line — JSON
// leaves no other way.
//
// Error codes (documented in docs/runbook.md):
//   CONFIG_PATH_INVALID   config_path fails the path rules (docs/runbook.md),
//                         a `.git` segment, a template
//                         name unusable as a file name, a path that resolves
//                         outside the clone (directory symlink escaping it), or
//                         the params file itself being a symlink (wherever it
//                         points: the rule is "regular file, not a symlink").
//   PARAMS_FILE_NOT_FOUND no such file or directory, not a regular file, not
//                         valid JSON, duplicate keys, top level not an object,
//                         larger than kMaxParamsFileBytes (4 MiB).
//   PARAM_NOT_IN_TEMPLATE a diff key not declared by the template, without
//                         `to`, or whose `to` does not fit the declared hint
//                         (type, min/max, values); a dotted key whose parent in
//                         the file is not an object; two keys that overlap
//                         (`a` and `a.b`).
//   NO_CHANGES            every `to` already equals the file's value.

#include <jansson.h>

#include <string>
#include <string_view>
#include <vector>

namespace relyloop::worker {

// A `from` that differs from the file's current value (docs/worker.md, step 7: event
// pr_open_param_drift, never blocking). Values as JSON text; `actual` is
// "(absent)" when the file has no such key.
struct ParamDrift {
    std::string param;
    std::string expected;
    std::string actual;
};

struct ParamsEdit {
    std::string text;                  // the new file content
    std::vector<std::string> changed;  // params whose value changed or was added
    std::vector<ParamDrift> drifts;
};

// Checks every config_diff entry against declared_params: declared, has `to`,
// and `to` fits the hint. A hint is a type string ("float", "int", "bool",
// "string", "categorical") or {"type", "min"?, "max"?, "values"?}:
//   float → any JSON number; int → a JSON integer (2.0 is not); bool → true or
//   false; string → a string; categorical → one of `values` (numbers compare by
//   value) or, without `values`, any string, number or boolean.
//   min/max (numbers) bound float and int values inclusively; `values`, when
//   present, restricts every type. Unknown types are rejected.
// Throws Error(kParamNotInTemplate).
void check_config_diff(const json_t *declared_params, const json_t *config_diff);

// check_config_diff, then the splice. A key present literally at the top level
// is set there; otherwise a dotted key walks nested objects, creating the
// missing ones. Throws Error (codes above).
[[nodiscard]] ParamsEdit apply_config_diff(std::string_view original, const json_t *declared_params,
                                           const json_t *config_diff);

struct ParamsFilePath {
    std::string absolute;  // resolved, inside the clone
    std::string relative;  // path inside the repository, for the index
    std::string display;   // "<config_path>/<template>.params.json" for messages
};

// Resolves `<workdir>/<config_path>/<template_name>.params.json` with the
// checks above. Throws Error(kConfigPathInvalid / kParamsFileNotFound).
[[nodiscard]] ParamsFilePath resolve_params_file(const std::string &workdir,
                                                 std::string_view config_path,
                                                 std::string_view template_name);

// The params file is read from the base commit's tree (the exact bytes git
// stores, no checkout filters), never larger than this.
inline constexpr size_t kMaxParamsFileBytes = 4 * 1024 * 1024;

}  // namespace relyloop::worker
