// Comparison: exact numbers, tolerance, tuples/sets/intervals, text.

#include <string>

#include "gtest/gtest.h"
#include "verifier/math/exact_number.h"
#include "verifier/math/math_checker.h"

namespace rlpost {
namespace {

bool Same(const char* a, const char* b) { return MathAnswersEquivalent(a, b); }

TEST(NumberComparisonTest, IntegersAndSigns) {
  EXPECT_TRUE(Same("42", "42"));
  EXPECT_TRUE(Same("+42", "42"));
  EXPECT_TRUE(Same("-0", "0"));
  EXPECT_TRUE(Same("007", "7"));
  EXPECT_FALSE(Same("-42", "42"));
  EXPECT_FALSE(Same("41", "42"));
}

TEST(NumberComparisonTest, DecimalsExactly) {
  EXPECT_TRUE(Same("0.5", ".5"));
  EXPECT_TRUE(Same("18.90", "18.9"));
  EXPECT_TRUE(Same("3.", "3"));
  EXPECT_TRUE(Same(".0000672", "6.72e-5"));
  EXPECT_FALSE(Same("0.333333333333", "\\frac{1}{3}"));  // exact, not within tolerance
}

TEST(NumberComparisonTest, Fractions) {
  EXPECT_TRUE(Same("\\frac{1}{2}", "0.5"));
  EXPECT_TRUE(Same("\\dfrac{6}{4}", "3/2"));
  EXPECT_TRUE(Same("-\\frac{3}{8}", "\\frac{-3}{8}"));
  EXPECT_TRUE(Same("\\frac{3}{-8}", "-0.375"));
  EXPECT_TRUE(Same("\\frac{\\frac{1}{2}}{\\frac{1}{4}}", "2"));
  EXPECT_TRUE(Same("-6/-4", "1.5"));
  EXPECT_TRUE(Same("\\frac 59", "10/18"));
  EXPECT_FALSE(Same("\\frac{1}{3}", "\\frac{1}{4}"));
  // Division by zero is not a number; the text stays as it is.
  EXPECT_FALSE(Same("\\frac{1}{0}", "\\frac{2}{0}"));
  EXPECT_TRUE(Same("\\frac{1}{0}", "\\frac{1}{0}"));
}

TEST(NumberComparisonTest, MixedNumbers) {
  EXPECT_TRUE(Same("137 \\frac{1}{2}", "137.5"));
  EXPECT_TRUE(Same("1\\frac{4}{5}", "\\frac{9}{5}"));
  EXPECT_TRUE(Same("-2\\frac{1}{4}", "-2.25"));
  // Not a proper fraction: no mixed-number reading.
  EXPECT_FALSE(Same("2\\frac{5}{4}", "3.25"));
}

TEST(NumberComparisonTest, ScientificNotation) {
  EXPECT_TRUE(Same("1.5e3", "1500"));
  EXPECT_TRUE(Same("1.5E+3", "1500"));
  EXPECT_TRUE(Same("1.5\\times 10^{3}", "1500"));
  EXPECT_TRUE(Same("2.5 \\cdot 10^{-2}", "0.025"));
  EXPECT_TRUE(Same("10^6", "1000000"));
  EXPECT_TRUE(Same("10^{40}", "1e40"));
  EXPECT_FALSE(Same("1e40", "1e41"));
}

TEST(NumberComparisonTest, BigIntegersAreExact) {
  // Beyond 64 and 128 bits: held as exact decimal digits.
  EXPECT_TRUE(Same("123456789012345678901234567890123456789012345678901234567890",
                   "123,456,789,012,345,678,901,234,567,890,123,456,789,012,345,678,901,"
                   "234,567,890"));
  EXPECT_FALSE(Same("123456789012345678901234567890123456789012345678901234567890",
                    "123456789012345678901234567890123456789012345678901234567891"));
  EXPECT_TRUE(Same("170141183460469231731687303715884105727",
                   "170141183460469231731687303715884105727.0"));  // 2^127 - 1
  EXPECT_FALSE(Same("170141183460469231731687303715884105728",
                    "170141183460469231731687303715884105727"));
}

TEST(NumberComparisonTest, ToleranceOnlyForNumbersThatCannotBeHeldExactly) {
  // The fraction's parts overflow 128 bits, so it is approximated; 1/3 is
  // exact but is compared with it under the relative tolerance.
  const char* huge = "\\frac{100000000000000000000000000000000000000000}"
                     "{300000000000000000000000000000000000000000}";
  EXPECT_TRUE(Same(huge, "\\frac{1}{3}"));
  EXPECT_FALSE(Same(huge, "0.3334"));
  MathCheckOptions loose;
  loose.relative_tolerance = 1e-3;
  EXPECT_TRUE(MathAnswersEquivalent(huge, "0.3334", loose));
}

TEST(NumberComparisonTest, CapsNumberSizes) {
  // Past the caps a "number" is plain text: still compared, never slow.
  std::string digits(5000, '7');
  EXPECT_TRUE(MathAnswersEquivalent(digits, digits));
  EXPECT_FALSE(MathAnswersEquivalent(digits, digits + "7"));
  EXPECT_FALSE(Same("1e999999999", "1e999999998"));
}

TEST(ExactNumberTest, RationalArithmeticDetectsOverflow) {
  using math_internal::Rational;
  const __int128 big = static_cast<__int128>(1) << 125;
  auto a = Rational::Make(big, 3);
  ASSERT_TRUE(a.has_value());
  // big/3 + big/5 needs 5 * 2^125 as an intermediate: past 2^127.
  EXPECT_FALSE(a->Add(*Rational::Make(big, 5)).has_value());
  EXPECT_FALSE(Rational::Integer(big).Divide(*Rational::Make(1, 8)).has_value());
  auto half = *Rational::Make(1, 2);
  EXPECT_FALSE(half.Divide(Rational::Integer(0)).has_value());
  EXPECT_EQ(*half.Add(half), Rational::Integer(1));
  EXPECT_FALSE(Rational::Make(1, 0).has_value());
}

TEST(ExactNumberTest, DecimalsThatFitAFractionBecomeOne) {
  using math_internal::NumericValue;
  using math_internal::ParseNumber;
  // 5^45 / 10^45 == 1 / 2^45: the denominator 10^45 overflows, but the
  // reduced fraction fits, so it must be found.
  std::string five45 = "0.";
  five45 += std::string(45 - 32, '0');
  five45 += "28421709430404007434844970703125";  // 5^45 has 32 digits
  auto v = ParseNumber(five45);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->kind(), NumericValue::Kind::kRational);
  EXPECT_EQ(v->rational().num(), 1);
  EXPECT_EQ(v->rational().den(), static_cast<__int128>(1) << 45);
  auto big = ParseNumber("1e50");
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(big->kind(), NumericValue::Kind::kDecimal);
}

TEST(TupleComparisonTest, OrderedElementWise) {
  EXPECT_TRUE(Same("(1, 2)", "(1,2)"));
  EXPECT_TRUE(Same("\\left( \\frac{3}{2}, -13 \\right)", "(1.5,-13)"));
  EXPECT_TRUE(Same("(3, \\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)"));
  EXPECT_FALSE(Same("(1,2)", "(2,1)"));
  EXPECT_FALSE(Same("(1,2)", "(1,2,3)"));
  EXPECT_FALSE(Same("(1,2)", "[1,2]"));
}

TEST(TupleComparisonTest, IntervalsKeepTheirEndpoints) {
  EXPECT_TRUE(Same("(3,4]", "(3.0, 4]"));
  EXPECT_FALSE(Same("(3,4]", "(3,4)"));
  EXPECT_TRUE(Same("(-\\infty, 0]", "(-\\infty,0]"));
  EXPECT_TRUE(Same("(-\\infty, 2) \\cup (3, \\infty)", "(3,\\infty)\\cup(-\\infty,2)"));
  EXPECT_TRUE(Same("x \\in [-2,7]", "[-2,7]"));
}

TEST(TupleComparisonTest, SetsAndBareListsIgnoreOrder) {
  EXPECT_TRUE(Same("\\{1,2,3\\}", "\\{3,1,2\\}"));
  EXPECT_TRUE(Same("1,-2", "-2, 1"));
  EXPECT_TRUE(Same("3, 5, 7", "7,5,3"));
  EXPECT_FALSE(Same("1,-2", "1,2"));
  EXPECT_FALSE(Same("1,1,2", "1,2,2"));
  EXPECT_TRUE(Same("\\{1\\pm\\sqrt{5},-2\\}", "\\{-2, 1\\pm\\sqrt{5}\\}"));
}

TEST(TupleComparisonTest, NestedAndMatrices) {
  EXPECT_TRUE(Same("((1,2),(3,4))", "((1.0,2),(3,4.0))"));
  EXPECT_TRUE(Same("\\begin{pmatrix} 1/5 \\\\ -18/5 \\end{pmatrix}",
                   "\\begin{pmatrix}\\frac{1}{5}\\\\-\\frac{18}{5}\\end{pmatrix}"));
  EXPECT_FALSE(Same("\\begin{pmatrix} 1 & 0 \\\\ 0 & 1 \\end{pmatrix}",
                    "\\begin{pmatrix} 1 & 0 \\\\ 1 & 0 \\end{pmatrix}"));
}

TEST(TextComparisonTest, PlainWordsIgnoreCase) {
  EXPECT_TRUE(Same("\\text{Evelyn}", "evelyn"));
  EXPECT_TRUE(Same("\\text{East}", "east"));
  EXPECT_FALSE(Same("Evelyn", "Navin"));
}

TEST(TextComparisonTest, VariablesAndLatexKeepCase) {
  EXPECT_FALSE(Same("2k", "2K"));
  EXPECT_TRUE(Same("2k", "2k"));
  EXPECT_FALSE(Same("\\Pi", "\\pi"));
}

TEST(TextComparisonTest, MultipleChoiceLetters) {
  EXPECT_TRUE(Same("(B)", "B"));
  EXPECT_TRUE(Same("\\text{(B)}", "B"));
  EXPECT_FALSE(Same("(B)", "C"));
}

TEST(TextComparisonTest, Assignments) {
  EXPECT_TRUE(Same("x=5", "5"));
  EXPECT_TRUE(Same("5", "x = 5.0"));
  EXPECT_TRUE(Same("y = 2x + 3", "y=2x+3"));
  EXPECT_FALSE(Same("x=5", "y=5"));
  EXPECT_FALSE(Same("x=5", "6"));
}

TEST(TextComparisonTest, SymbolicStageDecidesWhatTextCannot) {
  // Equal but different as text: the GiNaC stage decides (more in
  // math_symbolic_test.cc).
  EXPECT_TRUE(Same("\\sqrt{4}", "2"));
  EXPECT_TRUE(Same("x+1", "1+x"));
}

}  // namespace
}  // namespace rlpost
