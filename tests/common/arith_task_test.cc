#include "controller/arith_task.h"

#include <gtest/gtest.h>

#include <set>

namespace rlpost {
namespace {

TEST(ArithTaskTest, SolutionAddsColumnsWithCarries) {
  EXPECT_EQ(ArithSolution(478, 356), "8+6=14, 7+5+1=13, 4+3+1=8, \\boxed{834}");
  EXPECT_EQ(ArithSolution(0, 0), "0+0=0, \\boxed{0}");
  EXPECT_EQ(ArithSolution(95, 7), "5+7=12, 9+0+1=10, \\boxed{102}");
  EXPECT_EQ(ArithPrompt(95, 7), "95+7=");
}

TEST(ArithTaskTest, DeterministicAndDisjointSplits) {
  auto train = GenerateArithProblems(1, 500, 999, Split::kTrain);
  auto again = GenerateArithProblems(1, 500, 999, Split::kTrain);
  auto heldout = GenerateArithProblems(1, 100, 999, Split::kHeldout);
  auto other_seed = GenerateArithProblems(2, 100, 999, Split::kHeldout);
  ASSERT_EQ(train.size(), 500u);
  ASSERT_EQ(heldout.size(), 100u);
  std::set<std::string> train_prompts;
  for (size_t i = 0; i < train.size(); ++i) {
    EXPECT_EQ(train[i].prompt, again[i].prompt);
    train_prompts.insert(train[i].prompt);
  }
  for (const auto& p : heldout) EXPECT_EQ(train_prompts.count(p.prompt), 0u) << p.prompt;
  // Another seed draws another sample, but still outside the train split.
  for (const auto& p : other_seed) EXPECT_EQ(train_prompts.count(p.prompt), 0u);
  EXPECT_NE(heldout[0].prompt, other_seed[0].prompt);
}

}  // namespace
}  // namespace rlpost
