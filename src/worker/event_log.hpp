#pragma once

// The worker's structured log (docs/worker.md, "Log"): one JSON object per line on stderr,
// written with jansson under a mutex so lines of concurrent jobs never
// interleave. Every string value passes through redact() first.

#include <array>
#include <cstdio>
#include <initializer_list>
#include <mutex>
#include <span>
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
    Field() : key(""), value(std::string_view()) {}

    const char *key;
    Value value;
};

class EventLog {
  public:
    explicit EventLog(FILE *out = stderr) : out_(out) {}

    // {"ts": "...", "level": "...", "event": "<event>", <fields>...}
    void write(Level level, std::string_view event, std::initializer_list<Field> fields);
    // The same, with `context` (an EventScope's identity fields) written
    // before `fields`. Metrics look at `fields` only.
    void write(Level level, std::string_view event, std::span<const Field> context,
               std::initializer_list<Field> fields);

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

// One job's identity on the log (docs/worker.md, "Log"): the strings are bound
// once, when the job's state is set up, and read at each event, so a value
// filled in later (the study, the branch) is seen by every later event. Each
// event names which of them it carries; they are always written first, in
// the order of Key, then the event's own fields.
class EventScope {
  public:
    enum Key : unsigned {
        kJob = 1U << 0,       // "job_id"
        kProposal = 1U << 1,  // "proposal_id"
        kStudy = 1U << 2,     // "study_id"
        kRepo = 1U << 3,      // "config_repo_id"
        kBranch = 1U << 4,    // "branch"
    };
    static constexpr unsigned kIds = kJob | kProposal;
    static constexpr unsigned kIdsRepo = kJob | kProposal | kRepo;
    static constexpr unsigned kAll = kJob | kProposal | kStudy | kRepo | kBranch;

    explicit EventScope(EventLog &log) noexcept : log_(&log) {}

    // `value` must outlive the scope (bind members of the same object).
    EventScope &bind(Key key, const std::string &value) noexcept;
    void rebind(EventLog &log) noexcept { log_ = &log; }
    [[nodiscard]] EventLog &log() const noexcept { return *log_; }

    void write(Level level, std::string_view event, unsigned keys,
               std::initializer_list<Field> fields) const;
    void info(std::string_view event, unsigned keys,
              std::initializer_list<Field> fields = {}) const {
        write(Level::kInfo, event, keys, fields);
    }
    void warn(std::string_view event, unsigned keys,
              std::initializer_list<Field> fields = {}) const {
        write(Level::kWarn, event, keys, fields);
    }
    void error(std::string_view event, unsigned keys,
               std::initializer_list<Field> fields = {}) const {
        write(Level::kError, event, keys, fields);
    }

  private:
    static constexpr size_t kKeys = 5;
    EventLog *log_;
    std::array<const std::string *, kKeys> values_{};
};

}  // namespace relyloop::worker
