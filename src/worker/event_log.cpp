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
        case Level::kInfo: return "info";
        case Level::kWarn: return "warn";
        case Level::kError: return "error";
    }
    return "info";
}

std::string now_rfc3339() {
    auto now = std::chrono::system_clock::now();
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
    time_t secs = static_cast<time_t>(us / 1000000);
    struct tm tm {};
    gmtime_r(&secs, &tm);
    char buf[64];
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%06lld+00:00", static_cast<long long>(us % 1000000));
    return buf;
}

}  // namespace

void EventLog::write(Level level, std::string_view event, std::initializer_list<Field> fields) {
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
        for (const Field &f : fields) {
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
        }
        CString line(json_dumps(obj.get(), JSON_COMPACT | JSON_PRESERVE_ORDER));
        if (!line) {
            return;
        }
        std::lock_guard<std::mutex> lock(mu_);
        fputs(line.get(), out_);
        fputc('\n', out_);
        fflush(out_);
    } catch (...) {
        // Logging must never take a job down (and has nowhere to log its
        // own failure).
    }
}

}  // namespace relyloop::worker
