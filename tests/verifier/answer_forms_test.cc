// Answer forms the comparison understands beyond plain numbers: units,
// inequalities, assignments in lists, function notation, connectives,
// intervals, sets, matrices, options, complex numbers, words. One table of
// equal and one of unequal pairs, each checked in both directions.

#include <string>

#include "gtest/gtest.h"
#include "verifier/math/math_checker.h"

namespace rlpost {
namespace {

struct FormPair {
  const char* a;
  const char* b;
};

class AnswerFormsEqualTest : public testing::TestWithParam<FormPair> {};

TEST_P(AnswerFormsEqualTest, Equivalent) {
  EXPECT_TRUE(MathAnswersEquivalent(GetParam().a, GetParam().b))
      << GetParam().a << " vs " << GetParam().b << " (normalised '"
      << NormalizeMathAnswer(GetParam().a) << "' vs '" << NormalizeMathAnswer(GetParam().b) << "')";
  EXPECT_TRUE(MathAnswersEquivalent(GetParam().b, GetParam().a));
}

INSTANTIATE_TEST_SUITE_P(
    Forms, AnswerFormsEqualTest,
    testing::Values(
        FormPair{"5\\text{ cm}", "5"}, FormPair{"864 \\mbox{ inches}^2", "864"},
        FormPair{"\\frac{270}7\\text{ degrees}", "\\frac{270}{7}"}, FormPair{"\\$5.00", "5"},
        FormPair{"90^\\circ", "90"}, FormPair{"x<3", "3>x"}, FormPair{"x \\ge 3", "3\\leq x"},
        FormPair{"-1\\le x<2", "2>x\\geq-1"}, FormPair{"x \\le 3", "x\\leq3"},
        FormPair{"(-\\infty,3]", "(-\\infty, 3]"},
        FormPair{"[1,2)\\cup(3,4]", "(3,4]\\cup[1,2)"}, FormPair{"\\{1,2,3\\}", "\\{3,2,1\\}"},
        FormPair{"\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{bmatrix}1\\\\2\\end{bmatrix}"},
        FormPair{"\\text{(B)}", "B"}, FormPair{"\\textbf{B}", "B"}, FormPair{"Evelyn", "evelyn"},
        FormPair{"2+3i", "3i+2"}, FormPair{"1\\frac12", "\\frac32"}, FormPair{"10{,}000", "10000"},
        FormPair{"x=3", "3"}, FormPair{"y=2x+1", "2x+1"}, FormPair{"y=2x+1", "y=1+2x"},
        FormPair{"f(x)=x^2", "x^2"}, FormPair{"a_1=3", "3"}, FormPair{"x=1,x=2", "1,2"},
        FormPair{"x = 1 \\text{ or } x = 2", "2,1"}, FormPair{"x\\in(1,2)", "(1,2)"},
        FormPair{"\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"},
        FormPair{"(3,\\frac{1}{\\sqrt2})", "(3,\\frac{\\sqrt2}{2})"},
        FormPair{"3\\times 10^5", "300000"}, FormPair{"\\text{Yes}", "yes"}));

class AnswerFormsUnequalTest : public testing::TestWithParam<FormPair> {};

TEST_P(AnswerFormsUnequalTest, NotEquivalent) {
  EXPECT_FALSE(MathAnswersEquivalent(GetParam().a, GetParam().b))
      << GetParam().a << " vs " << GetParam().b;
  EXPECT_FALSE(MathAnswersEquivalent(GetParam().b, GetParam().a))
      << GetParam().b << " vs " << GetParam().a;
}

INSTANTIATE_TEST_SUITE_P(
    Forms, AnswerFormsUnequalTest,
    testing::Values(FormPair{"x<3", "x\\le3"}, FormPair{"x<3", "x>3"}, FormPair{"x<3", "x<4"},
                    FormPair{"(1,2)", "(2,1)"}, FormPair{"(1,2)", "[1,2]"}, FormPair{"B", "C"},
                    FormPair{"0.3333", "\\frac13"}, FormPair{"-\\infty", "\\infty"},
                    FormPair{"x=3", "y=3"}, FormPair{"x=1,x=2", "1,3"}, FormPair{"5\\text{ cm}", "6"},
                    FormPair{"\\text{Evelyn}", "\\text{Emily}"}, FormPair{"0.5", "50\\%"},
                    FormPair{"f(x)=x^2", "x^3"}));

// A regression guard: units are only dropped after a number.
TEST(AnswerFormsTest, WordsAloneAreNotUnits) {
  EXPECT_EQ(NormalizeMathAnswer("\\text{even}"), "even");
  EXPECT_EQ(NormalizeMathAnswer("5\\text{ cm}"), "5");
  EXPECT_EQ(NormalizeMathAnswer("x\\text{ is even}"), "xiseven");
}

}  // namespace
}  // namespace rlpost
