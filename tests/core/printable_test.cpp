#include "veil/core/printable.hpp"

#include <gtest/gtest.h>

#include <string>

namespace veil {
namespace {

using namespace std::string_literals;

TEST(Printable, PlainTextAndWellFormedUtf8PassUnchanged) {
  EXPECT_EQ(printable(""), "");
  EXPECT_EQ(printable("conv1/weight:0 (x) ~"), "conv1/weight:0 (x) ~");
  EXPECT_EQ(printable("a\\x1b"), "a\\x1b");  // a backslash is text, not doubled
  // 2, 3 and 4-byte sequences: é, €, the last BMP code point before the surrogates, 😀, U+10FFFF.
  const std::string utf8 =
      "caf\xC3\xA9 \xE2\x82\xAC \xED\x9F\xBF \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF";
  EXPECT_EQ(printable(utf8), utf8);
}

TEST(Printable, ControlCharactersAreEscaped) {
  EXPECT_EQ(printable("a\nb\rc\td"), "a\\nb\\rc\\td");
  EXPECT_EQ(printable("\x1b[31mred"), "\\x1b[31mred");
  EXPECT_EQ(printable("\x7f"), "\\x7f");
  EXPECT_EQ(printable("x\0y"s), "x\\x00y");
  EXPECT_EQ(printable("\x01\x1f"), "\\x01\\x1f");
  // C1 controls encoded in UTF-8 (U+009B is CSI, an ESC [ on some terminals) and the bidi
  // override U+202E, which reverses what follows on screen.
  EXPECT_EQ(printable("\xC2\x9B"
                      "31m"),
            "\\xc2\\x9b31m");
  EXPECT_EQ(printable("\xC2\x85"), "\\xc2\\x85");
  EXPECT_EQ(printable("\xE2\x80\xAE"), "\\xe2\\x80\\xae");
  EXPECT_EQ(printable("\xE2\x81\xA6"), "\\xe2\\x81\\xa6");
  // Their neighbours are ordinary characters: U+00A0 and U+2030.
  EXPECT_EQ(printable("\xC2\xA0\xE2\x80\xB0"), "\xC2\xA0\xE2\x80\xB0");
}

TEST(Printable, MalformedUtf8IsEscapedBytewise) {
  EXPECT_EQ(printable("\xFF"), "\\xff");
  EXPECT_EQ(printable("\x80"), "\\x80");                             // a lone continuation byte
  EXPECT_EQ(printable("\xC3"), "\\xc3");                             // truncated at the end
  EXPECT_EQ(printable("\xC3(x"), "\\xc3(x");                         // bad continuation
  EXPECT_EQ(printable("\xC0\xAF"), "\\xc0\\xaf");                    // overlong '/'
  EXPECT_EQ(printable("\xE0\x80\xAF"), "\\xe0\\x80\\xaf");           // overlong, 3 bytes
  EXPECT_EQ(printable("\xED\xA0\x80"), "\\xed\\xa0\\x80");           // a surrogate (U+D800)
  EXPECT_EQ(printable("\xF4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
  EXPECT_EQ(printable("\xF5\x80\x80\x80"), "\\xf5\\x80\\x80\\x80");
  // After a bad byte the scan resynchronises on the next character.
  EXPECT_EQ(printable("\xE2\x82"
                      "\xC3\xA9"),
            "\\xe2\\x82\xC3\xA9");
}

TEST(Printable, TheResultIsOneLineOfPrintableText) {
  // Every byte value, alone and after a lead byte: the output never holds a C0 control or DEL,
  // so it is one line and carries no escape sequence.
  for (int lead : {0, 0xC2, 0xE2, 0xF0})
    for (int c = 0; c < 256; ++c) {
      std::string in;
      if (lead) in += static_cast<char>(lead);
      in += static_cast<char>(c);
      const std::string out = printable(in);
      for (char ch : out) {
        const auto u = static_cast<unsigned char>(ch);
        EXPECT_TRUE(u >= 0x20 && u != 0x7F) << lead << " " << c;
      }
    }
}

}  // namespace
}  // namespace veil
