// The GiNaC stage: hand-written equal and unequal pairs through the public
// MathAnswersEquivalent, the budgets that refuse expensive expressions, and
// the stage's reasons.

#include "verifier/math/symbolic_equivalence.h"

#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "verifier/math/math_checker.h"

namespace rlpost {
namespace {

using math_internal::CompareSymbolic;
using math_internal::ParsesAsSymbolic;
using math_internal::SymbolicMatch;

struct Pair {
  const char* a;
  const char* b;
};

class SymbolicEqualTest : public testing::TestWithParam<Pair> {};

TEST_P(SymbolicEqualTest, Equivalent) {
  EXPECT_TRUE(MathAnswersEquivalent(GetParam().a, GetParam().b))
      << GetParam().a << " vs " << GetParam().b;
  EXPECT_TRUE(MathAnswersEquivalent(GetParam().b, GetParam().a))
      << GetParam().b << " vs " << GetParam().a;
}

INSTANTIATE_TEST_SUITE_P(
    Pairs, SymbolicEqualTest,
    testing::Values(
        Pair{"\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"},
        Pair{"\\frac{\\sqrt3}{3}", "\\frac{1}{\\sqrt3}"}, Pair{"\\sqrt{4}", "2"},
        Pair{"\\sqrt{8}", "2\\sqrt{2}"}, Pair{"\\sqrt[3]{27}", "3"},
        Pair{"\\sqrt{12}+\\sqrt{3}", "3\\sqrt{3}"}, Pair{"x+1", "1+x"},
        Pair{"x^2+2x+1", "(x+1)^2"}, Pair{"x^2+2*x+1", "(x+1)^{2}"},
        Pair{"\\frac{x^2-1}{x-1}", "x+1"}, Pair{"\\frac{1}{x}+\\frac{1}{y}", "\\frac{x+y}{xy}"},
        Pair{"2\\pi", "\\pi\\cdot2"}, Pair{"\\frac{\\pi}{2}", "0.5\\pi"},
        Pair{"\\pi r^2", "r^2\\pi"}, Pair{"\\sin^2x+\\cos^2x", "1"},
        Pair{"\\sin(2x)", "2\\sin x\\cos x"}, Pair{"e^{\\ln 5}", "5"}, Pair{"\\ln(e^3)", "3"},
        Pair{"\\exp(2)", "e^2"}, Pair{"\\log_2 8", "3"}, Pair{"\\ln 8", "3\\ln2"},
        Pair{"sqrt(2)/2", "\\frac{\\sqrt{2}}{2}"}, Pair{"2^{10}", "1024"},
        Pair{"5!", "120"}, Pair{"\\binom{5}{2}", "10"}, Pair{"(1+i)^2", "2i"},
        Pair{"3+4i", "4i+3"}, Pair{"\\frac{2}{\\sqrt{3}}", "\\frac{2\\sqrt{3}}{3}"},
        Pair{"\\tan\\frac{\\pi}{4}", "1"}, Pair{"\\cos\\frac{\\pi}{3}", "\\frac12"},
        Pair{"y=2x+3", "y=3+2x"}, Pair{"x+y=1", "2x+2y=2"},
        Pair{"\\frac{\\sqrt{6}-\\sqrt{2}}{4}", "\\sin\\frac{\\pi}{12}"},
        Pair{"a_1+a_2", "a_2+a_1"}, Pair{"2\\alpha", "\\alpha+\\alpha"},
        Pair{"|-3|", "3"}));

class SymbolicUnequalTest : public testing::TestWithParam<Pair> {};

TEST_P(SymbolicUnequalTest, NotEquivalent) {
  EXPECT_FALSE(MathAnswersEquivalent(GetParam().a, GetParam().b))
      << GetParam().a << " vs " << GetParam().b;
  EXPECT_FALSE(MathAnswersEquivalent(GetParam().b, GetParam().a))
      << GetParam().b << " vs " << GetParam().a;
}

INSTANTIATE_TEST_SUITE_P(
    Pairs, SymbolicUnequalTest,
    testing::Values(Pair{"\\frac{\\sqrt{2}}{2}", "\\sqrt{2}"}, Pair{"\\sqrt{3}", "3"},
                    Pair{"x+1", "x-1"}, Pair{"x^2+2x+1", "(x-1)^2"}, Pair{"\\pi", "3.14159"},
                    Pair{"2\\pi", "\\pi"}, Pair{"\\sin x", "\\cos x"}, Pair{"e^2", "2e"},
                    Pair{"\\ln 8", "8"}, Pair{"xy", "x+y"}, Pair{"3+4i", "3-4i"},
                    Pair{"\\frac{\\sqrt{6}+\\sqrt{2}}{4}", "\\sin\\frac{\\pi}{12}"},
                    Pair{"y=2x+3", "y=2x-3"}, Pair{"dad", "add"}, Pair{"a_1", "a_2"},
                    Pair{"\\frac{\\sqrt3}{2}", "0.866"}));

TEST(SymbolicTest, ReasonsNameTheStage) {
  EXPECT_EQ(CompareSymbolic("x^2+2x+1", "(x+1)^2", 1e-9).reason, "symbolically equal");
  EXPECT_EQ(CompareSymbolic("x+1", "x+2", 1e-9).match, SymbolicMatch::kDifferent);
  MathVerdict v = CheckMathAnswer("so \\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{\\sqrt2}{2}");
  EXPECT_TRUE(v.correct);
  EXPECT_THAT(v.reason, testing::HasSubstr("boxed answer: "));
}

TEST(SymbolicTest, NotExpressionsAreUndecided) {
  for (const char* text : {"Evelyn", "\\infty", "(1,2)", "\\text{odd}", "x\\le3", "{", "",
                           "\\frac{1}{0}", "2^", "\\sqrt[0]{2}"}) {
    EXPECT_FALSE(ParsesAsSymbolic(text)) << text;
  }
}

// Regression guard for the budgets: each of these would take GiNaC minutes
// or gigabytes; they must be refused before GiNaC sees them.
TEST(SymbolicTest, BudgetsRefuseExpensiveExpressions) {
  const std::vector<std::string> refused = {
      "9^{9^{9^{9}}}", "10^{100000}", "2^{100000}", "5000!", "(a+b)^{5000}",
      "x^{2000}", "((x^{64})^{64})^{64}", "\\binom{100000}{3}", std::string(2000, '1')};
  for (const std::string& text : refused) {
    EXPECT_FALSE(ParsesAsSymbolic(text)) << text;
    EXPECT_EQ(CompareSymbolic(text, "1", 1e-9).match, SymbolicMatch::kUndecided) << text;
  }
  // Within the budgets: large but cheap.
  EXPECT_TRUE(ParsesAsSymbolic("2^{1000}"));
  EXPECT_TRUE(ParsesAsSymbolic("100!"));
  EXPECT_TRUE(ParsesAsSymbolic("(x+1)^{30}"));
  // Too many terms to expand: decided by evaluation alone.
  EXPECT_EQ(CompareSymbolic("(a+b+c+d+e)^{60}", "2(a+b+c+d+e)^{60}", 1e-9).match,
            SymbolicMatch::kDifferent);
}

TEST(SymbolicTest, AdversarialAnswersGetAVerdict) {
  const std::vector<std::string> answers = {
      "\\boxed{9^{9^{9^{9}}}}", "\\boxed{10^{100000}}", "\\boxed{(10^{1000})!}",
      "\\boxed{" + std::string(50000, '{') + "1" + std::string(50000, '}') + "}",
      "\\boxed{" + std::string(20000, '(') + "x" + std::string(20000, ')') + "}",
      "\\boxed{e^{e^{e^{e^{e^{x}}}}}}", "\\boxed{\\sin(10^{999})}",
      "\\boxed{\\exp(10^{900})}", "\\boxed{((((x+1)^{64})^{64})^{64})^{64}}",
      "\\boxed{\\frac{1}{\\sin(\\pi)}}", "\\boxed{\\tan\\frac{\\pi}{2}}"};
  for (const std::string& response : answers) {
    MathVerdict v = CheckMathAnswer(response, "x+1");
    EXPECT_NE(v.status, MathVerdict::Status::kError) << response.substr(0, 40);
    EXPECT_FALSE(v.correct) << response.substr(0, 40);
  }
}

TEST(SymbolicTest, SafeFromManyThreads) {
  std::vector<std::thread> threads;
  std::vector<int> correct(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &correct] {
      for (int n = 0; n < 50; ++n) {
        if (MathAnswersEquivalent("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}") &&
            !MathAnswersEquivalent("x+1", "x+2")) {
          ++correct[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int c : correct) EXPECT_EQ(c, 50);
}

}  // namespace
}  // namespace rlpost
