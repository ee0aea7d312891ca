#include "controller/run_control.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "controller/run_report.h"

namespace rlpost {
namespace {

using ::testing::HasSubstr;

TEST(RunControlTest, IdleControllerRefusesRunActions) {
  RunControl control;
  EXPECT_EQ(control.Status().state(), v1::RUN_STATE_IDLE);
  for (const absl::Status& s :
       {control.Pause().status(), control.Resume().status(), control.Stop().status()}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(s.message()), HasSubstr("no run is loaded"));
  }
}

TEST(RunControlTest, StatesFollowTheRunAndTheOperator) {
  RunControl control;
  control.BeginRun("r", 10);
  EXPECT_EQ(control.Status().state(), v1::RUN_STATE_STARTING);
  ASSERT_TRUE(control.Pause().ok());  // during the warm start: takes effect before step 1
  EXPECT_EQ(control.Status().state(), v1::RUN_STATE_STARTING);
  EXPECT_THAT(control.Status().message(), HasSubstr("will wait before step 1"));
  ASSERT_TRUE(control.Resume().ok());
  EXPECT_EQ(control.Status().run_name(), "r");
  EXPECT_EQ(control.Status().total_steps(), 10);
  control.BeginSteps();
  EXPECT_EQ(control.Status().state(), v1::RUN_STATE_RUNNING);
  ASSERT_TRUE(control.Pause().ok());
  EXPECT_EQ(control.Status().state(), v1::RUN_STATE_PAUSED);
  EXPECT_THAT(control.Status().message(), HasSubstr("pausing"));
  ASSERT_TRUE(control.Resume().ok());
  EXPECT_EQ(control.Status().state(), v1::RUN_STATE_RUNNING);
  EXPECT_TRUE(control.Resume().ok());  // idempotent
  EXPECT_FALSE(control.WaitBetweenSteps(1));
  control.RecordStep(1, 0.5, 0.25);
  control.SetWeightVersion(7);
  v1::RunStatus s = control.Status();
  EXPECT_EQ(s.step(), 1);
  EXPECT_DOUBLE_EQ(s.reward_mean(), 0.5);
  EXPECT_DOUBLE_EQ(s.accuracy(), 0.25);
  EXPECT_EQ(s.weight_version(), 7);
  absl::StatusOr<v1::RunStatus> stopped = control.Stop();
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->state(), v1::RUN_STATE_STOPPING);
  EXPECT_EQ(control.Pause().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(control.WaitBetweenSteps(1));
  control.Finish();
  EXPECT_EQ(control.Status().state(), v1::RUN_STATE_FINISHED);
  EXPECT_THAT(control.Status().message(), HasSubstr("stopped by operator"));
  EXPECT_THAT(std::string(control.Stop().status().message()), HasSubstr("already finished"));
}

TEST(RunControlTest, PausedLoopParksUntilResumed) {
  RunControl control;
  control.BeginRun("r", 3);
  control.BeginSteps();
  ASSERT_TRUE(control.Pause().ok());
  bool stop = true;
  std::thread loop([&] { stop = control.WaitBetweenSteps(2); });
  ASSERT_TRUE(control.WaitUntilParked(absl::Seconds(30)));
  EXPECT_THAT(control.Status().message(), HasSubstr("paused after step 2"));
  ASSERT_TRUE(control.Resume().ok());
  loop.join();
  EXPECT_FALSE(stop);
}

TEST(RunControlTest, StopAndAbortWakeAParkedLoop) {
  for (bool abort : {false, true}) {
    RunControl control;
    control.BeginRun("r", 3);
    control.BeginSteps();
    ASSERT_TRUE(control.Pause().ok());
    bool stop = false;
    std::thread loop([&] { stop = control.WaitBetweenSteps(0); });
    ASSERT_TRUE(control.WaitUntilParked(absl::Seconds(30)));
    if (abort) {
      control.Abort();
    } else {
      ASSERT_TRUE(control.Stop().ok());
    }
    loop.join();
    EXPECT_TRUE(stop);
  }
}

TEST(RunControlTest, FailureCarriesTheMessage) {
  RunControl control;
  control.BeginRun("r", 3);
  control.Fail("rollout 127.0.0.1:9 unreachable");
  EXPECT_EQ(control.Status().state(), v1::RUN_STATE_FAILED);
  EXPECT_EQ(control.Status().message(), "rollout 127.0.0.1:9 unreachable");
  EXPECT_THAT(std::string(control.Resume().status().message()), HasSubstr("already failed"));
}

TEST(RunReportTest, ProgressLineHasEveryField) {
  StepMetrics m;
  m.step = 3;
  m.total_steps = 40;
  m.reward_mean = 0.4123;
  m.accuracy = 0.398;
  m.response_len_mean = 38.24;
  m.tokens_per_sec = 5321.4;
  m.groups_kept = 12;
  m.groups_total = 16;
  m.step_seconds = 2.314;
  m.weight_version = 63;
  EXPECT_EQ(FormatProgressLine(m),
            "step 3/40  reward 0.412  acc 0.398  len 38.2  tok/s 5321  kept 12/16  step_s 2.31  v 63");
  EXPECT_THAT(MetricsJsonLine(m), HasSubstr("\"step\":3"));
  EXPECT_THAT(MetricsJsonLine(m), HasSubstr("\"groups_kept\":12"));
}

TEST(RunReportTest, HeldoutTableShowsBeforeAfterAndGain) {
  EXPECT_EQ(FormatHeldoutTable(0.315, 0.52),
            "held-out accuracy   before RL   after RL   gain\n"
            "                    31.5%       52.0%      +20.5 pts\n");
  EXPECT_THAT(FormatHeldoutTable(0.5, 0.4), HasSubstr("-10.0 pts"));
}

TEST(RunReportTest, SummaryJsonHasTheRequiredKeys) {
  RunSummary s;
  s.run_name = "x";
  s.steps = 4;
  const std::string json = SummaryJson(s);
  for (const char* key : {"\"heldout_accuracy_before\"", "\"heldout_accuracy_after\"",
                          "\"steps\": 4", "\"wall_seconds\"", "\"run_name\": \"x\""}) {
    EXPECT_THAT(json, HasSubstr(key));
  }
}

}  // namespace
}  // namespace rlpost
