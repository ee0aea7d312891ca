// Final-answer extraction from full responses, and answer-only unwrapping.

#include <string>

#include "gtest/gtest.h"
#include "verifier/math/math_checker.h"

namespace rlpost {
namespace {

TEST(ExtractFinalAnswerTest, TakesLastBoxed) {
  EXPECT_EQ(ExtractFinalAnswer("first \\boxed{1}, then \\boxed{2}."), "2");
}

TEST(ExtractFinalAnswerTest, HandlesNestedBraces) {
  EXPECT_EQ(ExtractFinalAnswer("so $\\boxed{\\frac{1}{\\sqrt{2}}}$"), "\\frac{1}{\\sqrt{2}}");
  EXPECT_EQ(ExtractFinalAnswer("\\boxed{\\{1,2\\}}"), "\\{1,2\\}");
}

TEST(ExtractFinalAnswerTest, AcceptsFbox) {
  EXPECT_EQ(ExtractFinalAnswer("answer: \\fbox{42}"), "42");
}

TEST(ExtractFinalAnswerTest, AcceptsSpaceBeforeBraceAndBraceLessToken) {
  EXPECT_EQ(ExtractFinalAnswer("\\boxed {7}"), "7");
  EXPECT_EQ(ExtractFinalAnswer("$\\boxed 5$"), "5");
}

TEST(ExtractFinalAnswerTest, SkipsEmptyAndUnclosedBoxes) {
  // The echoed instruction "\boxed{}" and a box cut off by the length limit
  // are not answers; the last complete one is.
  EXPECT_EQ(ExtractFinalAnswer("\\boxed{3} and remember \\boxed{}"), "3");
  EXPECT_EQ(ExtractFinalAnswer("\\boxed{3} but wait \\boxed{\\frac{1"), "3");
}

TEST(ExtractFinalAnswerTest, DoesNotMistakeOtherCommandsForBoxed) {
  EXPECT_EQ(ExtractFinalAnswer("\\boxedness{3}"), "");
}

TEST(ExtractFinalAnswerTest, AnswerTag) {
  EXPECT_EQ(ExtractFinalAnswer("<think>maybe 3</think><answer> 4 </answer>"), "4");
  EXPECT_EQ(ExtractFinalAnswer("<answer>1</answer> no, <ANSWER>2</ANSWER>"), "2");
}

TEST(ExtractFinalAnswerTest, BoxedWinsOverAnswerTag) {
  EXPECT_EQ(ExtractFinalAnswer("<answer>The result is \\boxed{9}</answer>"), "9");
}

TEST(ExtractFinalAnswerTest, FinalAnswerPhrase) {
  EXPECT_EQ(ExtractFinalAnswer("So the final answer is 17.\nDone"), "17");
  EXPECT_EQ(ExtractFinalAnswer("Final Answer: $\\frac{3}{4}$ as required"), "\\frac{3}{4}");
  EXPECT_EQ(ExtractFinalAnswer("The final answer is **12**."), "12");
}

TEST(ExtractFinalAnswerTest, Gsm8kHashes) {
  EXPECT_EQ(ExtractFinalAnswer("3 + 4 = <<3+4=7>>7\n#### 7"), "7");
  EXPECT_EQ(ExtractFinalAnswer("#### 1,450,000\n"), "1,450,000");
}

TEST(ExtractFinalAnswerTest, LastNumberFallbackIsOptIn) {
  const char* response = "We get 12 apples, then 15 more: 27 in all";
  EXPECT_EQ(ExtractFinalAnswer(response), "");
  MathCheckOptions options;
  options.fallback_to_last_number = true;
  EXPECT_EQ(ExtractFinalAnswer(response, options), "27");
  EXPECT_EQ(ExtractFinalAnswer("it costs -3,500.25 dollars", options), "-3,500.25");
  EXPECT_EQ(ExtractFinalAnswer("no digits here", options), "");
}

TEST(ExtractFinalAnswerTest, NothingFound) {
  EXPECT_EQ(ExtractFinalAnswer(""), "");
  EXPECT_EQ(ExtractFinalAnswer("I am not sure."), "");
}

TEST(ExtractFinalAnswerTest, SearchesOnlyTheTailOfLongResponses) {
  MathCheckOptions options;
  options.max_response_bytes = 100;
  std::string response = "\\boxed{1}" + std::string(200, 'x');
  EXPECT_EQ(ExtractFinalAnswer(response, options), "");
  EXPECT_EQ(ExtractFinalAnswer(response + "\\boxed{2}", options), "2");
}

TEST(ExtractReferenceAnswerTest, UnwrapsMathDelimitersAndBoxes) {
  EXPECT_EQ(ExtractReferenceAnswer("  $\\frac{1}{2}$ "), "\\frac{1}{2}");
  EXPECT_EQ(ExtractReferenceAnswer("$$3$$"), "3");
  EXPECT_EQ(ExtractReferenceAnswer("\\(x+1\\)"), "x+1");
  EXPECT_EQ(ExtractReferenceAnswer("\\[ 5 \\]"), "5");
  EXPECT_EQ(ExtractReferenceAnswer("$\\boxed{\\boxed{ 8 }}$"), "8");
}

TEST(ExtractReferenceAnswerTest, LeavesPartialWrappersAlone) {
  // "\boxed{1}+\boxed{2}" is not one box; "$a$ and $b$" is not one span.
  EXPECT_EQ(ExtractReferenceAnswer("\\boxed{1}+\\boxed{2}"), "\\boxed{1}+\\boxed{2}");
  EXPECT_EQ(ExtractReferenceAnswer("$a$ and $b$"), "$a$ and $b$");
}

}  // namespace
}  // namespace rlpost
