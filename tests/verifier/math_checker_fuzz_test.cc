// Fuzz-style properties: the checker takes arbitrary bytes without crashing,
// throwing or running long, and its verdicts stay self-consistent.

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "verifier/math/math_checker.h"

namespace rlpost {
namespace {

using Status = MathVerdict::Status;

// Fragments that exercise every parser path: boxes, braces, fractions,
// intervals, sets, matrices, markers, separators, exponents.
const std::vector<std::string>& Fragments() {
  static const std::vector<std::string> kFragments = {
      "\\boxed{", "\\fbox{", "{", "}", "\\frac", "\\dfrac", "\\sqrt", "\\left", "\\right",
      "(", ")", "[", "]", "\\{", "\\}", ",", ",\\!", "{,}", "$", "$$", "\\(", "\\)",
      "0", "1", "2", "7", "9", "12", "000", ".", "-", "+", "/", "e", "E", "^", "_",
      "\\times", "\\cdot", "10^", "\\circ", "^\\circ", "\\%", "%", "\\$", "\\text{",
      "\\mathrm{", "\\mbox{", "####", "<answer>", "</answer>", "final answer is ",
      "Final Answer:", "\\\\", "&", "\\begin{pmatrix}", "\\end{pmatrix}", "\\cup", "=",
      "x", "B", "(B)", "\\pi", "\\infty", " ", "\n", "\\,", "\\quad", "\\", "\xE2\x88\x92",
      "\xC2\xB0", "\\in", "\\pm", "abc", "\\boxed"};
  return kFragments;
}

std::string RandomBytes(std::mt19937* rng, size_t max_len) {
  std::uniform_int_distribution<size_t> len(0, max_len);
  std::uniform_int_distribution<int> byte(0, 255);
  std::string s(len(*rng), '\0');
  for (char& c : s) c = static_cast<char>(byte(*rng));
  return s;
}

std::string RandomFragments(std::mt19937* rng, size_t max_pieces) {
  const auto& fragments = Fragments();
  std::uniform_int_distribution<size_t> count(0, max_pieces);
  std::uniform_int_distribution<size_t> pick(0, fragments.size() - 1);
  std::string s;
  for (size_t n = count(*rng); n > 0; --n) s += fragments[pick(*rng)];
  return s;
}

void ExpectSaneVerdict(const MathVerdict& v, const std::string& context) {
  ASSERT_TRUE(v.status == Status::kOk || v.status == Status::kNoAnswer ||
              v.status == Status::kError)
      << context;
  EXPECT_FALSE(v.reason.empty()) << context;
  if (v.status != Status::kOk) {
    EXPECT_FALSE(v.correct) << context;
  } else {
    EXPECT_FALSE(v.extracted.empty()) << context;
  }
}

TEST(MathCheckerFuzzTest, RandomBytes) {
  std::mt19937 rng(20240611);
  for (int i = 0; i < 3000; ++i) {
    std::string response = RandomBytes(&rng, 300);
    std::string reference = RandomBytes(&rng, 40);
    ExpectSaneVerdict(CheckMathAnswer(response, reference), "bytes case " + std::to_string(i));
    ExpectSaneVerdict(CheckMathAnswer("\\boxed{" + response + "}", reference),
                      "boxed bytes case " + std::to_string(i));
  }
}

TEST(MathCheckerFuzzTest, RandomLatexFragments) {
  std::mt19937 rng(7);
  MathCheckOptions fallback;
  fallback.fallback_to_last_number = true;
  for (int i = 0; i < 5000; ++i) {
    std::string response = RandomFragments(&rng, 40);
    std::string reference = RandomFragments(&rng, 12);
    std::string context = "response '" + response + "' reference '" + reference + "'";
    ExpectSaneVerdict(CheckMathAnswer(response, reference), context);
    ExpectSaneVerdict(CheckMathAnswer(response, reference, fallback), context);
  }
}

TEST(MathCheckerFuzzTest, EquivalenceIsReflexiveAndSymmetric) {
  std::mt19937 rng(99);
  for (int i = 0; i < 3000; ++i) {
    std::string a = RandomFragments(&rng, 10);
    std::string b = (i % 3 == 0) ? a + " " : RandomFragments(&rng, 10);
    std::string context = "'" + a + "' vs '" + b + "'";
    if (!NormalizeMathAnswer(a).empty()) {
      EXPECT_TRUE(MathAnswersEquivalent(a, a)) << context;
    }
    EXPECT_EQ(MathAnswersEquivalent(a, b), MathAnswersEquivalent(b, a)) << context;
  }
}

TEST(MathCheckerFuzzTest, BoxedReferenceIsJudgedCorrect) {
  // Whatever the reference, boxing it as the response must be correct, as
  // long as it has balanced braces (otherwise the box ends elsewhere).
  std::mt19937 rng(3);
  int checked = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string reference = RandomFragments(&rng, 8);
    int depth = 0;
    bool balanced = true;
    for (size_t k = 0; k < reference.size(); ++k) {
      bool escaped = k > 0 && reference[k - 1] == '\\';
      if (reference[k] == '{' && !escaped) ++depth;
      if (reference[k] == '}' && !escaped && --depth < 0) balanced = false;
    }
    if (!balanced || depth != 0 || reference.find('\\') != std::string::npos) continue;
    std::string normalized = NormalizeMathAnswer(reference);
    if (normalized.empty()) continue;
    ++checked;
    MathVerdict v = CheckMathAnswer("The answer is \\boxed{" + reference + "}.", reference);
    EXPECT_EQ(v.status, Status::kOk) << reference;
    EXPECT_TRUE(v.correct) << reference << ": " << v.reason;
  }
  EXPECT_GT(checked, 100);
}

TEST(MathCheckerFuzzTest, AdversarialInputsFinish) {
  // Shapes that make naive scanners quadratic or recursion deep. There is
  // no timing assertion: a regression shows up as a test timeout.
  auto repeat = [](const std::string& s, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) out += s;
    return out;
  };
  const size_t n = 70 * 1024;
  const std::vector<std::string> inputs = {
      repeat("\\boxed{", n / 7),
      repeat("\\boxed{1}", n / 9),
      repeat("{", n) ,
      repeat("(", n) + repeat(")", n),
      repeat("\\frac{", n / 6),
      repeat("\\frac{1}{", n / 9) + repeat("}", n / 9),
      repeat("\\text{", n / 6),
      repeat("1,", n / 2) + "1",
      repeat("(1,", n / 3) + repeat(")", n / 3),
      repeat("\\{1,\\{", n / 6),
      repeat("9", n),
      repeat("\\", n),
      repeat("$", n),
      repeat("<answer>", n / 8),
      repeat("final answer is ", n / 16),
      repeat("#", n),
      "\\boxed{" + repeat("\\{1,2\\},", 2000) + "}",
      "\\boxed{" + repeat("((1,2),(3,4)),", 1000) + "}",
      "\\boxed{" + repeat("\\boxed{", 5000) + "1" + repeat("}", 5000) + "}",
  };
  for (const std::string& input : inputs) {
    ExpectSaneVerdict(CheckMathAnswer(input, "1"), input.substr(0, 40));
    ExpectSaneVerdict(CheckMathAnswer(input, input.substr(0, 60000)), input.substr(0, 40));
    ExpectSaneVerdict(CheckMathAnswer("\\boxed{" + input + "}", input.substr(0, 60000)),
                      input.substr(0, 40));
  }
  // Nested wrappers in the reference unwrap completely.
  std::string deep = repeat("\\boxed{", 8000) + "5" + repeat("}", 8000);
  MathVerdict v = CheckMathAnswer("\\boxed{5}", deep);
  EXPECT_TRUE(v.correct) << v.reason;
}

}  // namespace
}  // namespace rlpost
