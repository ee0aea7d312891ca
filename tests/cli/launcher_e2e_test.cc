// The rlpost launcher, rlpost-controller and rlctl binaries as child
// processes. The full launcher runs use stand-in worker binaries
// (fake_worker_main.cc) so they need no LibTorch.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/subprocess.h"
#include "nlohmann/json.hpp"
#include "tests/cli/cli_test_util.h"

namespace rlpost {
namespace {

namespace fs = std::filesystem;
using ::rlpost::testing::BinDir;
using ::rlpost::testing::MakeTempDir;
using ::rlpost::testing::ProcessesMentioning;
using ::rlpost::testing::ReadFile;
using ::rlpost::testing::RunProcess;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class BinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(BinDir().empty()) << "RLPOST_BIN_DIR is not set (run through ctest)";
    dir_ = MakeTempDir("rlpost_cli_e2e");
    ASSERT_FALSE(dir_.empty());
  }
  void TearDown() override {
    if (HasFailure() && !dir_.empty() && fs::exists(dir_)) {
      for (const auto& e : fs::recursive_directory_iterator(dir_)) {
        if (e.path().extension() == ".log") {
          std::cerr << "---- " << e.path().string() << "\n" << ReadFile(e.path().string());
        }
      }
    }
    unsetenv("FAKE_ROLLOUT_MODE");
    unsetenv("FAKE_EXIT_ROLE");
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  std::string WriteConfig(const std::string& name, const std::string& extra) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << "run:\n  name: e2e\n  output_dir: " << dir_ << "/runs\n"
                        << "task:\n  train_size: 40\n  heldout_size: 8\n"
                        << "sft:\n  steps: 2\n  batch_size: 4\n"
                        << "rl:\n  steps: 3\n  prompts_per_step: 4\n  group_size: 4\n"
                        << "eval:\n  size: 8\n"
                        << "net:\n  connect_retries: 2\n  connect_backoff_ms: 1\n"
                        << extra;
    return path;
  }

  // A bin folder with the real launcher and controller and stand-in workers.
  std::string FakeBinDir() {
    const std::string bin = dir_ + "/bin";
    fs::create_directories(bin);
    for (const char* real : {"rlpost", "rlpost-controller", "rlpost-reward-host"}) {
      fs::copy_file(BinDir() + "/" + real, bin + "/" + real);
    }
    // The plugins, where the controller looks for a bare file name.
    fs::create_directory_symlink(fs::absolute(BinDir() + "/../lib"), dir_ + "/lib");
    for (const char* fake : {"rlpost-rollout", "rlpost-verifier", "rlpost-learner"}) {
      fs::copy_file(BinDir() + "/rlpost_fake_worker", bin + "/" + fake);
    }
    return bin;
  }

  // Starts `binary` listening on a free port of 127.0.0.1 (as `name`, with
  // `extra` arguments); returns its address, or "" after a test failure.
  std::string Serve(Subprocess* process, const std::string& binary, const std::string& name,
                    const std::vector<std::string>& extra = {}) {
    const std::string port_file = dir_ + "/" + name + ".port";
    std::vector<std::string> argv = {binary, "--listen", "127.0.0.1:0", "--port-file", port_file};
    argv.insert(argv.end(), extra.begin(), extra.end());
    EXPECT_TRUE(process->Start(argv, dir_ + "/" + name + ".log").ok());
    absl::StatusOr<int> port =
        WaitForPortFile(port_file, process, name, std::chrono::seconds(30));
    EXPECT_TRUE(port.ok()) << port.status();
    return port.ok() ? absl::StrCat("127.0.0.1:", *port) : "";
  }

  std::string dir_;
};

TEST_F(BinaryTest, UnknownConfigKeyExitsTwoNamingKeyAndFileAndStartsNothing) {
  const std::string config = WriteConfig("bad.yaml", "rl_typo:\n  stepz: 3\n");
  testing::ProcessResult r =
      RunProcess({BinDir() + "/rlpost", "train", "--config", config}, dir_ + "/launcher.log");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("unknown config key 'rl_typo.stepz'"));
  EXPECT_THAT(r.output, HasSubstr(config));
  EXPECT_FALSE(fs::exists(dir_ + "/runs"));  // nothing was created or started
  EXPECT_THAT(ProcessesMentioning(dir_), IsEmpty());
}

TEST_F(BinaryTest, LauncherRunsAJobAndStopsEveryChild) {
  const std::string bin = FakeBinDir();
  const std::string config = WriteConfig("job.yaml", "learner:\n  world_size: 2\n");
  testing::ProcessResult r =
      RunProcess({bin + "/rlpost", "train", "--config", config, "rollout.workers=2"},
                 dir_ + "/launcher.log");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("rollout[1]"));
  EXPECT_THAT(r.output, HasSubstr("learner[1]"));
  EXPECT_THAT(r.output, HasSubstr("step 3/3  reward "));
  EXPECT_THAT(r.output, HasSubstr("held-out accuracy   before RL   after RL   gain"));
  const std::string run = dir_ + "/runs/e2e";
  nlohmann::json summary = nlohmann::json::parse(ReadFile(run + "/summary.json"));
  EXPECT_EQ(summary["steps"], 3);
  EXPECT_TRUE(summary.contains("heldout_accuracy_after"));
  for (const char* log : {"verifier", "learner-0", "learner-1", "rollout-0", "rollout-1",
                          "controller"}) {
    EXPECT_TRUE(fs::exists(run + "/logs/" + log + ".log")) << log;
  }
  EXPECT_THAT(ReadFile(run + "/config.yaml"), ContainsRegex("world_size: \"?2"));
  EXPECT_THAT(ProcessesMentioning(dir_), IsEmpty());

  // Every sample of the 3 steps (4 groups of 4) recorded exactly once.
  testing::ProcessResult audit = RunProcess({bin + "/rlpost", "audit", run}, dir_ + "/audit.log");
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
  EXPECT_THAT(audit.output, HasSubstr("samples: 48, lost: 0, duplicated: 0"));
  // A lost record is found and fails the audit.
  const std::string records = run + "/samples/samples-00000.jsonl";
  std::string text = ReadFile(records);
  text.erase(text.rfind("{\"type\":\"sample\""));
  std::ofstream(records, std::ios::trunc) << text;
  audit = RunProcess({bin + "/rlpost", "audit", run}, dir_ + "/audit.log");
  EXPECT_EQ(audit.exit_code, 1) << audit.output;
  EXPECT_THAT(audit.output, HasSubstr("samples: 47, lost: 1, duplicated: 0"));
  EXPECT_THAT(audit.output, HasSubstr("step 3 round 0 group 3 sample 3: lost"));
  audit = RunProcess({bin + "/rlpost", "audit", dir_}, dir_ + "/audit.log");
  EXPECT_EQ(audit.exit_code, 2) << audit.output;
  EXPECT_THAT(audit.output, HasSubstr("is '" + dir_ + "' a run directory?"));
}

TEST_F(BinaryTest, AsyncJobWithPinnedRolesStaysWithinItsStalenessBound) {
  const std::string bin = FakeBinDir();
  const int cpu = AllowedCpus().back();
  const std::string config = WriteConfig("job.yaml", "learner:\n  world_size: 1\n");
  testing::ProcessResult r = RunProcess(
      {bin + "/rlpost", "train", "--config", config, "rl.mode=async", "rl.steps=4",
       absl::StrCat("rollout.cpus=", cpu), absl::StrCat("learner.cpus=", cpu)},
      dir_ + "/launcher.log");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("async mode: rollouts run up to 1 step(s) ahead"));
  const std::string run = dir_ + "/runs/e2e";
  EXPECT_THAT(ReadFile(run + "/logs/rollout-0.log"),
              HasSubstr(absl::StrCat("rlpost-rollout cpus: ", cpu, "\n")));
  EXPECT_THAT(ReadFile(run + "/logs/learner-0.log"),
              HasSubstr(absl::StrCat("rlpost-learner cpus: ", cpu, "\n")));
  testing::ProcessResult audit = RunProcess({bin + "/rlpost", "audit", run}, dir_ + "/audit.log");
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
  EXPECT_THAT(audit.output, HasSubstr("samples: 64, lost: 0, duplicated: 0"));
  EXPECT_THAT(audit.output, HasSubstr("staleness: max 1 (bound 1), over the bound: 0"));
  EXPECT_THAT(ProcessesMentioning(dir_), IsEmpty());

  // A CPU the machine does not offer: exit 2 naming the key, nothing started.
  r = RunProcess({bin + "/rlpost", "train", "--config", config, "learner.cpus=1023"},
                 dir_ + "/launcher.log");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("config key 'learner.cpus' names CPU 1023"));
  EXPECT_THAT(ProcessesMentioning(dir_), IsEmpty());

  // One fixed GPU for every rank of this host: refused before anything starts.
  r = RunProcess({bin + "/rlpost", "train", "--config", config, "learner.world_size=2",
                  "learner.device=cuda:0"},
                 dir_ + "/launcher.log");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("set learner.device=cuda (rank r uses CUDA device r)"));
  EXPECT_THAT(ProcessesMentioning(dir_), IsEmpty());
}

TEST_F(BinaryTest, ControllerFailureShowsItsLogAndStopsEveryChild) {
  const std::string bin = FakeBinDir();
  setenv("FAKE_ROLLOUT_MODE", "fail", 1);
  testing::ProcessResult r = RunProcess(
      {bin + "/rlpost", "train", "--config", WriteConfig("job.yaml", "")}, dir_ + "/launcher.log");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("controller exited with status 1"));
  EXPECT_THAT(r.output, HasSubstr("engine crashed"));  // from the tail of controller.log
  EXPECT_THAT(ProcessesMentioning(dir_), IsEmpty());
}

TEST_F(BinaryTest, WorkerDyingAtStartNamesItsLogAndStopsTheOthers) {
  const std::string bin = FakeBinDir();
  setenv("FAKE_EXIT_ROLE", "rlpost-verifier", 1);
  testing::ProcessResult r = RunProcess(
      {bin + "/rlpost", "train", "--config", WriteConfig("job.yaml", "")}, dir_ + "/launcher.log");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("verifier exited with status 3"));
  EXPECT_THAT(r.output, HasSubstr("logs/verifier.log"));
  EXPECT_THAT(r.output, HasSubstr("failing at start"));
  EXPECT_THAT(ProcessesMentioning(dir_), IsEmpty());
}

TEST_F(BinaryTest, InterruptStopsEveryChildAndExits130) {
  const std::string bin = FakeBinDir();
  setenv("FAKE_ROLLOUT_MODE", "hang", 1);  // the run blocks in its first eval
  const std::string config = WriteConfig("job.yaml", "");
  Subprocess launcher;
  ASSERT_TRUE(launcher.Start({bin + "/rlpost", "train", "--config", config},
                             dir_ + "/launcher.log")
                  .ok());
  // The controller writes its port file once every worker is up.
  absl::StatusOr<int> port =
      WaitForPortFile(dir_ + "/runs/e2e/ports/controller.port", &launcher, "launcher",
                      std::chrono::seconds(60));
  ASSERT_TRUE(port.ok()) << port.status() << ReadFile(dir_ + "/launcher.log");
  EXPECT_FALSE(ProcessesMentioning(dir_).empty());
  launcher.Signal(SIGINT);
  ASSERT_TRUE(launcher.Wait(std::chrono::seconds(60)));
  EXPECT_EQ(launcher.exit_code(), 130);
  EXPECT_THAT(ReadFile(dir_ + "/launcher.log"), HasSubstr("interrupted"));
  EXPECT_THAT(ProcessesMentioning(dir_), IsEmpty());
}

TEST_F(BinaryTest, IdleControllerServesStatusToTheRlctlBinary) {
  Subprocess controller;
  const std::string addr =
      Serve(&controller, BinDir() + "/rlpost-controller", "controller", {"rl.steps=7"});
  ASSERT_FALSE(addr.empty());

  testing::ProcessResult r =
      RunProcess({BinDir() + "/rlctl", "--addr", addr, "status"}, dir_ + "/rlctl.log");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("state      IDLE"));
  r = RunProcess({BinDir() + "/rlctl", "--addr", addr, "stop"}, dir_ + "/rlctl.log");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("no run is loaded"));
  r = RunProcess({BinDir() + "/rlctl", "--addr", addr, "config", "show"}, dir_ + "/rlctl.log");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, ContainsRegex("steps: \"?7"));  // the resolved config, overrides in
  r = RunProcess({BinDir() + "/rlctl", "--addr", addr, "-o", "json", "status"},
                 dir_ + "/rlctl.log");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("\"state\": \"RUN_STATE_IDLE\""));
  r = RunProcess({BinDir() + "/rlctl", "--addr", addr, "jump"}, dir_ + "/rlctl.log");
  EXPECT_EQ(r.exit_code, 2);
  r = RunProcess({BinDir() + "/rlctl", "--help"}, dir_ + "/rlctl.log");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("exit status"));

  controller.Signal(SIGTERM);
  ASSERT_TRUE(controller.Wait(std::chrono::seconds(30)));
  EXPECT_EQ(controller.exit_code(), 0);
  r = RunProcess({BinDir() + "/rlctl", "--addr", addr, "--timeout", "5", "status"},
                 dir_ + "/rlctl.log");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.output, HasSubstr(addr));
}

TEST_F(BinaryTest, RunsSubmittedToAnIdleControllerRunOneAfterAnother) {
  const std::string bin = FakeBinDir();
  // Stand-in workers, each its own process.
  std::vector<std::unique_ptr<Subprocess>> workers;
  std::map<std::string, std::string> address;
  for (const char* role : {"rlpost-rollout", "rlpost-verifier", "rlpost-learner"}) {
    workers.push_back(std::make_unique<Subprocess>());
    address[role] = Serve(workers.back().get(), bin + "/" + role, role);
    ASSERT_FALSE(address[role].empty());
  }
  Subprocess controller;
  const std::string addr = Serve(&controller, bin + "/rlpost-controller", "controller");
  ASSERT_FALSE(addr.empty());
  const std::string config = WriteConfig("job.yaml", "");
  auto submit = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {BinDir() + "/rlctl", "--addr", addr, "run", "submit",
                                     "--config", config,
                                     "--rollout", address["rlpost-rollout"],
                                     "--verifier", address["rlpost-verifier"],
                                     "--learner", address["rlpost-learner"]};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunProcess(argv, dir_ + "/submit.log");
  };
  auto wait_finished = [&] {
    for (int i = 0; i < 600; ++i) {
      auto r = RunProcess({BinDir() + "/rlctl", "--addr", addr, "status"}, dir_ + "/rlctl.log");
      if (r.output.find("state      FINISHED") != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  };

  // A bad key is refused, naming it; nothing starts.
  testing::ProcessResult r = submit({"rl.stepz=2"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("unknown config key 'rl.stepz'"));
  // Missing addresses on a controller started without any.
  r = RunProcess({BinDir() + "/rlctl", "--addr", addr, "run", "submit", "--config", config},
                 dir_ + "/submit.log");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("no rollout, verifier or learner address"));

  // A reward plugin that cannot start is refused at submit time, not when the
  // run reaches it: a missing library, a config the plugin rejects.
  r = submit({"reward.plugins.gone.path=" + dir_ + "/no-such-plugin.so"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("config key 'reward.plugins.gone.path'"));
  r = submit({"reward.plugins.digits.path=librlpost_example_reward.so",
              "reward.plugins.digits.function=digit_match", "reward.plugins.digits.config=scale=abc"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("scale must be a number, got 'abc'"));
  r = RunProcess({BinDir() + "/rlctl", "--addr", addr, "status"}, dir_ + "/rlctl.log");
  EXPECT_THAT(r.output, HasSubstr("IDLE"));  // nothing started

  r = submit({"run.name=first", "rl.steps=2"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("submitted run 'first'"));
  ASSERT_TRUE(wait_finished());
  r = submit({"run.name=second", "rl.steps=3"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(wait_finished());
  r = RunProcess({BinDir() + "/rlctl", "--addr", addr, "status"}, dir_ + "/rlctl.log");
  EXPECT_THAT(r.output, HasSubstr("second"));
  EXPECT_THAT(r.output, HasSubstr("3/3"));
  for (const char* run : {"first", "second"}) {
    auto audit = RunProcess({BinDir() + "/rlpost", "audit", dir_ + "/runs/" + run},
                            dir_ + "/audit.log");
    EXPECT_EQ(audit.exit_code, 0) << run << ": " << audit.output;
  }
  controller.Signal(SIGTERM);
  ASSERT_TRUE(controller.Wait(std::chrono::seconds(30)));
  EXPECT_EQ(controller.exit_code(), 0);
  for (auto& w : workers) w->Stop(std::chrono::milliseconds(2000));
}

TEST_F(BinaryTest, ControllerWithUnreachableWorkersExitsOneNamingTheAddress) {
  // Nothing listens on port 1 of loopback.
  testing::ProcessResult r = RunProcess(
      {BinDir() + "/rlpost-controller", "--listen", "127.0.0.1:0", "--rollout", "127.0.0.1:1",
       "--verifier", "127.0.0.1:1", "--learner", "127.0.0.1:1",
       "run.output_dir=" + dir_ + "/runs", "net.connect_retries=2", "net.connect_backoff_ms=1",
       "task.train_size=10", "task.heldout_size=2"},
      dir_ + "/controller.log");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("rollout 127.0.0.1:1 unreachable after 2 attempts"));
}

TEST_F(BinaryTest, ControllerRejectsBadFlagsAndConfigWithTwo) {
  testing::ProcessResult r =
      RunProcess({BinDir() + "/rlpost-controller", "--listen", "127.0.0.1:0", "rl.stepz=3"},
                 dir_ + "/controller.log");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("rl.stepz"));
  r = RunProcess({BinDir() + "/rlpost-controller", "--port-file", "x"}, dir_ + "/controller.log");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("--listen"));
  r = RunProcess({BinDir() + "/rlpost-controller", "--listen", "127.0.0.1:0", "--rollout", "a:1"},
                 dir_ + "/controller.log");
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
}  // namespace rlpost
