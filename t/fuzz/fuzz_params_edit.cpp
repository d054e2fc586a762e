// libFuzzer target: the params-file edit (src/worker/pipeline/params_edit.cpp),
// which splices new values into a file from the config repository.
//
// Input: "<config_diff JSON>\n<file>" — or, when the first byte is '!',
// "!<declared_params JSON>\n<config_diff JSON>\n<file>"; otherwise a fixed
// declared_params with every hint type is used. Properties: the edit either
// throws relyloop::Error (a job failure with a code) or returns a file that
// is valid JSON; anything else aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/error.hpp"
#include "pipeline/json_text.hpp"
#include "pipeline/params_edit.hpp"

using namespace relyloop;
using namespace relyloop::worker;

namespace {

const char kDeclared[] = R"({"title.boost": "float", "tie_breaker": "float", "size": "int",
    "fuzzy": "bool", "operator": {"type": "categorical", "values": ["AND", "OR"]},
    "field_boosts.title": {"type": "float", "min": 0, "max": 10}, "name": "string",
    "a.b.c": "float", "a.b.d": "int", "mode": "categorical"})";

std::string_view take_line(std::string_view &in) {
    size_t nl = in.find('\n');
    std::string_view line = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view in(reinterpret_cast<const char *>(data), size);
    std::string declared_text = kDeclared;
    if (!in.empty() && in[0] == '!') {
        in.remove_prefix(1);
        declared_text = std::string(take_line(in));
    }
    std::string_view diff_text = take_line(in);
    Json declared = json_parse(declared_text);
    Json diff = json_parse(diff_text);
    if (!declared || !diff) return 0;
    ParamsEdit edit;
    try {
        edit = apply_config_diff(in, declared.get(), diff.get());
    } catch (const Error &) {
        return 0;  // a clean job failure with its code
    } catch (const std::exception &e) {
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
        std::abort();
    }
    std::string why;
    Json out = json_parse(edit.text, &why);
    if (!out) {
        std::fprintf(stderr, "edited file is not JSON (%s):\n%s\n", why.c_str(), edit.text.c_str());
        std::abort();
    }
    return 0;
}
