// MathWorkerPool: verdicts equal the in-process checker's, a hanging check
// is cut off at its deadline and its worker replaced, and the pool serves
// many threads. The hang is the debug_hang_for_test seam (the worker never
// answers), so no test depends on how fast anything runs: the only timing is
// "the call returns".

#include "verifier/math/math_worker_pool.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rlpost {
namespace {

using testing::HasSubstr;

std::unique_ptr<MathWorkerPool> MakePool(int workers) {
  absl::StatusOr<std::unique_ptr<MathWorkerPool>> pool = MathWorkerPool::Create(workers);
  EXPECT_TRUE(pool.ok()) << pool.status();
  return pool.ok() ? *std::move(pool) : nullptr;
}

TEST(MathWorkerPoolTest, RejectsBadWorkerCount) {
  absl::StatusOr<std::unique_ptr<MathWorkerPool>> pool = MathWorkerPool::Create(0);
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pool.status().message(), HasSubstr("1..256 workers"));
}

TEST(MathWorkerPoolTest, RejectsNonPositiveDeadline) {
  std::unique_ptr<MathWorkerPool> pool = MakePool(1);
  ASSERT_NE(pool, nullptr);
  absl::StatusOr<MathVerdict> v = pool->Check("\\boxed{1}", "1", {}, absl::ZeroDuration());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(v.status().message(), HasSubstr("deadline must be positive"));
}

TEST(MathWorkerPoolTest, VerdictsMatchTheInProcessChecker) {
  std::unique_ptr<MathWorkerPool> pool = MakePool(2);
  ASSERT_NE(pool, nullptr);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"so \\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{\\sqrt2}{2}"},
      {"The answer is \\boxed{7}.", "8"},
      {"no answer here", "3"},
      {"\\boxed{1}", std::string(70000, 'x')},
      {"#### 1,234", "1234"}};
  for (const auto& [response, reference] : cases) {
    absl::StatusOr<MathVerdict> remote = pool->Check(response, reference, {}, absl::Seconds(60));
    ASSERT_TRUE(remote.ok()) << remote.status();
    MathVerdict local = CheckMathAnswer(response, reference);
    EXPECT_EQ(remote->status, local.status) << response;
    EXPECT_EQ(remote->correct, local.correct) << response;
    EXPECT_EQ(remote->extracted, local.extracted) << response;
    EXPECT_EQ(remote->reason, local.reason) << response;
  }
  EXPECT_EQ(pool->workers_replaced(), 0);
}

TEST(MathWorkerPoolTest, OptionsTravelToTheWorker) {
  std::unique_ptr<MathWorkerPool> pool = MakePool(1);
  ASSERT_NE(pool, nullptr);
  MathCheckOptions options;
  options.fallback_to_last_number = true;
  absl::StatusOr<MathVerdict> v = pool->Check("I think it is 42", "42", options, absl::Seconds(60));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->correct);
  EXPECT_THAT(v->reason, HasSubstr("last number"));
}

TEST(MathWorkerPoolTest, HangingCheckIsCutOffAndTheWorkerReplaced) {
  std::unique_ptr<MathWorkerPool> pool = MakePool(1);
  ASSERT_NE(pool, nullptr);
  MathCheckOptions hang;
  hang.debug_hang_for_test = true;
  absl::StatusOr<MathVerdict> v = pool->Check("\\boxed{1}", "1", hang, absl::Milliseconds(200));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->status, MathVerdict::Status::kError);
  EXPECT_FALSE(v->correct);
  EXPECT_EQ(v->reason, "deadline exceeded");
  EXPECT_EQ(pool->workers_replaced(), 1);
  EXPECT_EQ(pool->live_workers(), 1);

  // The replacement serves the next request.
  absl::StatusOr<MathVerdict> next = pool->Check("\\boxed{2}", "2", {}, absl::Seconds(60));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->status, MathVerdict::Status::kOk);
  EXPECT_TRUE(next->correct);
}

TEST(MathWorkerPoolTest, ServesManyThreads) {
  std::unique_ptr<MathWorkerPool> pool = MakePool(2);
  ASSERT_NE(pool, nullptr);
  constexpr int kThreads = 4;
  constexpr int kChecks = 25;
  std::vector<int> correct(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int n = 0; n < kChecks; ++n) {
        const std::string value = std::to_string(t * 1000 + n);
        absl::StatusOr<MathVerdict> v =
            pool->Check("\\boxed{" + value + "}", value, {}, absl::Seconds(60));
        if (v.ok() && v->status == MathVerdict::Status::kOk && v->correct) ++correct[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int c : correct) EXPECT_EQ(c, kChecks);
  EXPECT_EQ(pool->workers_replaced(), 0);
}

TEST(MathWorkerPoolTest, HangInOneThreadDoesNotBlockOthers) {
  std::unique_ptr<MathWorkerPool> pool = MakePool(2);
  ASSERT_NE(pool, nullptr);
  std::thread hanging([&] {
    MathCheckOptions hang;
    hang.debug_hang_for_test = true;
    absl::StatusOr<MathVerdict> v = pool->Check("\\boxed{1}", "1", hang, absl::Milliseconds(300));
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->reason, "deadline exceeded");
  });
  for (int n = 0; n < 20; ++n) {
    absl::StatusOr<MathVerdict> v = pool->Check("\\boxed{x+1}", "1+x", {}, absl::Seconds(60));
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_TRUE(v->correct);
  }
  hanging.join();
  EXPECT_EQ(pool->live_workers(), 2);
}

}  // namespace
}  // namespace rlpost
