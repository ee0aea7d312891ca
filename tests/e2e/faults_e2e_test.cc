// Faults during `rlpost train` with the real processes on loopback: kill -9 a
// rollout worker, the verifier, the controller or a learner rank mid-run, or
// add a rollout worker mid-run. In each the run completes and `rlpost audit`
// finds no sample lost or duplicated. The kills are timed by the progress
// lines, so where in a step they land varies; every landing must end well.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <regex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/cli/cli_test_util.h"

namespace rlpost {
namespace {

using ::rlpost::testing::BinDir;
using ::rlpost::testing::ProcessesMentioning;
using ::rlpost::testing::ReadFile;
using ::rlpost::testing::RunProcess;
using ::rlpost::testing::SourceDir;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using namespace std::chrono_literals;

class FaultsTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = ::rlpost::testing::MakeTempDir("rlpost_faults_e2e"); }
  void TearDown() override {
    launcher_.Stop(5000ms);
    if (extra_) extra_->Stop(2000ms);
    if (HasFailure()) std::cerr << "launcher output:\n" << ReadFile(log_);
    std::filesystem::remove_all(dir_);
  }

  // Starts `rlpost train` on the quick config, shortened, checkpointing
  // every 2 steps.
  void StartRun(std::vector<std::string> extra) {
    std::vector<std::string> argv = {
        BinDir() + "/rlpost", "train", "--config",
        SourceDir() + "/configs/arith_grpo_quick.yaml", "run.output_dir=" + dir_, "run.name=f",
        "sft.steps=20", "rl.steps=8", "eval.size=8", "run.checkpoint_every=2",
        "rl.skip_uniform_groups=false",  // every step trains: versions move on
        "net.connect_backoff_ms=50"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    log_ = dir_ + "/launcher.log";
    ASSERT_TRUE(launcher_.Start(argv, log_).ok());
  }

  // Waits (up to 5 minutes) until the launcher's output matches `pattern`;
  // returns the first capture group.
  std::string WaitFor(const std::string& pattern) {
    const std::regex re(pattern);
    for (int i = 0; i < 3000; ++i) {
      std::smatch m;
      const std::string text = ReadFile(log_);
      if (std::regex_search(text, m, re)) return m.size() > 1 ? m[1].str() : m[0].str();
      if (!launcher_.running()) break;
      std::this_thread::sleep_for(100ms);
    }
    ADD_FAILURE() << "never saw /" << pattern << "/";
    return "";
  }

  // The pid the launcher printed for `role` ("rollout\\[1\\]").
  int PidOf(const std::string& role) {
    const std::string pid = WaitFor("rlpost:   " + role + " .*pid ([0-9]+)");
    return pid.empty() ? -1 : std::stoi(pid);
  }

  // Waits for the run to end; expects success and a clean audit.
  void ExpectCompletesWithCleanAudit() {
    ASSERT_TRUE(launcher_.Wait(600s)) << "the run did not end";
    if (extra_) extra_->Stop(2000ms);  // a process the test added: not the launcher's
    ASSERT_EQ(launcher_.exit_code(), 0) << ReadFile(log_);
    const std::string out = ReadFile(log_);
    EXPECT_THAT(out, HasSubstr("step 8/8"));
    EXPECT_THAT(out, HasSubstr("held-out accuracy"));
    auto audit = RunProcess({BinDir() + "/rlpost", "audit", dir_ + "/f"}, dir_ + "/audit.log", 60s);
    EXPECT_EQ(audit.exit_code, 0) << audit.output;
    EXPECT_THAT(audit.output, HasSubstr(", lost: 0, duplicated: 0"));
    EXPECT_THAT(ProcessesMentioning(dir_), IsEmpty());
  }

  // Pauses the run, starts `argv` as the test's extra process, waits until
  // it has registered with the controller, then resumes the run.
  void JoinWhilePaused(const std::string& controller, const std::vector<std::string>& argv) {
    auto paused = RunProcess({BinDir() + "/rlctl", "--addr", controller, "pause"},
                             dir_ + "/pause.log", 60s);
    ASSERT_EQ(paused.exit_code, 0) << paused.output;
    extra_ = std::make_unique<Subprocess>();
    ASSERT_TRUE(extra_->Start(argv, dir_ + "/extra.log").ok());
    for (int i = 0; i < 600 && ReadFile(dir_ + "/extra.log").find("registered with controller") ==
                                   std::string::npos;
         ++i) {
      std::this_thread::sleep_for(100ms);
    }
    auto resumed = RunProcess({BinDir() + "/rlctl", "--addr", controller, "resume"},
                              dir_ + "/resume.log", 60s);
    ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  }

  std::string dir_, log_;
  Subprocess launcher_;
  std::unique_ptr<Subprocess> extra_;
};

TEST_F(FaultsTest, KillingARolloutWorkerMidRunLosesNothing) {
  StartRun({"rollout.workers=2"});
  const int pid = PidOf("rollout\\[1\\]");
  WaitFor("step 2/8");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ExpectCompletesWithCleanAudit();
  EXPECT_THAT(ReadFile(log_), HasSubstr("rollout[1] exited with status 137; starting it again"));
}

TEST_F(FaultsTest, KillingTheVerifierMidRunLosesNothing) {
  StartRun({"rollout.workers=1"});
  const int pid = PidOf("verifier");
  WaitFor("step 2/8");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ExpectCompletesWithCleanAudit();
  EXPECT_THAT(ReadFile(log_), HasSubstr("verifier exited with status 137; starting it again"));
}

TEST_F(FaultsTest, AKilledControllerIsRestartedAndResumesFromTheCheckpoint) {
  StartRun({"rollout.workers=1"});
  const int pid = PidOf("controller");
  WaitFor("step 3/8");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ExpectCompletesWithCleanAudit();
  const std::string out = ReadFile(log_);
  EXPECT_THAT(out, HasSubstr("the controller exited with status 137; starting it again with "
                             "run.resume=true"));
  EXPECT_THAT(out, ::testing::ContainsRegex("resumed from .*/f/checkpoints/version-[0-9]+ after step [0-9]"));
}

TEST_F(FaultsTest, AsyncModeKeepsItsStalenessBoundAcrossAControllerRestart) {
  StartRun({"rollout.workers=1", "rl.mode=async", "rl.max_staleness=2"});
  const int pid = PidOf("controller");
  WaitFor("step 3/8");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ExpectCompletesWithCleanAudit();
  EXPECT_THAT(ReadFile(log_), HasSubstr("async mode: rollouts run up to 2 step(s) ahead"));
  auto audit = RunProcess({BinDir() + "/rlpost", "audit", dir_ + "/f"}, dir_ + "/audit.log", 60s);
  EXPECT_THAT(audit.output, ::testing::ContainsRegex("staleness: max [0-2] \\(bound 2\\), over the bound: 0"));
}

TEST_F(FaultsTest, AKilledLearnerRankBringsTheGroupBackFromTheCheckpoint) {
  StartRun({"rollout.workers=1", "learner.world_size=2"});
  const int pid = PidOf("learner\\[1\\]");
  WaitFor("step 3/8");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ExpectCompletesWithCleanAudit();
  const std::string out = ReadFile(log_);
  EXPECT_THAT(out, HasSubstr("a learner rank died; starting every rank again"));
  EXPECT_THAT(out, ::testing::ContainsRegex("resumed from .*/f/checkpoints/version-[0-9]+ after step [0-9]"));
}

TEST_F(FaultsTest, ARolloutWorkerAddedMidRunServes) {
  StartRun({"rollout.workers=1"});
  const std::string controller = WaitFor("rlctl --addr (127\\.0\\.0\\.1:[0-9]+) status");
  absl::StatusOr<int> port = PickFreePort();
  ASSERT_TRUE(port.ok());
  const std::string address = absl::StrCat("127.0.0.1:", *port);
  // Paused before the next RL step until the new worker has registered, so
  // it joins mid-run however long it takes to start.
  JoinWhilePaused(controller, {BinDir() + "/rlpost-rollout", "--listen", address, "--config",
                               SourceDir() + "/configs/arith_grpo_quick.yaml", "--controller",
                               controller, "--advertise", address});
  ExpectCompletesWithCleanAudit();
  EXPECT_THAT(ReadFile(log_), HasSubstr("rollout worker joined: " + address));
}

TEST_F(FaultsTest, AVerifierAddedMidRunTakesItsShare) {
  StartRun({"rollout.workers=1"});
  const std::string controller = WaitFor("rlctl --addr (127\\.0\\.0\\.1:[0-9]+) status");
  absl::StatusOr<int> port = PickFreePort();
  ASSERT_TRUE(port.ok());
  const std::string address = absl::StrCat("127.0.0.1:", *port);
  const std::string metrics_file = dir_ + "/extra.metrics.port";
  JoinWhilePaused(controller, {BinDir() + "/rlpost-verifier", "--listen", address,
                               "--controller", controller, "--advertise", address,
                               "--metrics-listen", "127.0.0.1:0", "--metrics-port-file",
                               metrics_file});
  // Its share, read from its /metrics before it is stopped.
  ASSERT_TRUE(launcher_.Wait(600s)) << "the run did not end";
  const int metrics_port = std::stoi(ReadFile(metrics_file));
  EXPECT_GT(::rlpost::testing::MetricValue(
                ::rlpost::testing::HttpGet(metrics_port, "/metrics"),
                "rlpost_grpc_server_handled_total{grpc_service=\"rlpost.v1.VerifierService\","
                "grpc_method=\"Verify\",grpc_code=\"OK\"}"),
            0);
  ExpectCompletesWithCleanAudit();
  EXPECT_THAT(ReadFile(log_), HasSubstr("verifier joined: " + address + "; 2 serving"));
}

}  // namespace
}  // namespace rlpost
