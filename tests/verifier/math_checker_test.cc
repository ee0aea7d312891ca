// CheckMathAnswer end to end: statuses, verdicts, reasons.

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "verifier/math/math_checker.h"

namespace rlpost {
namespace {

using ::testing::HasSubstr;
using Status = MathVerdict::Status;

TEST(CheckMathAnswerTest, CorrectBoxedAnswer) {
  MathVerdict v = CheckMathAnswer("Adding, we get $\\boxed{\\dfrac{1}{2}}$.", "0.5");
  EXPECT_EQ(v.status, Status::kOk);
  EXPECT_TRUE(v.correct);
  EXPECT_EQ(v.extracted, "\\frac{1}{2}");
  EXPECT_THAT(v.reason, HasSubstr("boxed"));
  EXPECT_THAT(v.reason, HasSubstr("numbers equal exactly"));
}

TEST(CheckMathAnswerTest, WrongAnswer) {
  MathVerdict v = CheckMathAnswer("\\boxed{3}", "$4$");
  EXPECT_EQ(v.status, Status::kOk);
  EXPECT_FALSE(v.correct);
  EXPECT_EQ(v.extracted, "3");
  EXPECT_THAT(v.reason, HasSubstr("numbers differ"));
}

TEST(CheckMathAnswerTest, ReferenceMayBeWrapped) {
  EXPECT_TRUE(CheckMathAnswer("\\boxed{7}", "\\boxed{7}").correct);
  EXPECT_TRUE(CheckMathAnswer("\\boxed{7}", "\\(7\\)").correct);
}

TEST(CheckMathAnswerTest, NoAnswer) {
  MathVerdict v = CheckMathAnswer("I think it is about seven.", "7");
  EXPECT_EQ(v.status, Status::kNoAnswer);
  EXPECT_FALSE(v.correct);
  EXPECT_EQ(v.extracted, "");
  EXPECT_THAT(v.reason, HasSubstr("no final answer"));
}

TEST(CheckMathAnswerTest, AnswerEmptyAfterNormalisation) {
  MathVerdict v = CheckMathAnswer("\\boxed{\\,\\quad}", "7");
  EXPECT_EQ(v.status, Status::kNoAnswer);
  EXPECT_THAT(v.reason, HasSubstr("empty after normalisation"));
}

TEST(CheckMathAnswerTest, LastNumberFallback) {
  MathCheckOptions options;
  options.fallback_to_last_number = true;
  MathVerdict v = CheckMathAnswer("so she pays 1,200 dollars", "1200", options);
  EXPECT_EQ(v.status, Status::kOk);
  EXPECT_TRUE(v.correct);
  EXPECT_THAT(v.reason, HasSubstr("last number"));
}

TEST(CheckMathAnswerTest, EmptyReferenceIsAnError) {
  MathVerdict v = CheckMathAnswer("\\boxed{1}", "  $ $ ");
  EXPECT_EQ(v.status, Status::kError);
  EXPECT_FALSE(v.correct);
  EXPECT_THAT(v.reason, HasSubstr("reference answer is empty"));
}

TEST(CheckMathAnswerTest, OversizedReferenceIsAnError) {
  MathCheckOptions options;
  options.max_reference_bytes = 10;
  MathVerdict v = CheckMathAnswer("\\boxed{1}", std::string(11, '1'), options);
  EXPECT_EQ(v.status, Status::kError);
  EXPECT_THAT(v.reason, HasSubstr("the limit is 10"));
}

TEST(CheckMathAnswerTest, InvalidToleranceIsAnError) {
  MathCheckOptions options;
  options.relative_tolerance = -1;
  MathVerdict v = CheckMathAnswer("\\boxed{1}", "1", options);
  EXPECT_EQ(v.status, Status::kError);
  EXPECT_THAT(v.reason, HasSubstr("relative_tolerance"));
}

TEST(CheckMathAnswerTest, Gsm8kStyle) {
  MathVerdict v = CheckMathAnswer("16 - 3 - 4 = 9 eggs, 9 * 2 = 18\n#### 18", "18");
  EXPECT_EQ(v.status, Status::kOk);
  EXPECT_TRUE(v.correct);
  EXPECT_THAT(v.reason, HasSubstr("####"));
}

TEST(CheckMathAnswerTest, TypicalMathSpellings) {
  struct Case {
    const char* response;
    const char* reference;
    bool correct;
  };
  const Case cases[] = {
      {"\\boxed{10080}", "10,\\!080", true},
      {"\\boxed{90}", "90^\\circ", true},
      {"\\boxed{90^{\\circ}}", "90", true},
      {"\\boxed{\\$32,348}", "\\$32,\\!348", true},
      {"\\boxed{B}", "\\text{(B)}", true},
      {"\\boxed{\\text{(C)}}", "\\text{(B)}", false},
      {"\\boxed{\\frac{3}{4}}", "\\frac 34", true},
      {"\\boxed{11\\sqrt{2}}", "11\\sqrt2", true},
      {"\\boxed{(3, \\frac{\\pi}{2})}", "\\left( 3, \\frac{\\pi}{2} \\right)", true},
      {"\\boxed{-2, 1}", "-2,1", true},
      {"\\boxed{1, -2}", "-2,1", true},
      {"\\boxed{x = 5}", "5", true},
      {"\\boxed{\\text{even}}", "\\text{Even}", true},
      {"\\boxed{0.15}", "\\frac{3}{20}", true},
      {"\\boxed{15\\%}", "15", true},
      {"\\boxed{137.5}", "137 \\frac{1}{2}", true},
  };
  for (const Case& c : cases) {
    MathVerdict v = CheckMathAnswer(c.response, c.reference);
    EXPECT_EQ(v.status, Status::kOk) << c.response << " vs " << c.reference;
    EXPECT_EQ(v.correct, c.correct) << c.response << " vs " << c.reference << ": " << v.reason;
  }
}

TEST(CheckMathAnswerTest, VersionString) {
  EXPECT_STREQ(kMathVerifierVersion, "rlpost-math/0.2.0");
}

}  // namespace
}  // namespace rlpost
