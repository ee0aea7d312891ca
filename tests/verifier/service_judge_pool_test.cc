// JudgePool: bounded concurrency, a bounded queue and RESOURCE_EXHAUSTED.

#include "verifier/judge_pool.h"

#include <atomic>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rlpost {
namespace {

using ::testing::HasSubstr;

TEST(JudgePoolTest, RunsEveryAcceptedJob) {
  std::atomic<int> ran{0};
  {
    JudgePool pool(2, 100);
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(pool.Submit([&] { ran.fetch_add(1); }).ok());
    pool.Shutdown();  // drains the queue before joining
  }
  EXPECT_EQ(ran.load(), 50);
}

TEST(JudgePoolTest, FullQueueIsResourceExhaustedNamingTheLimit) {
  JudgePool pool(1, 2);
  absl::Notification release;
  absl::Notification started;
  ASSERT_TRUE(pool.Submit([&] {
                    started.Notify();
                    release.WaitForNotification();
                  })
                  .ok());
  started.WaitForNotification();  // the only thread is busy
  ASSERT_TRUE(pool.Submit([] {}).ok());
  ASSERT_TRUE(pool.Submit([] {}).ok());
  EXPECT_EQ(pool.queue_depth(), 2);
  EXPECT_EQ(pool.in_flight(), 1);
  absl::Status full = pool.Submit([] {});
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.message(), HasSubstr("--max-queue=2"));
  release.Notify();
  pool.Shutdown();
  EXPECT_EQ(pool.queue_depth(), 0);
}

TEST(JudgePoolTest, ZeroQueueStillAcceptsWhileAThreadIsIdle) {
  JudgePool pool(1, 0);
  absl::Notification release;
  ASSERT_TRUE(pool.Submit([&] { release.WaitForNotification(); }).ok());
  EXPECT_EQ(pool.Submit([] {}).code(), absl::StatusCode::kResourceExhausted);
  release.Notify();
}

TEST(JudgePoolTest, SubmitAfterShutdownIsFailedPrecondition) {
  JudgePool pool(1, 1);
  pool.Shutdown();
  absl::Status s = pool.Submit([] {});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("shutting down"));
}

}  // namespace
}  // namespace rlpost
