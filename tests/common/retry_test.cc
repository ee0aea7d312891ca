#include "common/retry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

namespace rlpost {
namespace {

using ::testing::HasSubstr;

TEST(RetryTest, RetriesUnavailableWithDoublingBackoffThenNamesTarget) {
  std::vector<int64_t> sleeps;
  int calls = 0;
  RetryPolicy policy;
  policy.max_attempts = 4;
  policy.initial_backoff = std::chrono::milliseconds(10);
  absl::Status s = RetryWithBackoff(
      [&] {
        ++calls;
        return absl::UnavailableError("connection refused");
      },
      policy, "rollout 127.0.0.1:1",
      [&](std::chrono::milliseconds d) { sleeps.push_back(d.count()); });
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(sleeps, (std::vector<int64_t>{10, 20, 40}));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(s.message()), HasSubstr("rollout 127.0.0.1:1"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("4 attempts"));
}

TEST(RetryTest, StopsOnSuccess) {
  int calls = 0;
  absl::Status s = RetryWithBackoff(
      [&] { return ++calls < 3 ? absl::UnavailableError("x") : absl::OkStatus(); },
      RetryPolicy{}, "x", [](std::chrono::milliseconds) {});
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(calls, 3);
}

TEST(RetryTest, DoesNotRetryInvalidArgument) {
  int calls = 0;
  absl::Status s = RetryWithBackoff(
      [&] {
        ++calls;
        return absl::InvalidArgumentError("bad");
      },
      RetryPolicy{}, "x", [](std::chrono::milliseconds) {});
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace rlpost
