#include <gtest/gtest.h>

#include <cctype>

#include "common/strings.hpp"

using namespace relyloop;

TEST(StripTrailingSlashes, UrlPrefixLosesEverySlash) {
    EXPECT_EQ(strip_trailing_slashes("https://github.com"), "https://github.com");
    EXPECT_EQ(strip_trailing_slashes("https://github.com/"), "https://github.com");
    EXPECT_EQ(strip_trailing_slashes("https://ghe.example/x///"), "https://ghe.example/x");
    EXPECT_EQ(strip_trailing_slashes("/"), "");
    EXPECT_EQ(strip_trailing_slashes("///"), "");
    EXPECT_EQ(strip_trailing_slashes(""), "");
    // Only the end: slashes inside stay.
    EXPECT_EQ(strip_trailing_slashes("a//b"), "a//b");
}

TEST(StripTrailingSlashes, PathKeepsItsRoot) {
    EXPECT_EQ(strip_trailing_slashes("/", 1), "/");
    EXPECT_EQ(strip_trailing_slashes("///", 1), "/");
    EXPECT_EQ(strip_trailing_slashes("/var/lib/x/", 1), "/var/lib/x");
    EXPECT_EQ(strip_trailing_slashes("cfg/", 1), "cfg");
    EXPECT_EQ(strip_trailing_slashes("", 1), "");
}

TEST(StripTrailingSlashes, IsConstexpr) {
    static_assert(strip_trailing_slashes("a/") == "a");
    static_assert(strip_trailing_slashes("/", 1) == "/");
}

// The lower-casing once written with std::tolower (which follows the process
// locale) is ASCII only: bytes of a UTF-8 sequence never change.
TEST(AsciiLower, OnlyAsciiLetters) {
    EXPECT_EQ(ascii_lower("Acme/Search-CONFIG.git"), "acme/search-config.git");
    EXPECT_EQ(ascii_lower("\xC3\x84Z@[`{"), "\xC3\x84z@[`{");
    EXPECT_EQ(ascii_lower(""), "");
    static_assert(ascii_lower('Q') == 'q' && ascii_lower('q') == 'q' && ascii_lower('1') == '1');
}

TEST(IequalsAscii, CaseOnly) {
    EXPECT_TRUE(iequals_ascii("Application/JSON", "application/json"));
    EXPECT_TRUE(iequals_ascii("", ""));
    EXPECT_FALSE(iequals_ascii("utf-8", "utf8"));
    EXPECT_FALSE(iequals_ascii("abc", "abd"));
    // '@' (0x40) and '`' (0x60) differ by the case bit but are no letters.
    EXPECT_FALSE(iequals_ascii("@", "`"));
    EXPECT_FALSE(iequals_ascii("\xC3\x84", "\xC3\xA4"));
}

TEST(Hex, DigitsAndValues) {
    static_assert(hex_digit(0) == '0' && hex_digit(9) == '9' && hex_digit(10) == 'a' &&
                  hex_digit(15) == 'f' && hex_digit(0x1b) == 'b');
    for (unsigned v = 0; v < 16; v++) {
        EXPECT_EQ(hex_value(hex_digit(v)), static_cast<int>(v));
    }
    EXPECT_EQ(hex_value('F'), 15);
    EXPECT_EQ(hex_value('g'), -1);
    EXPECT_EQ(hex_value('/'), -1);
    EXPECT_EQ(hex_value(':'), -1);
    EXPECT_EQ(hex_value('@'), -1);
    EXPECT_EQ(hex_value('G'), -1);
}

TEST(Hex, LowerCaseBytes) {
    const unsigned char bytes[] = {0x00, 0x0f, 0xa5, 0xff};
    EXPECT_EQ(hex_lower(bytes, sizeof bytes), "000fa5ff");
    EXPECT_EQ(hex_lower(bytes, 0), "");
}

// The white space of trim_ascii_space is std::isspace's in the "C" locale.
TEST(Trim, AsciiSpaceIsTheCLocaleSet) {
    for (int c = 0; c < 256; c++) {
        EXPECT_EQ(is_ascii_space(static_cast<char>(c)), std::isspace(c) != 0) << c;
    }
    EXPECT_EQ(trim_ascii_space(" \t\n\v\f\r Acme/Repo \r\n"), "Acme/Repo");
    EXPECT_EQ(trim_ascii_space("a b"), "a b");
    EXPECT_EQ(trim_ascii_space(" \n "), "");
}

TEST(Trim, OwsIsSpaceAndTabOnly) {
    EXPECT_EQ(trim_ows(" \tapplication/json\t "), "application/json");
    EXPECT_EQ(trim_ows("\napplication/json\r"), "\napplication/json\r");
    EXPECT_EQ(trim_ows("\t"), "");
}
