#include "event_log.hpp"

#include <jansson.h>

#include <chrono>
#include <cmath>
#include <ctime>

#include "common/raii.hpp"
#include "common/redact.hpp"
#include "metrics.hpp"

namespace relyloop::worker {

namespace {

const char *level_name(Level l) {
    switch (l) {
        case Level::kInfo:
            return "info";
        case Level::kWarn:
            return "warn";
        case Level::kError:
            return "error";
    }
    return "info";
}

// Into a caller's buffer: no allocation, usable where an allocation failed.
void format_now(char (&buf)[64]) noexcept {
    auto now = std::chrono::system_clock::now();
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
    time_t secs = static_cast<time_t>(us / 1000000);
    struct tm tm {};
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%06lld+00:00", static_cast<long long>(us % 1000000));
}

std::string now_rfc3339() {
    char buf[64];
    format_now(buf);
    return buf;
}

}  // namespace

void EventLog::write(Level level, std::string_view event, std::initializer_list<Field> fields) {
    write(level, event, std::span<const Field>(), fields);
}

void EventLog::write(Level level, std::string_view event, std::span<const Field> context,
                     std::initializer_list<Field> fields) {
    metrics::observe_event(event, fields);
    try {
        Json obj(json_object());
        if (!obj) {
            return;
        }
        std::string ts = now_rfc3339();
        json_object_set_new(obj.get(), "ts", json_stringn(ts.data(), ts.size()));
        json_object_set_new(obj.get(), "level", json_string(level_name(level)));
        std::string ev = redact(event);
        json_object_set_new(obj.get(), "event", json_stringn(ev.data(), ev.size()));
        auto add = [&](const Field &f) {
            json_t *v = nullptr;
            if (const auto *s = std::get_if<std::string_view>(&f.value)) {
                std::string r = redact(*s);
                v = json_stringn(r.data(), r.size());
            } else if (const auto *i = std::get_if<long long>(&f.value)) {
                v = json_integer(*i);
            } else if (const auto *d = std::get_if<double>(&f.value)) {
                v = std::isfinite(*d) ? json_real(*d) : json_null();
            } else if (const auto *b = std::get_if<bool>(&f.value)) {
                v = json_boolean(*b);
            }
            if (v != nullptr) {
                json_object_set_new(obj.get(), f.key, v);
            }
        };
        for (const Field &f : context) {
            add(f);
        }
        for (const Field &f : fields) {
            add(f);
        }
        CString line(json_dumps(obj.get(), JSON_COMPACT | JSON_PRESERVE_ORDER));
        if (!line) {
            return;
        }
        std::lock_guard<std::mutex> lock(mu_);
        flockfile(out_);  // the fallback line below never lands inside this one
        fputs(line.get(), out_);
        fputc('\n', out_);
        fflush(out_);
        funlockfile(out_);
    } catch (...) {
        // Logging must never take a job down: the one event this can still
        // write is a fixed line, which needs no allocation.
        char ts[64];
        format_now(ts);
        fprintf(out_, "{\"ts\":\"%s\",\"level\":\"error\",\"event\":\"log_line_lost\"}\n", ts);
        fflush(out_);
    }
}

namespace {

constexpr std::array<const char *, 5> kScopeKeys = {"job_id", "proposal_id", "study_id",
                                                    "config_repo_id", "branch"};

}  // namespace

EventScope &EventScope::bind(Key key, const std::string &value) noexcept {
    for (size_t i = 0; i < kKeys; i++) {
        if (key == (1U << i)) {
            values_[i] = &value;
        }
    }
    return *this;
}

void EventScope::write(Level level, std::string_view event, unsigned keys,
                       std::initializer_list<Field> fields) const {
    std::array<Field, kKeys> context;
    size_t n = 0;
    for (size_t i = 0; i < kKeys; i++) {
        if ((keys & (1U << i)) != 0 && values_[i] != nullptr) {
            context[n++] = Field(kScopeKeys[i], *values_[i]);
        }
    }
    log_->write(level, event, std::span<const Field>(context.data(), n), fields);
}

}  // namespace relyloop::worker
