#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "common/json_writer.hpp"
#include "common/raii.hpp"
#include "common/timefmt.hpp"
#include "db/rows.hpp"

using namespace relyloop;
using namespace relyloop::core;

namespace {

std::string dbl(double v) {
    std::string s;
    json::write_double(s, v);
    return s;
}

std::string roundtrip(const char *text) {
    json_error_t err;
    Json j(json_loads(text, JSON_DECODE_ANY, &err));
    EXPECT_TRUE(j) << err.text;
    return json::dump(j.get());
}

}  // namespace

TEST(JsonWriter, DoublesAreShortestRoundTripInPythonReprLayout) {
    EXPECT_EQ(dbl(0.487), "0.487");
    EXPECT_EQ(dbl(0.412), "0.412");
    EXPECT_EQ(dbl(1.0), "1.0");
    EXPECT_EQ(dbl(2.5), "2.5");
    EXPECT_EQ(dbl(18.2), "18.2");
    EXPECT_EQ(dbl(100.0), "100.0");
    EXPECT_EQ(dbl(0.1 + 0.2), "0.30000000000000004");
    EXPECT_EQ(dbl(0.0001), "0.0001");
    EXPECT_EQ(dbl(0.00001), "1e-05");
    EXPECT_EQ(dbl(2.5e-7), "2.5e-07");
    EXPECT_EQ(dbl(1e15), "1000000000000000.0");
    EXPECT_EQ(dbl(1e16), "1e+16");
    EXPECT_EQ(dbl(1.5e300), "1.5e+300");
    EXPECT_EQ(dbl(-3.25), "-3.25");
    EXPECT_EQ(dbl(0.0), "0.0");
    EXPECT_EQ(dbl(-0.0), "-0.0");
    EXPECT_EQ(dbl(123456.789), "123456.789");
}

TEST(JsonWriter, NonFiniteDoublesBecomeNull) {
    EXPECT_EQ(dbl(std::numeric_limits<double>::quiet_NaN()), "null");
    EXPECT_EQ(dbl(std::numeric_limits<double>::infinity()), "null");
    EXPECT_EQ(dbl(-std::numeric_limits<double>::infinity()), "null");
}

TEST(JsonWriter, DoublesReadBackExactly) {
    for (double v :
         {0.1, 1.0 / 3.0, 123.456e-20, 9007199254740993.0, 5e-324, 1.7976931348623157e308}) {
        std::string s = dbl(v);
        EXPECT_EQ(std::strtod(s.c_str(), nullptr), v) << s;
    }
}

TEST(JsonWriter, StringsAreEscaped) {
    std::string s;
    json::write_string(s, "a\"b\\c\n\t\r\b\f\x01\x1f/é€😀");
    EXPECT_EQ(s, "\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f/é€😀\"");
}

TEST(JsonWriter, CompactOutputKeepsInsertionOrder) {
    EXPECT_EQ(roundtrip(R"({ "z": 1, "a": [true, false, null], "m": {"x": "y"}, "r": 0.5 })"),
              R"({"z":1,"a":[true,false,null],"m":{"x":"y"},"r":0.5})");
    EXPECT_EQ(roundtrip("[]"), "[]");
    EXPECT_EQ(roundtrip("{}"), "{}");
    EXPECT_EQ(roundtrip("-9223372036854775807"), "-9223372036854775807");
    EXPECT_EQ(roundtrip("\"x\""), "\"x\"");
}

TEST(JsonWriter, OutputParsesBackToTheSameTree) {
    const char *text = R"({"a":{"b":[1,2.25,"\u00e9\"",{"c":null}]},"d":-0.001})";
    std::string out = roundtrip(text);
    json_error_t err;
    Json a(json_loads(text, 0, &err));
    Json b(json_loads(out.c_str(), 0, &err));
    ASSERT_TRUE(b);
    EXPECT_TRUE(json_equal(a.get(), b.get()));
}

TEST(Utf8, ValidatesStrictly) {
    EXPECT_TRUE(json::valid_utf8(""));
    EXPECT_TRUE(json::valid_utf8("plain ascii"));
    EXPECT_TRUE(json::valid_utf8("é€😀"));
    EXPECT_FALSE(json::valid_utf8("\xff"));
    EXPECT_FALSE(json::valid_utf8("\xc3"));              // truncated
    EXPECT_FALSE(json::valid_utf8("\xc0\xaf"));          // overlong '/'
    EXPECT_FALSE(json::valid_utf8("\xe0\x80\xaf"));      // overlong
    EXPECT_FALSE(json::valid_utf8("\xed\xa0\x80"));      // surrogate
    EXPECT_FALSE(json::valid_utf8("\xf4\x90\x80\x80"));  // > U+10FFFF
    EXPECT_FALSE(json::valid_utf8("a\x80"));
}

TEST(Utf8, LengthCountsCodePoints) {
    EXPECT_EQ(json::utf8_length(""), 0u);
    EXPECT_EQ(json::utf8_length("abc"), 3u);
    EXPECT_EQ(json::utf8_length("é€😀"), 3u);
}

TEST(Quote, QuotesForLogsAndMasksInvalidBytes) {
    EXPECT_EQ(json::quote("a \"b\""), "\"a \\\"b\\\"\"");
    EXPECT_EQ(json::quote("x\xffy"), "\"x?y\"");
}

TEST(CompactJson, DropsWhitespaceOutsideStringsOnly) {
    std::string out;
    ASSERT_TRUE(json::append_compact(
        out,
        "{\"a b\": \"x  y\", \"n\": [1.0, 0.30, 1e20, 123456789012345678901234567890],\n"
        " \"e\": \"q\\\" \\\\ \", \"t\": true}"));
    EXPECT_EQ(out,
              "{\"a b\":\"x  y\",\"n\":[1.0,0.30,1e20,123456789012345678901234567890],"
              "\"e\":\"q\\\" \\\\ \",\"t\":true}");
    json_error_t err;
    Json j(json_loads(out.c_str(), JSON_DECODE_INT_AS_REAL, &err));
    EXPECT_TRUE(j) << err.text;
    std::string bad;
    EXPECT_FALSE(json::append_compact(bad, "\"\xff\""));
    EXPECT_EQ(bad, "");
}

TEST(Timestamps, FastPathMatchesTheSharedConversion) {
    for (const char *pg :
         {"2026-05-11 20:13:43.123456+00", "2026-05-11 20:13:43.1+00", "2026-05-11 20:13:43+00",
          "1999-12-31 23:59:59.999999+00", "2026-05-11 20:13:43+05:30", "2026-05-11 20:13:43.5-03",
          "infinity", "-infinity", "2026-05-11 20:13:43.1234567+00", "12026-05-11 20:13:43+00"}) {
        std::string fast;
        db::append_timestamp(fast, pg);
        std::string slow;
        json::write_string(slow, pg_timestamp_to_rfc3339(pg));
        EXPECT_EQ(fast, slow) << pg;
    }
}

TEST(RowWriter, NestedObjectsAndNulls) {
    PgResult res(PQmakeEmptyPGresult(nullptr, PGRES_TUPLES_OK));
    char name[] = "c";
    PGresAttDesc attrs[6] = {};
    for (auto &a : attrs) {
        a.name = name;
        a.typid = 25;
        a.typlen = -1;
    }
    ASSERT_TRUE(PQsetResultAttrs(res.get(), 6, attrs));
    const char *vals[6] = {"x\"y", nullptr, "42", "NaN", "{\"k\": [1, 2]}", "t"};
    for (int i = 0; i < 6; i++) {
        ASSERT_TRUE(PQsetvalue(res.get(), 0, i, const_cast<char *>(vals[i] ? vals[i] : ""),
                               vals[i] ? static_cast<int>(strlen(vals[i])) : -1));
    }
    db::Row row(res.get(), 0);
    std::string out;
    db::RowWriter w(out, row);
    w.open().str("s", 0).str("n", 1).object("o").integer("i", 2).real("r", 3).close();
    w.jsonb("j", 4).literal("l", "[]").null("z");
    row.append_boolean(w.key("b"), 5);
    w.close();
    EXPECT_EQ(
        out,
        R"({"s":"x\"y","n":null,"o":{"i":42,"r":null},"j":{"k":[1,2]},"l":[],"z":null,"b":true})");
}

TEST(RowWriter, InvalidUtf8TextIsReplaced) {
    PgResult res(PQmakeEmptyPGresult(nullptr, PGRES_TUPLES_OK));
    char name[] = "c";
    PGresAttDesc attr = {};
    attr.name = name;
    attr.typid = 25;
    attr.typlen = -1;
    ASSERT_TRUE(PQsetResultAttrs(res.get(), 1, &attr));
    char v[] =
        "a\xff"
        "b";
    ASSERT_TRUE(PQsetvalue(res.get(), 0, 0, v, 3));
    std::string out;
    db::Row(res.get(), 0).append_string(out, 0);
    EXPECT_EQ(out,
              "\"a\xef\xbf\xbd"
              "b\"");
}
