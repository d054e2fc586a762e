// Redaction before truncation, PAT slices and Basic-auth forms
// (docs/security.md, "Redaction rules").
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "common/base64.hpp"
#include "common/redact.hpp"
#include "common/secret.hpp"

using relyloop::kMinSecretSlice;
using relyloop::redact;
using relyloop::redact_truncate;
using relyloop::truncate_utf8;

namespace {

std::string b64(std::string_view in) { return relyloop::base64(in); }

// The first 8-byte slice of `needle` found in `text`, or "".
std::string slice_in(std::string_view text, std::string_view needle) {
    for (size_t i = 0; i + kMinSecretSlice <= needle.size(); i++) {
        std::string_view s = needle.substr(i, kMinSecretSlice);
        if (text.find(s) != std::string_view::npos) return std::string(s);
    }
    return "";
}

// What must never survive for `pat`: the PAT's 8+ slices, and the 8+ slices
// of the PAT-determined part of its Basic credential.
void expect_no_slice(const std::string &out, const std::string &pat, const std::string &ctx) {
    EXPECT_EQ(slice_in(out, pat), "") << ctx << "\nout: " << out;
    std::string cred = b64("x-access-token:" + pat);
    // The first 20 characters encode the constant "x-access-token:"; the last
    // 1-3 characters mix in padding bits.
    std::string pat_part = cred.substr(20, cred.size() - 20 - 3);
    EXPECT_EQ(slice_in(out, pat_part), "") << ctx << "\nout: " << out;
}

const std::string kClassic =
    "ghp_"
    "Kq3ZrT8vLw1NpXy5BcD7eFgH2jM4sU6aWxYz";  // ghp_ + 36
const std::string kFineGrained =
    "github_pat_11ABCDEFG0123456789abc_"
    "QwErTyUiOpAsDfGhJkLzXcVbNm0123456789QwErTyUiOpAsDfGhJkLzXcVbNm1";
const std::string kPlain = "zz-test-token-0123456789-not-github-shaped";

struct Form {
    const char *name;
    std::string pat;
    std::string shown;  // how the token appears in the text
};

std::vector<Form> forms() {
    std::vector<Form> f;
    for (const std::string *p : {&kClassic, &kFineGrained, &kPlain}) {
        f.push_back({"literal", *p, *p});
        f.push_back({"basic", *p, "Basic " + b64("x-access-token:" + *p)});
        f.push_back({"basic-bare", *p, b64("x-access-token:" + *p)});
    }
    return f;
}

}  // namespace

TEST(RedactSecret, EverySliceOfEightOrMoreGoes) {
    const std::string pat = "abcdefghijklmnopqrstuvwxyz0123456789";
    EXPECT_EQ(redact("x " + pat + " y", pat), "x [REDACTED] y");
    EXPECT_EQ(redact("cut: ijklmnop.", pat), "cut: [REDACTED].");
    EXPECT_EQ(redact("short: ijklmno.", pat), "short: ijklmno.");  // 7 characters stay
    // two slices side by side become one marker; other text is untouched
    EXPECT_EQ(redact("a0123456789abcdefghz", pat), "a[REDACTED]z");
    // a secret shorter than the slice length still goes as a whole
    EXPECT_EQ(redact("key=s3cr3t;", "s3cr3t"), "key=[REDACTED];");
    EXPECT_EQ(redact("nothing here", pat), "nothing here");
}

TEST(RedactSecret, Base64FormsAtEveryAlignment) {
    const std::string pat = kPlain;
    for (const std::string prefix : {"", "a", "ab", "x-access-token:", "user:"}) {
        std::string enc = b64(prefix + pat);
        std::string out = redact("Authorization-ish " + enc + " end", pat);
        expect_no_slice(out, pat, "prefix '" + prefix + "'");
        // the PAT-determined characters (whole base64 groups) are all gone
        size_t from = (prefix.size() + 2) / 3 * 4;
        size_t to = (prefix.size() + pat.size()) / 3 * 4;
        EXPECT_EQ(slice_in(out, enc.substr(from, to - from)), "") << prefix << " " << out;
    }
}

TEST(RedactPatterns, BasicAndAuthorizationHeadersWithoutTheSecret) {
    std::string cred = b64("x-access-token:" + kPlain);
    EXPECT_EQ(redact("sent " + cred + " end"), "sent [REDACTED-BASIC-AUTH] end");
    EXPECT_EQ(redact("Authorization: Basic dXNlcjpwYXNz"), "Authorization: Basic [REDACTED]");
    EXPECT_EQ(redact("authorization: bearer abc.def"), "authorization: bearer [REDACTED]");
}

// The bug this guards against: a GitHub error body cut to 200 bytes before
// redaction let a token cut 30-39 characters after "ghp_" through. Every
// form, every offset of the token against the 200-byte cut.
TEST(RedactTruncate, CutAtEveryOffsetOfTheToken) {
    for (const Form &f : forms()) {
        for (size_t off = 0; off <= 200; off++) {
            // The token starts at `off`: the cut falls at every position in it
            // (and before/after it at the ends of the range).
            size_t start = off <= 200 ? 200 - off : 0;
            std::string body = std::string(start, 'e') + f.shown + " trailing text";
            std::string ctx = std::string(f.name) + " " + f.pat.substr(0, 12) + " cut " +
                              std::to_string(off) + " into the token";

            std::string with_secret = redact_truncate(body, 200, f.pat);
            EXPECT_LE(with_secret.size(), 200u);
            expect_no_slice(with_secret, f.pat, ctx + " (secret known)");

            // Redact first, then cut, is safe even without knowing the PAT for
            // anything token-shaped or Basic-shaped.
            if (f.pat != kPlain) {
                expect_no_slice(redact_truncate(body, 200), f.pat, ctx + " (secret unknown)");
            }
            if (std::string_view(f.name) != "literal") {
                expect_no_slice(redact_truncate(body, 200), f.pat, ctx + " (basic, unknown)");
            }

            // Someone else cut first (e.g. GitHub or a proxy): the slice rule
            // still removes what is left of the token.
            expect_no_slice(redact(body.substr(0, 200), f.pat), f.pat, ctx + " (cut first)");
        }
    }
}

TEST(RedactTruncate, CutsOnUtf8Boundaries) {
    EXPECT_EQ(truncate_utf8("abc\xC3\xA9", 4), "abc");
    EXPECT_EQ(truncate_utf8("abc\xC3\xA9", 5), "abc\xC3\xA9");
    EXPECT_EQ(redact_truncate("plain", 3), "pla");
}

// Property: random text built from pieces of the token (and its base64),
// noise and other text; no 8+ slice of the PAT survives redaction.
TEST(RedactSecret, PropertyNoSliceSurvives) {
    std::mt19937 rng(12345);
    for (const std::string *pat : {&kClassic, &kFineGrained, &kPlain}) {
        std::vector<std::string> sources = {*pat, b64("x-access-token:" + *pat), b64(*pat),
                                            b64("a" + *pat), b64("ab" + *pat)};
        for (int iter = 0; iter < 1000; iter++) {  // t/fuzz/fuzz_redact goes further
            std::string text;
            int pieces = 1 + static_cast<int>(rng() % 6);
            for (int p = 0; p < pieces; p++) {
                switch (rng() % 3) {
                    case 0: {
                        const std::string &src = sources[rng() % sources.size()];
                        size_t a = rng() % src.size();
                        size_t len = 1 + rng() % (src.size() - a);
                        text += src.substr(a, len);
                        break;
                    }
                    case 1:
                        for (int k = rng() % 5; k > 0; k--)
                            text.push_back("ab_-=/+ \n\xC3"[rng() % 11]);
                        break;
                    default:
                        text += "[REDACTED]";
                        break;
                }
            }
            std::string out = redact(text, *pat);
            ASSERT_EQ(slice_in(out, *pat), "") << "in: " << text << "\nout: " << out;
            std::string cred = b64("x-access-token:" + *pat);
            ASSERT_EQ(slice_in(out, cred.substr(20, cred.size() - 23)), "")
                << "in: " << text << "\nout: " << out;
            std::string cut = redact_truncate(text, rng() % (text.size() + 1), *pat);
            ASSERT_EQ(slice_in(cut, *pat), "") << "in: " << text << "\nout: " << cut;
        }
    }
}

// A Secret in memory is redacted from every redact() call while it lives.
TEST(RedactRegistry, SecretsInMemoryAreRemovedEverywhere) {
    const std::string token = "zz-registered-token-0123456789";
    const std::string msg = "error: cut token zz-registered-tok";
    EXPECT_EQ(redact(msg), msg);
    {
        relyloop::Secret s(token);
        EXPECT_EQ(redact(msg), "error: cut token [REDACTED]");
        EXPECT_EQ(redact_truncate("x " + token + " y", 100), "x [REDACTED] y");
        relyloop::Secret moved(std::move(s));
        EXPECT_EQ(redact(msg), "error: cut token [REDACTED]");
    }
    EXPECT_EQ(redact(msg), msg);     // unregistered with the last owner
    relyloop::Secret shorty("abc");  // too short to register
    EXPECT_EQ(redact("abc"), "abc");
}
