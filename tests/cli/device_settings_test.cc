// rlpost-rollout and rlpost-learner refuse device settings they cannot
// honour before serving anything: exit 2 and a message naming the key and
// the fix (bad spellings, a CUDA device this build or host lacks, NCCL on the
// CPU, a bad --local-rank).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/cli/cli_test_util.h"

namespace rlpost {
namespace {

using ::rlpost::testing::BinDir;
using ::rlpost::testing::RunProcess;
using ::testing::HasSubstr;

struct Case {
  std::vector<std::string> argv;
  std::string message;
};

TEST(DeviceSettingsTest, BinariesRefuseDevicesTheyCannotOpenWithExitTwo) {
  ASSERT_FALSE(BinDir().empty()) << "RLPOST_BIN_DIR is not set (run through ctest)";
  const std::string dir = ::rlpost::testing::MakeTempDir("device_settings");
  const std::string rollout = BinDir() + "/rlpost-rollout";
  const std::string learner = BinDir() + "/rlpost-learner";
  std::vector<Case> cases = {
      {{rollout, "--listen", "127.0.0.1:0", "rollout.device=gpu"},
       "config key 'rollout.device' must be cpu, cuda or cuda:N"},
      {{rollout, "--listen", "127.0.0.1:0", "rollout.device=cuda:999"},
       "config key 'rollout.device'"},
      {{learner, "--listen", "127.0.0.1:0", "learner.device=cuda:999"},
       "config key 'learner.device'"},
      {{learner, "--listen", "127.0.0.1:0", "learner.backend=nccl"},
       "learner.backend' is nccl but learner.device is cpu"},
      {{learner, "--listen", "127.0.0.1:0", "--local-rank", "one"},
       "--local-rank must be integers"},
  };
#ifndef RLPOST_WITH_CUDA
  cases.push_back({{rollout, "--listen", "127.0.0.1:0", "rollout.device=cuda"},
                   "built without CUDA (RLPOST_WITH_CUDA=OFF, CPU LibTorch): set rollout.device=cpu"});
  // Rank 1 of 2 with learner.device=cuda: refused before it joins any group.
  cases.push_back({{learner, "--rank", "1", "--world-size", "2", "--local-rank", "1",
                    "learner.device=cuda", "learner.backend=nccl"},
                   "config key 'learner.device' is cuda but this binary was built without CUDA"});
#endif
  int i = 0;
  for (const Case& c : cases) {
    ::rlpost::testing::ProcessResult r =
        RunProcess(c.argv, dir + "/case" + std::to_string(i++) + ".log", std::chrono::seconds(60));
    EXPECT_EQ(r.exit_code, 2) << c.argv.back() << "\n" << r.output;
    EXPECT_THAT(r.output, HasSubstr(c.message)) << c.argv.back();
    EXPECT_THAT(r.output, ::testing::Not(HasSubstr("serving"))) << c.argv.back();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rlpost
