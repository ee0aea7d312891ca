// Normalisation: each rule, and that spellings of one answer meet.

#include "gtest/gtest.h"
#include "verifier/math/math_checker.h"

namespace rlpost {
namespace {

TEST(NormalizeMathAnswerTest, StripsLatexSpacing) {
  EXPECT_EQ(NormalizeMathAnswer("3\\,\\!\\;\\: x\\quad y\\qquad z"), "3xyz");
  EXPECT_EQ(NormalizeMathAnswer("a\\ b"), "ab");
}

TEST(NormalizeMathAnswerTest, StripsLeftRightButNotArrows) {
  EXPECT_EQ(NormalizeMathAnswer("\\left( 3, \\frac{\\pi}{2} \\right)"), "(3,\\frac{\\pi}{2})");
  EXPECT_EQ(NormalizeMathAnswer("\\left. x \\right|"), "x|");
  EXPECT_EQ(NormalizeMathAnswer("x \\rightarrow y"), "x\\rightarrow y");
}

TEST(NormalizeMathAnswerTest, UnwrapsTextCommands) {
  EXPECT_EQ(NormalizeMathAnswer("\\text{Evelyn}"), "Evelyn");
  EXPECT_EQ(NormalizeMathAnswer("\\mathrm{east}"), "east");
  EXPECT_EQ(NormalizeMathAnswer("\\textbf{\\text{(C)}}"), "C");
  EXPECT_EQ(NormalizeMathAnswer("\\mbox{ cm}^2"), "cm^2");
}

TEST(NormalizeMathAnswerTest, StripsDegreesPercentAndDollars) {
  EXPECT_EQ(NormalizeMathAnswer("90^\\circ"), "90");
  EXPECT_EQ(NormalizeMathAnswer("90^{\\circ}"), "90");
  EXPECT_EQ(NormalizeMathAnswer("90\xC2\xB0"), "90");
  EXPECT_EQ(NormalizeMathAnswer("25\\%"), "25");
  EXPECT_EQ(NormalizeMathAnswer("\\$18.90"), "18.90");
}

TEST(NormalizeMathAnswerTest, RemovesThousandsSeparators) {
  EXPECT_EQ(NormalizeMathAnswer("1,234"), "1234");
  EXPECT_EQ(NormalizeMathAnswer("-1,234,567.5"), "-1234567.5");
  EXPECT_EQ(NormalizeMathAnswer("10,\\!080"), "10080");
  EXPECT_EQ(NormalizeMathAnswer("11,\\! 111,\\! 111,\\! 100"), "11111111100");
  EXPECT_EQ(NormalizeMathAnswer("1{,}000"), "1000");
}

TEST(NormalizeMathAnswerTest, KeepsCommasThatSeparateElements) {
  EXPECT_EQ(NormalizeMathAnswer("1,-2"), "1,-2");
  EXPECT_EQ(NormalizeMathAnswer("3, 5, 7"), "3,5,7");
  EXPECT_EQ(NormalizeMathAnswer("(1,234)"), "(1,234)");
  EXPECT_EQ(NormalizeMathAnswer("1,23"), "1,23");
}

TEST(NormalizeMathAnswerTest, CanonicalFractionSpelling) {
  EXPECT_EQ(NormalizeMathAnswer("\\dfrac{1}{2}"), "\\frac{1}{2}");
  EXPECT_EQ(NormalizeMathAnswer("\\tfrac12"), "\\frac{1}{2}");
  EXPECT_EQ(NormalizeMathAnswer("\\frac 34"), "\\frac{3}{4}");
  EXPECT_EQ(NormalizeMathAnswer("\\frac9{19}"), "\\frac{9}{19}");
  EXPECT_EQ(NormalizeMathAnswer("\\frac{9}2"), "\\frac{9}{2}");
  EXPECT_EQ(NormalizeMathAnswer("\\frac{\\frac12}3"), "\\frac{\\frac{1}{2}}{3}");
  EXPECT_EQ(NormalizeMathAnswer("11\\sqrt2"), "11\\sqrt{2}");
  EXPECT_EQ(NormalizeMathAnswer("x^{2}+y_{1}"), "x^2+y_1");
}

TEST(NormalizeMathAnswerTest, TrailingPeriodDelimitersAndWhitespace) {
  EXPECT_EQ(NormalizeMathAnswer("  $ 42 $. "), "42");
  EXPECT_EQ(NormalizeMathAnswer("\\boxed{ 7 }"), "7");
  EXPECT_EQ(NormalizeMathAnswer("5..."), "5");
}

TEST(NormalizeMathAnswerTest, KeepsSpaceThatEndsAControlWord) {
  EXPECT_EQ(NormalizeMathAnswer("2 \\pi r"), "2\\pi r");
  EXPECT_EQ(NormalizeMathAnswer("\\cot x"), "\\cot x");
  EXPECT_EQ(NormalizeMathAnswer("\\pi + 1"), "\\pi+1");
}

TEST(NormalizeMathAnswerTest, MultipleChoiceLetter) {
  EXPECT_EQ(NormalizeMathAnswer("(B)"), "B");
  EXPECT_EQ(NormalizeMathAnswer("\\text{(E)}"), "E");
}

TEST(NormalizeMathAnswerTest, UnicodeMinus) {
  EXPECT_EQ(NormalizeMathAnswer("\xE2\x88\x92" "5"), "-5");
}

}  // namespace
}  // namespace rlpost
