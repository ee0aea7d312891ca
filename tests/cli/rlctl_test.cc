// rlctl against an in-process control service on loopback.

#include "cli/rlctl.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/subprocess.h"
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"
#include "controller/control_service.h"
#include "controller/run_control.h"

#include "nlohmann/json.hpp"
#include "absl/strings/str_cat.h"

namespace rlpost {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Result {
  int code;
  std::string out, err;
};

class RlctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto host = ServerHost::Start("127.0.0.1:0", {&service_}, "", "test controller");
    ASSERT_TRUE(host.ok()) << host.status();
    host_ = std::move(*host);
    addr_ = host_->address();
  }
  void TearDown() override { host_->Shutdown(); }

  // A run at step 3 of 40 with two rollout workers.
  void LoadRun() {
    control_.BeginRun("demo", 40);
    v1::WorkerStatus w;
    w.set_role("rollout");
    w.set_address("127.0.0.1:4001");
    w.set_healthy(true);
    v1::WorkerStatus l = w;
    l.set_role("learner");
    l.set_address("127.0.0.1:4003");
    control_.SetWorkers({w, l});
    control_.SetHeldoutAccuracy(false, 0.315);
    control_.BeginSteps();
    control_.RecordStep(3, 0.4123, 0.398);
    control_.SetWeightVersion(63);
  }

  Result Rlctl(const std::vector<std::string>& args, const std::string& env = "") {
    std::ostringstream out, err;
    int code = RunRlctl(args, env, out, err);
    return Result{code, out.str(), err.str()};
  }

  RunControl control_;
  ControlServiceImpl service_{&control_};
  std::unique_ptr<ServerHost> host_;
  std::string addr_;
};

TEST_F(RlctlTest, StatusPrintsTheRunSummary) {
  LoadRun();
  Result r = Rlctl({"--addr", addr_, "status"});
  ASSERT_EQ(r.code, kRlctlOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("run        demo\n"));
  EXPECT_THAT(r.out, HasSubstr("state      RUNNING\n"));
  EXPECT_THAT(r.out, HasSubstr("step       3/40\n"));
  EXPECT_THAT(r.out, HasSubstr("version    63\n"));
  EXPECT_THAT(r.out, HasSubstr("reward     0.412\n"));
  EXPECT_THAT(r.out, HasSubstr("accuracy   0.398\n"));
  EXPECT_THAT(r.out, HasSubstr("held-out   before RL 31.5%\n"));
  EXPECT_THAT(r.out, HasSubstr("workers    2\n"));
  EXPECT_THAT(r.out, HasSubstr("rollout   127.0.0.1:4001"));
  EXPECT_THAT(r.out, HasSubstr("v63"));
  EXPECT_TRUE(r.err.empty());
}

TEST_F(RlctlTest, IdleControllerStatusAndRefusedActions) {
  Result r = Rlctl({"status", "--addr=" + addr_});
  ASSERT_EQ(r.code, kRlctlOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("state      IDLE"));
  r = Rlctl({"--addr", addr_, "pause"});
  EXPECT_EQ(r.code, kRlctlRpcError);
  EXPECT_THAT(r.err, HasSubstr("pause failed: cannot pause: no run is loaded"));
}

TEST_F(RlctlTest, PauseResumeStopChangeTheRunState) {
  LoadRun();
  Result r = Rlctl({"--addr", addr_, "pause"});
  ASSERT_EQ(r.code, kRlctlOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("pause: run 'demo' is PAUSED at step 3/40"));
  EXPECT_EQ(control_.Status().state(), v1::RUN_STATE_PAUSED);
  EXPECT_EQ(Rlctl({"--addr", addr_, "pause"}).code, kRlctlOk);  // idempotent

  r = Rlctl({"--addr", addr_, "run", "resume"});  // the `run` spelling
  ASSERT_EQ(r.code, kRlctlOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("is RUNNING"));
  EXPECT_EQ(control_.Status().state(), v1::RUN_STATE_RUNNING);

  r = Rlctl({"--addr", addr_, "stop"});
  ASSERT_EQ(r.code, kRlctlOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("is STOPPING"));
  EXPECT_TRUE(control_.StopRequested());

  control_.Finish();
  r = Rlctl({"--addr", addr_, "resume"});
  EXPECT_EQ(r.code, kRlctlRpcError);
  EXPECT_THAT(r.err, HasSubstr("already finished"));
  r = Rlctl({"--addr", addr_, "status"});
  EXPECT_THAT(r.out, HasSubstr("state      FINISHED"));
  EXPECT_THAT(r.out, HasSubstr("after RL"));
}

TEST_F(RlctlTest, CheckpointConfigShowAndJsonOutput) {
  Result r = Rlctl({"--addr", addr_, "checkpoint"});
  EXPECT_EQ(r.code, kRlctlRpcError);
  EXPECT_THAT(r.err, HasSubstr("checkpoint failed: cannot checkpoint: no run is loaded"));

  LoadRun();
  r = Rlctl({"--addr", addr_, "checkpoint"});
  ASSERT_EQ(r.code, kRlctlOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("checkpoint: run 'demo' is RUNNING at step 3/40"));
  EXPECT_TRUE(control_.TakeCheckpointRequest());
  EXPECT_FALSE(control_.TakeCheckpointRequest());  // one request, one checkpoint

  control_.SetConfigYaml("run:\n  name: demo\n");
  r = Rlctl({"--addr", addr_, "config", "show"});
  ASSERT_EQ(r.code, kRlctlOk) << r.err;
  EXPECT_EQ(r.out, "run:\n  name: demo\n");
  EXPECT_EQ(Rlctl({"--addr", addr_, "config"}).code, kRlctlUsage);

  r = Rlctl({"--addr", addr_, "-o", "json", "status"});
  ASSERT_EQ(r.code, kRlctlOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"run_name\": \"demo\""));
  EXPECT_THAT(r.out, HasSubstr("\"state\": \"RUN_STATE_RUNNING\""));
  EXPECT_THAT(r.out, HasSubstr("\"weight_version\": \"63\""));
  r = Rlctl({"--addr", addr_, "workers", "list"});
  ASSERT_EQ(r.code, kRlctlOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("rollout   127.0.0.1:4001"));
  EXPECT_THAT(r.out, HasSubstr("learner   127.0.0.1:4003"));
  r = Rlctl({"--addr", addr_, "workers", "drain", "127.0.0.1:4001"});
  ASSERT_EQ(r.code, kRlctlOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("drain: 127.0.0.1:4001 leaves before the next step"));
  EXPECT_EQ(control_.TakeDrainingRollouts(), std::vector<std::string>{"127.0.0.1:4001"});
  EXPECT_EQ(Rlctl({"--addr", addr_, "workers", "drain"}).code, kRlctlUsage);
  r = Rlctl({"--addr", addr_, "-o", "yaml", "status"});
  EXPECT_EQ(r.code, kRlctlUsage);
  EXPECT_THAT(r.err, HasSubstr("-o must be table or json, got 'yaml'"));
}

TEST(RlctlTokenTest, MutatingCallsNeedTheBearerTokenAndChangeNothingWithout) {
  RunControl control;
  ControlServiceImpl service(&control, "s3cret-token");
  auto host = ServerHost::Start("127.0.0.1:0", {&service}, "", "test controller");
  ASSERT_TRUE(host.ok()) << host.status();
  const std::string addr = (*host)->address();
  control.BeginRun("demo", 10);
  control.BeginSteps();
  const std::string good = ::testing::TempDir() + "/token_good";
  const std::string bad = ::testing::TempDir() + "/token_bad";
  std::ofstream(good) << "s3cret-token\n";
  std::ofstream(bad) << "guess\n";
  auto rlctl = [&](const std::vector<std::string>& args) {
    std::ostringstream out, err;
    const int code = RunRlctl(args, addr, out, err);
    return Result{code, out.str(), err.str()};
  };
  for (const char* command : {"pause", "stop", "checkpoint"}) {
    for (const std::vector<std::string>& extra :
         {std::vector<std::string>{}, std::vector<std::string>{"--token-file", bad}}) {
      std::vector<std::string> args = extra;
      args.push_back(command);
      Result r = rlctl(args);
      EXPECT_EQ(r.code, kRlctlRpcError) << command;
      EXPECT_THAT(r.err, HasSubstr("needs this controller's bearer token"));
    }
  }
  EXPECT_EQ(control.Status().state(), v1::RUN_STATE_RUNNING);  // nothing changed
  EXPECT_FALSE(control.TakeCheckpointRequest());
  EXPECT_EQ(rlctl({"status"}).code, kRlctlOk);  // reading stays open
  Result r = rlctl({"--token-file", good, "pause"});
  EXPECT_EQ(r.code, kRlctlOk) << r.err;
  EXPECT_EQ(control.Status().state(), v1::RUN_STATE_PAUSED);
  r = rlctl({"--token-file", ::testing::TempDir() + "/no_such_token", "pause"});
  EXPECT_EQ(r.code, kRlctlUsage);
  EXPECT_THAT(r.err, HasSubstr("cannot read token file"));
  (*host)->Shutdown();
}

TEST_F(RlctlTest, MetricsShowsTheNewestStepsAsATableOrJson) {
  LoadRun();
  Result r = Rlctl({"--addr", addr_, "metrics"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("(no RL step finished yet)"));
  for (int step = 1; step <= 3; ++step) {
    control_.AppendMetricsLine(absl::StrCat(R"({"step":)", step, R"(,"reward_mean":0.)", step,
                                            R"(,"accuracy":0.5,"response_len_mean":30.5,)",
                                            R"("tokens_per_sec":1200,"approx_kl":0.001,)",
                                            R"("entropy":0.7,"staleness_max":1,)",
                                            R"("step_seconds":0.25,"weight_version":)", 60 + step,
                                            "}"));
  }
  r = Rlctl({"--addr", addr_, "metrics", "--last", "2"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("  step   reward    acc"));
  EXPECT_THAT(r.out, Not(HasSubstr("\n     1 ")));
  EXPECT_THAT(r.out, HasSubstr("     2    0.200  0.500    30.5     1200   0.00100    0.700      1    0.25   62\n"));
  EXPECT_THAT(r.out, HasSubstr("     3    0.300"));
  r = Rlctl({"--addr", addr_, "-o", "json", "metrics", "--last", "0"});
  EXPECT_EQ(r.code, 0) << r.err;
  const nlohmann::json steps = nlohmann::json::parse(r.out);
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[2]["weight_version"], 63);
  r = Rlctl({"--addr", addr_, "metrics", "--last", "-1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--last must be a number of steps"));
  r = Rlctl({"--addr", addr_, "status", "--last", "3"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--last belongs to `rlctl metrics`"));
}

TEST_F(RlctlTest, AddressFromTheEnvironment) {
  LoadRun();
  Result r = Rlctl({"status"}, addr_);
  ASSERT_EQ(r.code, kRlctlOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("demo"));
}

TEST_F(RlctlTest, UnreachableControllerExitsThreeNamingTheAddress) {
  const std::string dead = absl::StrCat("127.0.0.1:", *PickFreePort());
  Result r = Rlctl({"--addr", dead, "--timeout", "5", "status"});
  EXPECT_EQ(r.code, kRlctlUnreachable);
  EXPECT_THAT(r.err, HasSubstr("controller at " + dead + " unreachable"));
}

TEST_F(RlctlTest, UsageErrorsExitTwo) {
  EXPECT_EQ(Rlctl({"--addr", addr_}).code, kRlctlUsage);                       // no command
  EXPECT_EQ(Rlctl({"--addr", addr_, "status", "pause"}).code, kRlctlUsage);     // two
  EXPECT_EQ(Rlctl({"--addr", addr_, "explode"}).code, kRlctlUsage);             // unknown
  EXPECT_EQ(Rlctl({"--addr", addr_, "--bogus", "1", "status"}).code, kRlctlUsage);
  EXPECT_EQ(Rlctl({"--addr", addr_, "--timeout", "-1", "status"}).code, kRlctlUsage);
  EXPECT_EQ(Rlctl({"--addr"}).code, kRlctlUsage);
  Result r = Rlctl({"status"});
  EXPECT_EQ(r.code, kRlctlUsage);
  EXPECT_THAT(r.err, HasSubstr("RLCTL_ADDR"));
}

TEST_F(RlctlTest, HelpDocumentsCommandsAndExitCodes) {
  Result r = Rlctl({"--help"});
  EXPECT_EQ(r.code, kRlctlOk);
  for (const char* text : {"status", "pause", "resume", "stop", "exit status", "0  success",
                           "2  usage error", "3  controller unreachable", "RLCTL_ADDR"}) {
    EXPECT_THAT(r.out, HasSubstr(text));
  }
}

}  // namespace
}  // namespace rlpost
