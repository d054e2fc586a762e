#include <gtest/gtest.h>

#include <string>

#include "api/pagination.hpp"
#include "api/uri.hpp"
#include "common/error.hpp"

using namespace relyloop;
using namespace relyloop::core;

namespace {

template <typename F>
std::string failure(F &&f) {
    try {
        f();
    } catch (const Error &e) {
        return e.what();
    }
    return "";
}

int limit_of(const char *args, std::string *message = nullptr) {
    Problems p;
    int l = parse_limit(QueryArgs(args), p);
    if (message != nullptr) {
        *message = p.empty() ? "" : p.message();
    }
    return l;
}

}  // namespace

TEST(Base64Url, RoundTripsEveryLength) {
    std::string bytes;
    for (int i = 0; i < 40; i++) {
        EXPECT_EQ(base64url_decode(base64url_encode(bytes)), bytes);
        bytes.push_back(static_cast<char>(i * 37 + 200));
    }
    EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
    EXPECT_EQ(base64url_encode("hello"), "aGVsbG8");
}

TEST(Base64Url, DecodingIsStrict) {
    EXPECT_FALSE(base64url_decode("aGVsbG8="));  // padding
    EXPECT_FALSE(base64url_decode("aGVs bG8"));
    EXPECT_FALSE(base64url_decode("+/8"));      // standard alphabet
    EXPECT_FALSE(base64url_decode("a"));        // impossible length
    EXPECT_FALSE(base64url_decode("aGVsbG9"));  // non-canonical trailing bits
    EXPECT_TRUE(base64url_decode(""));
}

TEST(ListCursor, RoundTrips) {
    std::string c = encode_list_cursor("2026-05-11T20:13:43.123456+00:00", "0196c0de-0000-7000");
    auto d = decode_list_cursor(c);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->created_at, "2026-05-11T20:13:43.123456+00:00");
    EXPECT_EQ(d->id, "0196c0de-0000-7000");
    EXPECT_EQ(*base64url_decode(c), R"(["2026-05-11T20:13:43.123456+00:00","0196c0de-0000-7000"])");
    // Ids with JSON specials survive.
    d = decode_list_cursor(encode_list_cursor("2026-05-11T20:13:43+00:00", "a\"b\\c"));
    ASSERT_TRUE(d);
    EXPECT_EQ(d->id, "a\"b\\c");
}

TEST(ListCursor, TamperedCursorsAreRejected) {
    auto enc = [](const char *json) { return base64url_encode(json); };
    const std::string bad[] = {
        "not base64!",
        "",
        enc("not json"),
        enc("{}"),
        enc("[]"),
        enc(R"(["2026-05-11T20:13:43+00:00"])"),
        enc(R"(["2026-05-11T20:13:43+00:00","a","b"])"),
        enc(R"([1,"a"])"),
        enc(R"(["2026-05-11T20:13:43+00:00",1])"),
        enc(R"(["2026-02-30T00:00:00+00:00","a"])"),
        enc(R"(["yesterday","a"])"),
        enc(R"(["2026-05-11T20:13:43+00:00",""])"),
        enc((R"(["2026-05-11T20:13:43+00:00",")" + std::string(129, 'x') + "\"]").c_str()),
        enc(R"(["2026-05-11T20:13:43+00:00","a"] x)"),
        std::string(2000, 'A'),
    };
    for (const std::string &c : bad) {
        EXPECT_FALSE(decode_list_cursor(c)) << c;
    }
}

TEST(TrialCursor, MetricSortsCarryTheMetricText) {
    auto c = decode_trial_cursor(encode_trial_cursor(TrialSort::kMetricDesc, "0.487", "t1"),
                                 TrialSort::kMetricDesc);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->key, "0.487");
    EXPECT_EQ(c->id, "t1");
    c = decode_trial_cursor(encode_trial_cursor(TrialSort::kMetricAsc, nullptr, "t2"),
                            TrialSort::kMetricAsc);
    ASSERT_TRUE(c);
    EXPECT_FALSE(c->key);  // a NULL metric
    c = decode_trial_cursor(encode_trial_cursor(TrialSort::kMetricDesc, "NaN", "t3"),
                            TrialSort::kMetricDesc);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->key, "NaN");
}

TEST(TrialCursor, NumberSortCarriesTheNumber) {
    auto c = decode_trial_cursor(encode_trial_cursor(TrialSort::kNumberAsc, "17", "t1"),
                                 TrialSort::kNumberAsc);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->key, "17");
}

TEST(TrialCursor, ACursorOfAnotherSortIsRejected) {
    std::string c = encode_trial_cursor(TrialSort::kMetricDesc, "0.5", "t1");
    EXPECT_FALSE(decode_trial_cursor(c, TrialSort::kMetricAsc));
    EXPECT_FALSE(decode_trial_cursor(c, TrialSort::kNumberAsc));
    EXPECT_FALSE(decode_trial_cursor(encode_list_cursor("2026-05-11T20:13:43+00:00", "x"),
                                     TrialSort::kMetricDesc));
}

TEST(TrialCursor, TamperedKeysAreRejected) {
    auto enc = [](const std::string &json) { return base64url_encode(json); };
    const std::string bad[] = {
        enc(R"(["primary_metric_desc","1e999","t"])"),  // float8 overflow
        enc(R"(["primary_metric_desc","0x10","t"])"),
        enc(R"(["primary_metric_desc","1.","t"])"),
        enc(R"(["primary_metric_desc"," 1","t"])"),
        enc(R"(["primary_metric_desc",0.5,"t"])"),  // must be the text
        enc(R"(["primary_metric_desc","0.5",null])"),
        enc(R"(["primary_metric_desc","0.5"])"),
        enc(R"(["optuna_trial_number_asc","1","t"])"),
        enc(R"(["optuna_trial_number_asc",2147483648,"t"])"),
        enc(R"(["optuna_trial_number_asc",1.5,"t"])"),
    };
    for (const std::string &c : bad) {
        TrialSort s = base64url_decode(c)->find("optuna") != std::string::npos
                          ? TrialSort::kNumberAsc
                          : TrialSort::kMetricDesc;
        EXPECT_FALSE(decode_trial_cursor(c, s)) << *base64url_decode(c);
    }
}

TEST(Float8Text, AcceptsWhatPostgresPrints) {
    for (const char *ok :
         {"0", "0.487", "-1.5", "1e-05", "2.5E-7", "1.5e+20", "NaN", "Infinity", "-Infinity"}) {
        EXPECT_TRUE(valid_float8_text(ok)) << ok;
    }
    for (const char *bad : {"", "+1", ".5", "1.", "1e", "nan", "inf", "1e400", "1 ", "0x1"}) {
        EXPECT_FALSE(valid_float8_text(bad)) << bad;
    }
}

TEST(TrialSortNames, ParseAndPrint) {
    EXPECT_EQ(parse_trial_sort("primary_metric_desc"), TrialSort::kMetricDesc);
    EXPECT_EQ(parse_trial_sort("primary_metric_asc"), TrialSort::kMetricAsc);
    EXPECT_EQ(parse_trial_sort("optuna_trial_number_asc"), TrialSort::kNumberAsc);
    EXPECT_FALSE(parse_trial_sort("id"));
    EXPECT_EQ(trial_sort_name(TrialSort::kNumberAsc), "optuna_trial_number_asc");
}

TEST(Limit, DefaultsAndBounds) {
    std::string msg;
    EXPECT_EQ(limit_of(""), 50);
    EXPECT_EQ(limit_of("limit="), 50);  // empty = absent
    EXPECT_EQ(limit_of("limit=1"), 1);
    EXPECT_EQ(limit_of("limit=200", &msg), 200);
    EXPECT_EQ(msg, "");
    EXPECT_EQ(limit_of("limit=007"), 7);
    EXPECT_EQ(limit_of("limit=5&limit=9"), 9);  // the last one wins
}

TEST(Limit, InvalidValuesAre422) {
    struct Case {
        const char *args;
        const char *message;
    };
    const Case cases[] = {
        {"limit=0", "Request validation failed: query.limit: must be between 1 and 200"},
        {"limit=201", "Request validation failed: query.limit: must be between 1 and 200"},
        {"limit=-1", "Request validation failed: query.limit: must be between 1 and 200"},
        {"limit=99999999999999999999",
         "Request validation failed: query.limit: must be between 1 and 200"},
        {"limit=1e3", "Request validation failed: query.limit: must be an integer"},
        {"limit=abc", "Request validation failed: query.limit: must be an integer"},
        {"limit=1.5", "Request validation failed: query.limit: must be an integer"},
        {"limit=+5", "Request validation failed: query.limit: must be an integer"},
        {"limit=%205", "Request validation failed: query.limit: must be an integer"},
    };
    for (const Case &c : cases) {
        std::string msg;
        (void)limit_of(c.args, &msg);
        EXPECT_EQ(msg, c.message) << c.args;
    }
}

TEST(ListParams, CursorAndSince) {
    Problems p;
    std::string cursor = encode_list_cursor("2026-05-11T20:13:43.123456+00:00", "abc");
    ListParams lp = parse_list_params(
        QueryArgs("limit=10&cursor=" + cursor + "&since=2026-05-01T00:00:00Z&other=x"), p);
    EXPECT_TRUE(p.empty());
    EXPECT_EQ(lp.limit, 10);
    ASSERT_TRUE(lp.cursor);
    EXPECT_EQ(lp.cursor->id, "abc");
    EXPECT_EQ(lp.since, "2026-05-01T00:00:00+00:00");

    Problems q;
    lp = parse_list_params(QueryArgs("cursor=garbage&since=yesterday&limit=0"), q);
    EXPECT_EQ(q.message(),
              "Request validation failed: query.limit: must be between 1 and 200; "
              "query.cursor: invalid cursor; query.since: must be an RFC 3339 timestamp");
}

TEST(ListParams, SinceAcceptsADecodedPlusAsSpace) {
    Problems p;
    ListParams lp = parse_list_params(QueryArgs("since=2026-05-01T00:00:00+02:00"), p);
    EXPECT_TRUE(p.empty()) << p.message();
    EXPECT_EQ(lp.since, "2026-04-30T22:00:00+00:00");
    lp = parse_list_params(QueryArgs("since=2026-05-01T00%3A00%3A00%2B02%3A00"), p);
    EXPECT_EQ(lp.since, "2026-04-30T22:00:00+00:00");
}

TEST(ListParams, OutOfDomainTimestampsAre422NotStatements) {
    Problems p;
    (void)parse_list_params(QueryArgs("since=2026-01-01T00:00:00%2B16:00"), p);
    EXPECT_EQ(p.message(), "Request validation failed: query.since: must be an RFC 3339 timestamp");
    // the same offset through a tampered cursor
    Problems q;
    std::string cursor = encode_list_cursor("2026-01-01T00:00:00+16:00", "abc");
    (void)parse_list_params(QueryArgs("cursor=" + cursor), q);
    EXPECT_EQ(q.message(), "Request validation failed: query.cursor: invalid cursor");
    Problems r;
    cursor = encode_list_cursor("0000-01-01T00:00:00Z", "abc");
    (void)parse_list_params(QueryArgs("cursor=" + cursor), r);
    EXPECT_FALSE(r.empty());
    // a valid cursor's timestamp is normalised to UTC like since=
    Problems ok;
    cursor = encode_list_cursor("2026-01-01T00:00:00.5+15:00", "abc");
    ListParams lp = parse_list_params(QueryArgs("cursor=" + cursor), ok);
    EXPECT_TRUE(ok.empty());
    ASSERT_TRUE(lp.cursor);
    EXPECT_EQ(lp.cursor->created_at, "2025-12-31T09:00:00.5+00:00");
}

TEST(QueryArgs, DecodesPercentAndPlus) {
    QueryArgs a("a=1&b=x%20y+z&c&d=&e=%C3%A9&%66=key");
    EXPECT_EQ(a.get("a"), "1");
    EXPECT_EQ(a.get("b"), "x y z");
    EXPECT_FALSE(a.get("c"));
    EXPECT_FALSE(a.get("d"));
    EXPECT_EQ(a.get("e"), "é");
    EXPECT_EQ(a.get("f"), "key");
    EXPECT_FALSE(a.get("missing"));
    EXPECT_FALSE(QueryArgs("").get("a"));
}

TEST(QueryArgs, BadEncodingOfAKnownParameterIs422) {
    QueryArgs a("status=%zz&other=%zz");
    EXPECT_EQ(failure([&] { (void)a.get("status"); }),
              "Request validation failed: query.status: invalid encoding");
    EXPECT_EQ(failure([&] { (void)QueryArgs("x=%00").get("x"); }),
              "Request validation failed: query.x: invalid encoding");
    EXPECT_EQ(failure([&] { (void)QueryArgs("x=%ff").get("x"); }),
              "Request validation failed: query.x: invalid encoding");
    // A later good value wins over an earlier bad one.
    EXPECT_EQ(QueryArgs("x=%zz&x=ok").get("x"), "ok");
}

TEST(Filters, EnumAndIdFilters) {
    Problems p;
    EXPECT_EQ(parse_enum_filter(QueryArgs("status=pending"), "status", kProposalStatuses, p),
              "pending");
    EXPECT_FALSE(parse_enum_filter(QueryArgs("status="), "status", kProposalStatuses, p));
    EXPECT_TRUE(p.empty());
    EXPECT_FALSE(parse_enum_filter(QueryArgs("status=open"), "status", kProposalStatuses, p));
    EXPECT_EQ(p.message(),
              "Request validation failed: query.status: must be one of: pending, pr_opened, "
              "pr_merged, rejected, superseded");
    Problems q;
    EXPECT_EQ(parse_id_filter(QueryArgs("cluster_id=abc"), "cluster_id", q), "abc");
    EXPECT_FALSE(
        parse_id_filter(QueryArgs("cluster_id=" + std::string(129, 'x')), "cluster_id", q));
    EXPECT_EQ(q.message(),
              "Request validation failed: query.cluster_id: must be at most 128 characters");
}

TEST(PercentDecode, RejectsMalformedEscapes) {
    std::string out;
    EXPECT_TRUE(percent_decode("a%2Fb", false, out));
    EXPECT_EQ(out, "a/b");
    EXPECT_TRUE(percent_decode("a+b", false, out));
    EXPECT_EQ(out, "a+b");
    EXPECT_TRUE(percent_decode("a+b", true, out));
    EXPECT_EQ(out, "a b");
    EXPECT_FALSE(percent_decode("%", false, out));
    EXPECT_FALSE(percent_decode("%4", false, out));
    EXPECT_FALSE(percent_decode("%4g", false, out));
    EXPECT_FALSE(percent_decode("%00", false, out));
    EXPECT_FALSE(percent_decode("%c3", false, out));  // truncated UTF-8
}
