// Property tests for the symbolic parser and stage on untrusted text: seeded
// token soups and every prefix of well-formed answers. Properties: nothing
// crashes or throws, an answer never differs from itself, and equivalence is
// symmetric.

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "verifier/math/math_checker.h"
#include "verifier/math/symbolic_equivalence.h"

namespace rlpost {
namespace {

using math_internal::CompareSymbolic;
using math_internal::ParsesAsSymbolic;
using math_internal::SymbolicMatch;

const std::vector<std::string>& Tokens() {
  static const std::vector<std::string> kTokens = {
      "1",      "2",     "9",     "0",     "x",      "y",     "e",     "i",      "+",
      "-",      "*",     "/",     "^",     "{",      "}",     "(",     ")",      "\\frac",
      "\\sqrt", "[",     "]",     "\\pi",  "\\sin",  "\\cos", "\\ln",  "\\log_", "!",
      "|",      "_",     "=",     ".",     "\\cdot", "<",     "\\le",  "99999",  "\\binom",
      "sqrt(",  "**",    " ",     "\\infty", ",",    "\\exp", "\\tan", "a_1",    "\\theta"};
  return kTokens;
}

std::string RandomSoup(std::mt19937* rng) {
  std::uniform_int_distribution<size_t> length(1, 8);
  std::uniform_int_distribution<size_t> pick(0, Tokens().size() - 1);
  std::string s;
  for (size_t n = length(*rng); n > 0; --n) s += Tokens()[pick(*rng)];
  return s;
}

TEST(SymbolicFuzzTest, TokenSoupsAreSelfEqualAndSymmetric) {
  std::mt19937 rng(7);
  int parsed = 0;
  for (int n = 0; n < 1500; ++n) {
    const std::string a = RandomSoup(&rng);
    const std::string b = RandomSoup(&rng);
    parsed += ParsesAsSymbolic(a) ? 1 : 0;
    EXPECT_NE(CompareSymbolic(a, a, 1e-9).match, SymbolicMatch::kDifferent) << a;
    EXPECT_EQ(MathAnswersEquivalent(a, b), MathAnswersEquivalent(b, a)) << a << " | " << b;
  }
  // The soup is meant to reach the parser's deeper paths, not only fail fast.
  EXPECT_GT(parsed, 50) << "parsed " << parsed;
}

TEST(SymbolicFuzzTest, EveryPrefixOfAnExpressionIsHandled) {
  const std::vector<std::string> expressions = {
      "\\frac{\\sqrt{6}-\\sqrt{2}}{4}", "\\sin^2x+\\cos^2x", "\\sqrt[3]{x^2+2x+1}",
      "e^{i\\pi}+1", "\\log_2(8x)-\\ln|x-1|", "\\binom{10}{3}\\cdot5!", "y=\\frac{2x+1}{x-3}",
      "2\\alpha_1+\\theta^{-2}", "sqrt(2)*x**2/3", "(1+i)^{10}-32i"};
  for (const std::string& e : expressions) {
    EXPECT_TRUE(ParsesAsSymbolic(e)) << e;
    for (size_t len = 0; len <= e.size(); ++len) {
      const std::string prefix = e.substr(0, len);
      EXPECT_NE(CompareSymbolic(prefix, prefix, 1e-9).match, SymbolicMatch::kDifferent)
          << prefix;
      EXPECT_EQ(MathAnswersEquivalent(prefix, e), MathAnswersEquivalent(e, prefix)) << prefix;
    }
  }
}

TEST(SymbolicFuzzTest, RandomBytesNeverEqualAnExpression) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> byte(1, 255);
  for (int n = 0; n < 500; ++n) {
    std::string s(1 + n % 40, ' ');
    for (char& c : s) c = static_cast<char>(byte(rng));
    if (s == "x+1") continue;
    SymbolicMatch m = CompareSymbolic(s, "x^2+\\sqrt{2}", 1e-9).match;
    EXPECT_NE(m, SymbolicMatch::kEqual) << s;
  }
}

}  // namespace
}  // namespace rlpost
