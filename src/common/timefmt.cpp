#include "common/timefmt.hpp"

#include <cctype>
#include <cstdio>

namespace relyloop {

namespace {

bool digits(std::string_view s, size_t pos, size_t n) {
    if (pos + n > s.size()) {
        return false;
    }
    for (size_t i = pos; i < pos + n; i++) {
        if (!std::isdigit(static_cast<unsigned char>(s[i]))) {
            return false;
        }
    }
    return true;
}

int num(std::string_view s, size_t pos, size_t n) {
    int v = 0;
    for (size_t i = pos; i < pos + n; i++) {
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(int y, int m) {
    static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : kDays[m - 1];
}

bool valid_date_time(std::string_view s) {
    int y = num(s, 0, 4), mo = num(s, 5, 2), d = num(s, 8, 2);
    int h = num(s, 11, 2), mi = num(s, 14, 2), se = num(s, 17, 2);
    return y >= 1 && mo >= 1 && mo <= 12 && d >= 1 && d <= days_in_month(y, mo) && h <= 23 &&
           mi <= 59 && se <= 59;
}

// "YYYY-MM-DD?HH:MM:SS" at the start of s.
bool date_time_prefix(std::string_view s) {
    return digits(s, 0, 4) && s[4] == '-' && digits(s, 5, 2) && s[7] == '-' && digits(s, 8, 2) &&
           digits(s, 11, 2) && s[13] == ':' && digits(s, 14, 2) && s[16] == ':' && digits(s, 17, 2);
}

constexpr int kMaxOffsetHours = 15;

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
long long days_from_civil(int y, int m, int d) {
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void civil_from_days(long long z, int &y, int &m, int &d) {
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
    m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
    y = static_cast<int>(yoe + era * 400 + (m <= 2));
}

}  // namespace

bool append_pg_timestamp_rfc3339(std::string &out, std::string_view pg) {
    if (pg.size() < 22 || pg[10] != ' ' || !date_time_prefix(pg)) {
        return false;
    }
    size_t pos = 19;
    size_t frac = 0;
    if (pg[pos] == '.') {
        pos++;
        while (pos < pg.size() && std::isdigit(static_cast<unsigned char>(pg[pos]))) {
            pos++;
        }
        frac = pos - 20;
    }
    if (frac > 6) {
        return false;
    }
    // Offset: "+00", "+05:30" or "+05:30:15"; UTC sessions print "+00".
    if (pos >= pg.size() || (pg[pos] != '+' && pg[pos] != '-') || !digits(pg, pos + 1, 2)) {
        return false;
    }
    size_t off = pos;
    pos += 3;
    bool off_minutes = pos < pg.size() && pg[pos] == ':' && digits(pg, pos + 1, 2);
    if (off_minutes) {
        pos += 3;
    }
    if (pos != pg.size()) {
        return false;
    }
    out.append(pg.data(), 10);
    out.push_back('T');
    out.append(pg.data() + 11, 8);
    out.push_back('.');
    out.append(pg.data() + 20, frac);
    out.append(6 - frac, '0');
    out.append(pg.data() + off, off_minutes ? 6 : 3);
    if (!off_minutes) {
        out += ":00";
    }
    return true;
}

std::string pg_timestamp_to_rfc3339(std::string_view pg) {
    std::string out;
    if (!append_pg_timestamp_rfc3339(out, pg)) {
        out.assign(pg);
    }
    return out;
}

std::optional<std::string> parse_rfc3339(std::string_view s) {
    if (s.size() < 20 || !date_time_prefix(s)) {
        return std::nullopt;
    }
    char sep = s[10];
    if (sep != 'T' && sep != 't' && sep != ' ') {
        return std::nullopt;
    }
    if (!valid_date_time(s)) {
        return std::nullopt;
    }
    size_t pos = 19;
    std::string_view frac;
    if (s[pos] == '.') {
        size_t start = pos;
        pos++;
        while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
            pos++;
        }
        size_t n = pos - start - 1;
        if (n == 0 || n > 9) {
            return std::nullopt;
        }
        frac = s.substr(start, pos - start);
    }
    if (pos >= s.size()) {
        return std::nullopt;
    }
    char z = s[pos];
    int offset = 0;  // minutes east of UTC
    if ((z == 'Z' || z == 'z') && pos + 1 == s.size()) {
        offset = 0;
    } else {
        if (z != '+' && z != '-' && z != ' ') {
            return std::nullopt;
        }
        // PostgreSQL takes offsets up to 15:59 (docs/api.md, "Timestamps").
        if (pos + 6 != s.size() || !digits(s, pos + 1, 2) || s[pos + 3] != ':' ||
            !digits(s, pos + 4, 2) || num(s, pos + 1, 2) > kMaxOffsetHours ||
            num(s, pos + 4, 2) > 59) {
            return std::nullopt;
        }
        offset = num(s, pos + 1, 2) * 60 + num(s, pos + 4, 2);
        if (z == '-') {
            offset = -offset;
        }
    }
    // Normalised to UTC; the instant must still fall in years 1..9999.
    long long days = days_from_civil(num(s, 0, 4), num(s, 5, 2), num(s, 8, 2));
    long long minute = days * 1440 + num(s, 11, 2) * 60 + num(s, 14, 2) - offset;
    days = minute >= 0 ? minute / 1440 : -((-minute + 1439) / 1440);
    int min_of_day = static_cast<int>(minute - days * 1440);
    int y = 0, mo = 0, d = 0;
    civil_from_days(days, y, mo, d);
    if (y < 1 || y > 9999) {
        return std::nullopt;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:", y, mo, d, min_of_day / 60,
                  min_of_day % 60);
    std::string out(buf);
    out.append(s.substr(17, 2));
    out.append(frac);
    out += "+00:00";
    return out;
}

}  // namespace relyloop
