#include "reward/reward.h"

#include <gtest/gtest.h>

namespace rlpost {
namespace {

TEST(RewardTest, WellFormedAnswer) {
  EXPECT_TRUE(HasWellFormedAnswer("so \\boxed{12}"));
  EXPECT_TRUE(HasWellFormedAnswer("x \\boxed{\\frac{1}{2}}."));
  EXPECT_FALSE(HasWellFormedAnswer("no answer"));
  EXPECT_FALSE(HasWellFormedAnswer("\\boxed{1} and \\boxed{2}"));
  EXPECT_FALSE(HasWellFormedAnswer("\\boxed{12"));
  EXPECT_FALSE(HasWellFormedAnswer("\\boxed{12} then more words"));
}

TEST(RewardTest, PartsAreWeightedAndSummed) {
  RewardWeights w{2.0, 0.5};
  RewardParts p = ComputeReward(w, {1.0, "\\boxed{3}"});
  EXPECT_DOUBLE_EQ(p.correctness, 2.0);
  EXPECT_DOUBLE_EQ(p.format, 0.5);
  EXPECT_DOUBLE_EQ(p.total, 2.5);
  p = ComputeReward(w, {0.0, "garbage"});
  EXPECT_DOUBLE_EQ(p.total, 0.0);
}

}  // namespace
}  // namespace rlpost
