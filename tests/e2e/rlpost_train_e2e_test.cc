// `rlpost train` end to end with the real processes: a short run of the quick
// config succeeds and leaves no process behind; bad input fails with a clear
// message and also leaves none.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/cli/cli_test_util.h"

namespace rlpost {
namespace {

using ::rlpost::testing::ProcessesMentioning;
using ::rlpost::testing::ReadFile;
using ::rlpost::testing::RunProcess;
using ::rlpost::testing::SourceDir;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using namespace std::chrono_literals;

class RlpostTrainTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = ::rlpost::testing::MakeTempDir("rlpost_train_e2e"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::vector<std::string> Train(std::vector<std::string> extra) {
    std::vector<std::string> argv = {::rlpost::testing::BinDir() + "/rlpost", "train",
                                     "--config", SourceDir() + "/configs/arith_grpo_quick.yaml",
                                     "run.output_dir=" + dir_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  std::string dir_;
};

TEST_F(RlpostTrainTest, QuickConfigRunsToTheEndWithTwoLearnerRanksAndResumes) {
  auto r = RunProcess(Train({"sft.steps=3", "rl.steps=2", "eval.size=8", "learner.world_size=2",
                             "run.name=short", "run.checkpoint_every=1"}),
                      dir_ + "/out.log", 600s);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("step 2/2"));
  EXPECT_THAT(r.output, HasSubstr("held-out accuracy"));
  EXPECT_THAT(r.output, HasSubstr("checkpoint after step 1 (version "));
  nlohmann::json summary = nlohmann::json::parse(ReadFile(dir_ + "/short/summary.json"));
  EXPECT_EQ(summary["steps"].get<int>(), 2);
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/short/checkpoint/config.json"));
  EXPECT_THAT(r.output, HasSubstr("plots: " + dir_ + "/short/plots/"));
  for (const char* plot : {"reward", "accuracy", "response_length", "throughput"}) {
    EXPECT_GT(std::filesystem::file_size(dir_ + "/short/plots/" + plot + ".png"), 1000u) << plot;
  }
  EXPECT_THAT(ProcessesMentioning(dir_), IsEmpty());

  // Both ranks restore the step-1 checkpoint, the controller its cursor;
  // steps 2 and 3 run, and the records still hold every sample once.
  r = RunProcess(Train({"sft.steps=3", "rl.steps=3", "eval.size=8", "learner.world_size=2",
                        "run.name=short", "run.checkpoint_every=1", "run.resume=true"}),
                 dir_ + "/resume.log", 600s);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, ContainsRegex("resumed from .*/short/checkpoints/version-[0-9]{9} after step 1"));
  EXPECT_THAT(r.output, Not(HasSubstr("sft ")));  // no second warm start
  EXPECT_THAT(r.output, HasSubstr("step 3/3"));
  summary = nlohmann::json::parse(ReadFile(dir_ + "/short/summary.json"));
  EXPECT_EQ(summary["steps"].get<int>(), 3);
  // The first attempt's logs are kept beside the new ones.
  EXPECT_THAT(ReadFile(dir_ + "/short/logs/learner-0.log.previous"), Not(HasSubstr("resumed from")));
  EXPECT_THAT(ReadFile(dir_ + "/short/logs/learner-0.log"), HasSubstr("resumed from"));
  auto audit = RunProcess({::rlpost::testing::BinDir() + "/rlpost", "audit", dir_ + "/short"},
                          dir_ + "/audit.log", 60s);
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
  EXPECT_THAT(audit.output, HasSubstr(", lost: 0, duplicated: 0"));
  EXPECT_THAT(ProcessesMentioning(dir_), IsEmpty());
}

// The shipped shaped-reward config: built-in parts plus the example plugin
// (built by CMake into build/lib and found by its bare file name), run in
// its own rlpost-reward-host; every part recorded per sample.
TEST_F(RlpostTrainTest, ShapedConfigRunsTheExamplePluginAndRecordsEveryPart) {
  std::vector<std::string> argv = Train({"sft.steps=3", "rl.steps=2", "eval.size=8",
                                         "run.name=shaped"});
  argv[3] = SourceDir() + "/configs/arith_grpo_shaped.yaml";
  auto r = RunProcess(argv, dir_ + "/out.log", 600s);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string run = dir_ + "/shaped";
  EXPECT_THAT(r.output, HasSubstr("reward plugin digits: example 1.0.0 (ABI 1.0), function digit_match, "
                        "weight 0.2"));
  int64_t samples = 0;
  for (const auto& entry : std::filesystem::directory_iterator(run + "/samples")) {
    std::ifstream in(entry.path());
    std::string line;
    while (std::getline(in, line)) {
      const nlohmann::json j = nlohmann::json::parse(line);
      if (j["type"] != "sample") continue;
      ++samples;
      const nlohmann::json& parts = j["reward"];
      double sum = 0;
      for (const char* part : {"correctness", "format", "overlong", "repetition", "plugin:digits"}) {
        ASSERT_TRUE(parts.contains(part)) << part << " missing in " << j;
        sum += parts[part].get<double>();
      }
      EXPECT_NEAR(parts["total"].get<double>(), sum, 1e-12) << j;
      // digit_match: a share in [0, 1], weighted 0.2; full for a correct answer.
      EXPECT_GE(parts["plugin:digits"].get<double>(), 0.0);
      EXPECT_LE(parts["plugin:digits"].get<double>(), 0.2);
      if (j["correct"].get<bool>()) EXPECT_DOUBLE_EQ(parts["plugin:digits"].get<double>(), 0.2);
      EXPECT_TRUE(j["reward_failure"].is_null()) << j;
    }
  }
  EXPECT_EQ(samples, 2 * 8 * 4);
  std::ifstream metrics(run + "/metrics.jsonl");
  std::string line;
  int steps = 0;
  while (std::getline(metrics, line)) {
    const nlohmann::json j = nlohmann::json::parse(line);
    EXPECT_TRUE(j["reward_parts"].contains("plugin:digits")) << line;
    EXPECT_EQ(j["samples_reward_failed"].get<int64_t>(), 0);
    ++steps;
  }
  EXPECT_EQ(steps, 2);
  EXPECT_THAT(ProcessesMentioning(dir_), IsEmpty());  // the plugin host stopped too
}

TEST_F(RlpostTrainTest, MalformedDatasetLineNamesTheLineAndLeavesNoProcess) {
  std::string train = dir_ + "/train.jsonl";
  std::ofstream(train) << "{\"prompt\": \"1+1=\", \"answer\": \"2\"}\n{\"prompt\": \"2+2=\"\n";
  auto r = RunProcess(Train({"task.kind=jsonl", "task.train_path=" + train,
                             "task.heldout_path=" + train, "run.name=bad"}),
                      dir_ + "/out.log", 300s);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("line 2"));
  EXPECT_THAT(ProcessesMentioning(dir_), IsEmpty());
}

TEST_F(RlpostTrainTest, UnknownKeyNamesKeyAndFile) {
  auto r = RunProcess(Train({"rl.stpes=3"}), dir_ + "/out.log", 60s);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("rl.stpes"));
  EXPECT_THAT(ProcessesMentioning(dir_), IsEmpty());
}

}  // namespace
}  // namespace rlpost
