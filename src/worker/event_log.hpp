#pragma once

// The worker's structured log (docs/worker.md, "Log"): one JSON object per line on stderr,
// written with jansson under a mutex so lines of concurrent jobs never
// interleave. Every string value passes through redact() first.

#include <cstdio>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <variant>

namespace relyloop::worker {

enum class Level { kInfo, kWarn, kError };

// One "key": value pair of an event. Strings are redacted; numbers and bools
// are written as JSON numbers/bools.
struct Field {
    using Value = std::variant<std::string_view, long long, double, bool>;

    Field(const char *k, std::string_view v) : key(k), value(v) {}
    Field(const char *k, const std::string &v) : key(k), value(std::string_view(v)) {}
    Field(const char *k, const char *v) : key(k), value(std::string_view(v)) {}
    Field(const char *k, long long v) : key(k), value(v) {}
    Field(const char *k, int v) : key(k), value(static_cast<long long>(v)) {}
    Field(const char *k, double v) : key(k), value(v) {}
    Field(const char *k, bool v) : key(k), value(v) {}

    const char *key;
    Value value;
};

class EventLog {
public:
    explicit EventLog(FILE *out = stderr) : out_(out) {}

    // {"ts": "...", "level": "...", "event": "<event>", <fields>...}
    void write(Level level, std::string_view event, std::initializer_list<Field> fields);

    void info(std::string_view event, std::initializer_list<Field> fields = {}) {
        write(Level::kInfo, event, fields);
    }
    void warn(std::string_view event, std::initializer_list<Field> fields = {}) {
        write(Level::kWarn, event, fields);
    }
    void error(std::string_view event, std::initializer_list<Field> fields = {}) {
        write(Level::kError, event, fields);
    }

private:
    FILE *out_;
    std::mutex mu_;
};

}  // namespace relyloop::worker
