// Reward plugins in a run: the controller starts a real rlpost-reward-host per
// plugin, adds each plugin's weighted part to every reward, records every part
// per sample, and contains a crashing plugin (its samples fail, the run goes
// on, the host is restarted). Peers are in-process fakes.

#include "tests/controller/fake_run_fixture.h"

namespace rlpost {
namespace {

using ::rlpost::testing::FakeCluster;
using ::testing::HasSubstr;

RewardPluginConfig Plugin(const std::string& id, const std::string& path,
                          const std::string& function, const std::string& config, double weight) {
  RewardPluginConfig p;
  p.id = id;
  p.path = path;
  p.function = function;
  p.config = config;
  p.weight = weight;
  p.deadline_ms = 20000;
  return p;
}

TEST_F(FakeRunTest, EveryRewardPartIsWeightedSummedAndRecordedPerSample) {
  FakeCluster cluster(1);
  RunConfig config = SmallConfig(dir_);
  config.reward_length = 0.1;
  config.reward_format = 0.25;
  config.reward_plugins = {Plugin("bonus", RLPOST_PLUGIN_CONFORMANCE, "constant", "2", 0.5)};
  RunControl control;
  TrainingRun run(config, AddressesOf(cluster), &control, Options());
  absl::StatusOr<RunSummary> summary = run.Run();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_THAT(out_.str(), HasSubstr("reward plugin bonus: conformance 1.2.3 (ABI 1.0), function "
                                    "constant, weight 0.5"));

  const std::vector<nlohmann::json> samples = SampleRecords(dir_ + "/fake_run");
  ASSERT_EQ(samples.size(), 3u * 16u);
  for (const nlohmann::json& s : samples) {
    const nlohmann::json& r = s["reward"];
    ASSERT_TRUE(r.contains("correctness")) << s;
    ASSERT_TRUE(r.contains("format")) << s;
    ASSERT_TRUE(r.contains("length")) << s;
    EXPECT_DOUBLE_EQ(r["plugin:bonus"].get<double>(), 1.0);  // 0.5 * 2
    EXPECT_DOUBLE_EQ(r["correctness"].get<double>(), s["correct"].get<bool>() ? 1.0 : 0.0);
    EXPECT_DOUBLE_EQ(r["total"].get<double>(), r["correctness"].get<double>() +
                                                   r["format"].get<double>() +
                                                   r["length"].get<double>() + 1.0);
    EXPECT_TRUE(s["reward_failure"].is_null());
  }
  for (const nlohmann::json& line : ReadJsonLines(dir_ + "/fake_run/metrics.jsonl")) {
    EXPECT_DOUBLE_EQ(line["reward_parts"]["plugin:bonus"].get<double>(), 1.0);
    EXPECT_EQ(line["samples_reward_failed"].get<int64_t>(), 0);
  }
  // The trained rewards carry the plugin part: the learner saw totals above
  // the correctness score.
  for (const v1::TrainBatch& b : cluster.learner.batches()) {
    if (b.step() == 0) continue;
    for (const v1::TrainSample& s : b.samples()) EXPECT_GE(s.reward(), 1.0f - 0.05f - 1e-6f);
  }
}

TEST_F(FakeRunTest, ACrashingPluginFailsItsSamplesAndTheRunGoesOn) {
  FakeCluster cluster(1);
  RunConfig config = SmallConfig(dir_);
  // Every RL prompt id starts with "train-": the plugin crashes on every batch.
  config.reward_plugins = {Plugin("trap", RLPOST_PLUGIN_TRAP, "trap", "CRASH:train-", 1.0)};
  RunControl control;
  TrainingRun run(config, AddressesOf(cluster), &control, Options());
  absl::StatusOr<RunSummary> summary = run.Run();
  ASSERT_TRUE(summary.ok()) << summary.status();

  const std::vector<nlohmann::json> samples = SampleRecords(dir_ + "/fake_run");
  ASSERT_EQ(samples.size(), 3u * 16u);
  for (const nlohmann::json& s : samples) {
    ASSERT_TRUE(s["reward_failure"].is_string()) << s;
    EXPECT_THAT(s["reward_failure"].get<std::string>(),
                HasSubstr("reward plugin 'trap': plugin host crashed (signal 11) while scoring"));
    EXPECT_FALSE(s["used"].get<bool>());
  }
  EXPECT_EQ(MetricColumn<int64_t>(dir_ + "/fake_run", "groups_reward_failed"),
            (std::vector<int64_t>{4, 4, 4}));
  EXPECT_EQ(MetricColumn<int64_t>(dir_ + "/fake_run", "samples_reward_failed"),
            (std::vector<int64_t>{16, 16, 16}));
  // Restarted before each later batch.
  EXPECT_EQ(MetricColumn<int64_t>(dir_ + "/fake_run", "reward_plugin_restarts"),
            (std::vector<int64_t>{0, 1, 2}));
  // Nothing with a failed reward was trained on: only the SFT batches.
  for (const v1::TrainBatch& b : cluster.learner.batches()) {
    EXPECT_EQ(b.objective(), v1::OBJECTIVE_SFT);
  }
  absl::StatusOr<AuditReport> audit = AuditRun(dir_ + "/fake_run");
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_TRUE(audit->ok());
}

TEST_F(FakeRunTest, APluginOfAnotherAbiMajorVersionStopsTheRunBeforeItStarts) {
  FakeCluster cluster(1);
  RunConfig config = SmallConfig(dir_);
  config.reward_plugins = {Plugin("future", RLPOST_PLUGIN_ABI_V2, "", "", 1.0)};
  RunControl control;
  TrainingRun run(config, AddressesOf(cluster), &control, Options());
  absl::StatusOr<RunSummary> summary = run.Run();
  ASSERT_FALSE(summary.ok());
  EXPECT_THAT(std::string(summary.status().message()), HasSubstr("reward plugin 'future'"));
  EXPECT_THAT(std::string(summary.status().message()), HasSubstr("built for reward ABI 2.0"));
  EXPECT_TRUE(cluster.learner.batches().empty());
}

}  // namespace
}  // namespace rlpost
