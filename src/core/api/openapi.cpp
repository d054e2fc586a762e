// GET /api/v1/openapi.json

#include "api/openapi.hpp"

#include <stdexcept>

#include "api/crud.hpp"
#include "common/json_writer.hpp"
#include "relyloop/version.hpp"

namespace relyloop::core {

namespace {

std::string build_body() {
    std::string text = openapi_template();
    const std::string placeholder = "@VERSION@";
    size_t pos = text.find(placeholder);
    if (pos != std::string::npos) {
        text.replace(pos, placeholder.size(), kVersion);
    }
    json_error_t err;
    Json doc(json_loadb(text.data(), text.size(), JSON_REJECT_DUPLICATES, &err));
    if (!doc) {
        throw std::logic_error(std::string("embedded openapi document: ") + err.text);
    }
    return json::dump(doc.get());
}

class OpenapiHandler : public Handler {
  public:
    OpenapiHandler() : Handler(Endpoint::kOpenapi) {}

    Action start(Context &) override {
        Response r;
        r.status = 200;
        r.body = openapi_body();
        return Action::respond(std::move(r));
    }
};

}  // namespace

const std::string &openapi_body() {
    static const std::string body = build_body();
    return body;
}

std::unique_ptr<Handler> make_openapi_handler() { return std::make_unique<OpenapiHandler>(); }

}  // namespace relyloop::core
