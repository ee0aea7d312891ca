// The real rlpost-rollout binary joins a running controller by registering
// (rlpost-rollout --controller ... --advertise ...).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/grpc_util.h"
#include "common/subprocess.h"
#include "controller/control_service.h"
#include "controller/run_control.h"
#include "tests/cli/cli_test_util.h"

namespace rlpost {
namespace {

using ::rlpost::testing::BinDir;
using ::testing::HasSubstr;

TEST(RolloutJoinTest, AWorkerStartedWithControllerRegistersItsAdvertisedAddress) {
  ASSERT_FALSE(BinDir().empty()) << "RLPOST_BIN_DIR is not set (run through ctest)";
  const std::string dir = ::rlpost::testing::MakeTempDir("rollout_join");
  RunControl control;
  control.BeginRun("demo", 10);
  control.BeginSteps();
  ControlServiceImpl service(&control);
  auto host = ServerHost::Start("127.0.0.1:0", {&service}, "", "test controller");
  ASSERT_TRUE(host.ok()) << host.status();

  Subprocess rollout;
  ASSERT_TRUE(rollout
                  .Start({BinDir() + "/rlpost-rollout", "--listen", "127.0.0.1:0", "--port-file",
                          dir + "/rollout.port", "--controller", (*host)->address(),
                          "--advertise", "127.0.0.1:7999"},
                         dir + "/rollout.log")
                  .ok());
  ASSERT_TRUE(control.WaitForJoining(absl::Seconds(120)))
      << ::rlpost::testing::ReadFile(dir + "/rollout.log");
  EXPECT_EQ(control.TakeJoiningRollouts(), std::vector<std::string>{"127.0.0.1:7999"});
  EXPECT_EQ(rollout.Stop(std::chrono::seconds(30)), 0);

  // --controller without --advertise: a usage error that says what to add.
  ::rlpost::testing::ProcessResult r = ::rlpost::testing::RunProcess(
      {BinDir() + "/rlpost-rollout", "--listen", "127.0.0.1:0", "--controller",
       (*host)->address()},
      dir + "/usage.log", std::chrono::seconds(60));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("--controller needs --advertise HOST:PORT"));
  (*host)->Shutdown();
  std::filesystem::remove_all(dir);
}

TEST(RolloutJoinTest, AControllerWithATokenTurnsAWorkerWithoutItAway) {
  ASSERT_FALSE(BinDir().empty()) << "RLPOST_BIN_DIR is not set (run through ctest)";
  const std::string dir = ::rlpost::testing::MakeTempDir("rollout_join_token");
  RunControl control;
  control.BeginRun("demo", 10);
  control.BeginSteps();
  ControlServiceImpl service(&control, "join-token");
  auto host = ServerHost::Start("127.0.0.1:0", {&service}, "", "test controller");
  ASSERT_TRUE(host.ok()) << host.status();
  ::rlpost::testing::ProcessResult r = ::rlpost::testing::RunProcess(
      {BinDir() + "/rlpost-rollout", "--listen", "127.0.0.1:0", "--controller",
       (*host)->address(), "--advertise", "127.0.0.1:7998"},
      dir + "/refused.log", std::chrono::seconds(120));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("cannot join"));
  EXPECT_THAT(r.output, HasSubstr("needs this controller's bearer token"));
  EXPECT_TRUE(control.TakeJoiningRollouts().empty());

  std::ofstream(dir + "/token") << "join-token\n";
  Subprocess rollout;
  ASSERT_TRUE(rollout
                  .Start({BinDir() + "/rlpost-rollout", "--listen", "127.0.0.1:0", "--controller",
                          (*host)->address(), "--advertise", "127.0.0.1:7998", "--token-file",
                          dir + "/token"},
                         dir + "/rollout.log")
                  .ok());
  ASSERT_TRUE(control.WaitForJoining(absl::Seconds(120)))
      << ::rlpost::testing::ReadFile(dir + "/rollout.log");
  EXPECT_EQ(control.TakeJoiningRollouts(), std::vector<std::string>{"127.0.0.1:7998"});
  EXPECT_EQ(rollout.Stop(std::chrono::seconds(30)), 0);
  (*host)->Shutdown();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rlpost
