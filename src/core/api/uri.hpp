#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace relyloop::core {

// Percent-decodes s into out. '+' becomes a space when plus_is_space (query
// strings only). Fails on a malformed escape, a decoded NUL, or bytes that
// are not valid UTF-8: such text can never name a row and must never reach
// PostgreSQL as a text parameter.
[[nodiscard]] bool percent_decode(std::string_view s, bool plus_is_space, std::string &out);

// The query string of a request ("a=1&b=x%20y"). Unknown parameters are
// simply never asked for; a parameter given twice takes its last value.
class QueryArgs {
  public:
    QueryArgs() = default;
    explicit QueryArgs(std::string_view raw) : raw_(raw) {}

    // The decoded value, or nullopt when the parameter is absent or empty
    // (the UI sends "?status=&cluster_id=" for unset filters). A value that
    // does not decode is a VALIDATION_ERROR "query.<name>: invalid encoding".
    [[nodiscard]] std::optional<std::string> get(std::string_view name) const;

    // The decoded names of the parameters given, each once, in order; a name
    // that does not decode is left out (it can name no known parameter).
    [[nodiscard]] std::vector<std::string> names() const;

  private:
    std::string raw_;
};

}  // namespace relyloop::core
