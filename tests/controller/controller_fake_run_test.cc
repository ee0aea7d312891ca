// The controller's run loop against in-process fake rollout / verifier /
// learner services over real gRPC on loopback.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/subprocess.h"
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "controller/run.h"
#include "controller/run_control.h"
#include "nlohmann/json.hpp"
#include "common/grpc_util.h"
#include "common/metrics_registry.h"
#include "controller/lineage.h"
#include "controller/testing/fake_peers.h"

namespace rlpost {
namespace {

using ::rlpost::testing::FakeCluster;
using ::rlpost::testing::FakeLearner;
using ::rlpost::testing::FakeRollout;
using ::testing::Each;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;

std::string MakeTempDir() {
  std::string pattern = ::testing::TempDir() + "/controller_run_XXXXXX";
  char* dir = mkdtemp(pattern.data());
  EXPECT_NE(dir, nullptr);
  return pattern;
}

RunConfig SmallConfig(const std::string& output_dir) {
  RunConfig c;
  c.name = "fake_run";
  c.seed = 42;
  c.output_dir = output_dir;
  c.task_train_size = 40;
  c.task_heldout_size = 10;
  c.eval_size = 10;
  c.sft_steps = 2;
  c.sft_batch_size = 4;
  c.rl_steps = 3;
  c.rl_prompts_per_step = 4;
  c.rl_group_size = 4;
  c.rpc_timeout_ms = 30000;
  c.connect_retries = 3;
  c.connect_backoff_ms = 1;
  return c;
}

PeerAddresses AddressesOf(const FakeCluster& cluster) {
  return PeerAddresses{cluster.rollout_addresses(), cluster.verifier_address(),
                       cluster.learner_address()};
}

std::vector<nlohmann::json> ReadJsonLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

// One metrics.jsonl field of every step, in step order.
template <typename T>
std::vector<T> MetricColumn(const std::string& run_dir, const char* key) {
  std::vector<T> out;
  for (const nlohmann::json& j : ReadJsonLines(run_dir + "/metrics.jsonl")) {
    out.push_back(j[key].get<T>());
  }
  return out;
}

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

class FakeRunTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure()) std::cerr << "run output:\n" << out_.str();
    std::filesystem::remove_all(dir_);
  }
  std::string dir_ = MakeTempDir();
  std::ostringstream out_;
  TrainingRunOptions Options() {
    TrainingRunOptions o;
    o.out = &out_;
    return o;
  }
  // A controller crash: runs `config` until the learner gets step `step`'s
  // batch, then cancels the run; the learner and the workers live on.
  void CrashWhileTraining(FakeCluster& cluster, const RunConfig& config, int64_t step) {
    RunControl control;
    TrainingRun run(config, AddressesOf(cluster), &control, Options());
    cluster.learner.set_train_hook([&](const v1::TrainBatch& b) {
      if (b.step() == step) run.Cancel();
    });
    EXPECT_EQ(run.Run().status().code(), absl::StatusCode::kCancelled);
    cluster.learner.set_train_hook(nullptr);
  }
};

TEST_F(FakeRunTest, ThreeStepsEndWithEveryWorkerOnTheLatestVersion) {
  FakeCluster cluster(2);
  RunControl control;
  MetricsRegistry& registry = DefaultMetrics();
  const double steps_before = registry.Value("rlpost_controller_steps_total", {{"trained", "true"}}) +
                              registry.Value("rlpost_controller_steps_total", {{"trained", "false"}});
  const double verified_before = registry.Value("rlpost_controller_verified_items_total");
  TrainingRun run(SmallConfig(dir_), AddressesOf(cluster), &control, Options());
  absl::StatusOr<RunSummary> summary = run.Run();
  ASSERT_TRUE(summary.ok()) << summary.status();
  // The controller's /metrics figures: 3 steps; 10 + 10 held-out items and
  // 3 x 16 RL samples verified; the last step's gauges.
  EXPECT_EQ(registry.Value("rlpost_controller_steps_total", {{"trained", "true"}}) +
                registry.Value("rlpost_controller_steps_total", {{"trained", "false"}}) -
                steps_before,
            3);
  EXPECT_EQ(registry.Value("rlpost_controller_verified_items_total") - verified_before, 20 + 48);
  EXPECT_EQ(registry.Value("rlpost_controller_step"), 3);
  EXPECT_EQ(registry.Value("rlpost_controller_weight_version"), cluster.learner.version());
  EXPECT_THAT(registry.Render(), HasSubstr("# TYPE rlpost_controller_verify_batch_seconds histogram"));

  const int64_t latest = cluster.learner.version();
  EXPECT_GE(latest, 2);  // the SFT steps at least
  for (const auto& rollout : cluster.rollouts) {
    EXPECT_EQ(rollout->version(), latest);
    // Synced after SFT and after every trained step, in order.
    std::vector<int64_t> received = rollout->received_versions();
    ASSERT_FALSE(received.empty());
    EXPECT_EQ(received.front(), 2);
    EXPECT_EQ(received.back(), latest);
    EXPECT_TRUE(std::is_sorted(received.begin(), received.end()));
    EXPECT_GT(rollout->generate_calls(), 0);  // both workers served requests
  }

  std::vector<v1::TrainBatch> batches = cluster.learner.batches();
  ASSERT_GE(batches.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(batches[i].objective(), v1::OBJECTIVE_SFT);
    ASSERT_EQ(batches[i].samples_size(), 4);
    EXPECT_THAT(batches[i].samples(0).response_text(), HasSubstr("\\boxed{"));
    EXPECT_FALSE(batches[i].samples(0).prompt_text().empty());
  }
  for (size_t i = 2; i < batches.size(); ++i) {
    EXPECT_EQ(batches[i].objective(), v1::OBJECTIVE_POLICY_GRADIENT);
    ASSERT_GT(batches[i].samples_size(), 0);
    // Whole groups are kept: group size 4 divides the batch.
    EXPECT_EQ(batches[i].samples_size() % 4, 0);
    EXPECT_EQ(batches[i].behavior_version(), static_cast<int64_t>(i));
    const v1::TrainSample& s = batches[i].samples(0);
    EXPECT_EQ(s.response_token_ids_size(), s.old_logprobs_size());
    EXPECT_GT(s.prompt_token_ids_size(), 0);
  }

  const std::string run_dir = dir_ + "/fake_run";
  std::vector<nlohmann::json> metrics = ReadJsonLines(run_dir + "/metrics.jsonl");
  ASSERT_EQ(metrics.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const nlohmann::json& m = metrics[i];
    EXPECT_EQ(m["step"], i + 1);
    for (const char* key :
         {"reward_mean", "accuracy", "response_len_mean", "tokens_per_sec", "step_seconds",
          "groups_kept", "groups_total", "weight_version", "loss", "grad_norm",
          "clip_fraction", "approx_kl"}) {
      EXPECT_TRUE(m.contains(key)) << key;
    }
    EXPECT_EQ(m["groups_total"], 4);
    EXPECT_EQ(m["groups_kept"].get<int>() + m["groups_uniform"].get<int>(), 4);
    EXPECT_GT(m["accuracy"].get<double>(), 0.0);
    EXPECT_LT(m["accuracy"].get<double>(), 1.0);
  }
  EXPECT_EQ(metrics.back()["weight_version"], latest);

  nlohmann::json s = ReadJson(run_dir + "/summary.json");
  for (const char* key : {"heldout_accuracy_before", "heldout_accuracy_after", "steps",
                          "wall_seconds", "run_name", "final_weight_version", "sft_steps"}) {
    EXPECT_TRUE(s.contains(key)) << key;
  }
  EXPECT_EQ(s["steps"], 3);
  EXPECT_EQ(s["sft_steps"], 2);
  EXPECT_EQ(s["run_name"], "fake_run");
  EXPECT_EQ(s["final_weight_version"], latest);
  EXPECT_EQ(s["stopped_early"], false);
  EXPECT_THAT(cluster.learner.checkpoint_dir(), EndsWith("fake_run/checkpoint"));

  v1::RunStatus status = control.Status();
  EXPECT_EQ(status.state(), v1::RUN_STATE_FINISHED);
  EXPECT_EQ(status.step(), 3);
  EXPECT_EQ(status.weight_version(), latest);
  ASSERT_EQ(status.workers_size(), 4);
  EXPECT_EQ(status.workers(0).role(), "rollout");
  EXPECT_EQ(status.workers(0).weight_version(), latest);
  EXPECT_EQ(status.workers(2).role(), "verifier");
  EXPECT_EQ(status.workers(3).role(), "learner");

  const std::string printed = out_.str();
  EXPECT_THAT(printed, HasSubstr("step 1/3  reward "));
  EXPECT_THAT(printed, HasSubstr("step 3/3  reward "));
  EXPECT_THAT(printed, HasSubstr("held-out accuracy   before RL   after RL   gain"));

  // Lineage: every sample recorded once, with its seed, version span,
  // verdict and reward; "used" matches what the learner received.
  absl::StatusOr<AuditReport> audit = AuditRun(run_dir);
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_TRUE(audit->ok());
  int64_t trained = 0;
  for (size_t i = 2; i < batches.size(); ++i) trained += batches[i].samples_size();
  EXPECT_EQ(audit->used, trained);
  EXPECT_EQ(audit->samples, audit->issued);
  std::vector<nlohmann::json> records = ReadJsonLines(run_dir + "/samples/samples-00000.jsonl");
  const auto sample = std::find_if(records.begin(), records.end(),
                                   [](const nlohmann::json& j) { return j["type"] == "sample"; });
  ASSERT_NE(sample, records.end());
  for (const char* key : {"prompt_id", "seed", "segments", "verifier_version", "verdict",
                          "reward", "used", "train_step", "finish_reason"}) {
    EXPECT_TRUE(sample->contains(key)) << key;
  }
  EXPECT_EQ((*sample)["segments"][0]["version"], 2);  // sampled after the 2 SFT steps
}

TEST_F(FakeRunTest, SameSeedGivesTheSameRun) {
  auto run_once = [&](const std::string& name) {
    FakeCluster cluster(2);
    RunControl control;
    RunConfig config = SmallConfig(dir_);
    config.name = name;
    TrainingRun run(config, AddressesOf(cluster), &control, Options());
    EXPECT_TRUE(run.Run().ok());
    std::vector<std::string> rows;
    for (const nlohmann::json& m : ReadJsonLines(dir_ + "/" + name + "/metrics.jsonl")) {
      rows.push_back(absl::StrCat(m["reward_mean"].dump(), " ", m["groups_kept"].dump(), " ",
                                  m["weight_version"].dump()));
    }
    return rows;
  };
  EXPECT_EQ(run_once("a"), run_once("b"));
}

TEST_F(FakeRunTest, UniformGroupsAreDroppedAndEmptyStepsStillCount) {
  FakeCluster cluster(1, FakeRollout::Mode::kAllCorrect);
  RunControl control;
  TrainingRun run(SmallConfig(dir_), AddressesOf(cluster), &control, Options());
  absl::StatusOr<RunSummary> summary = run.Run();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->steps, 3);
  EXPECT_EQ(cluster.learner.batches().size(), 2u);  // SFT only: every RL group is uniform
  std::vector<nlohmann::json> metrics = ReadJsonLines(dir_ + "/fake_run/metrics.jsonl");
  ASSERT_EQ(metrics.size(), 3u);
  for (const nlohmann::json& m : metrics) {
    EXPECT_EQ(m["groups_kept"], 0);
    EXPECT_EQ(m["groups_uniform"], 4);
    EXPECT_EQ(m["trained"], false);
    EXPECT_EQ(m["accuracy"], 1.0);
    EXPECT_EQ(m["weight_version"], 2);
  }
  EXPECT_EQ(cluster.rollouts[0]->version(), 2);
  EXPECT_DOUBLE_EQ(summary->heldout_accuracy_before, 1.0);
}

TEST_F(FakeRunTest, DynamicSamplingRefillsAtMostTheConfiguredRounds) {
  {
    // Every group uniform: each step tries 1 + 2 rounds of 4 groups, keeps none.
    FakeCluster cluster(1, FakeRollout::Mode::kAllCorrect);
    RunControl control;
    RunConfig config = SmallConfig(dir_);
    config.rl_dynamic_sampling_rounds = 2;
    TrainingRun run(config, AddressesOf(cluster), &control, Options());
    ASSERT_TRUE(run.Run().ok());
    std::vector<nlohmann::json> metrics = ReadJsonLines(dir_ + "/fake_run/metrics.jsonl");
    ASSERT_EQ(metrics.size(), 3u);
    for (const nlohmann::json& m : metrics) {
      EXPECT_EQ(m["refill_rounds"], 2);
      EXPECT_EQ(m["groups_total"], 12);
      EXPECT_EQ(m["groups_uniform"], 12);
      EXPECT_EQ(m["groups_kept"], 0);
      EXPECT_EQ(m["trained"], false);
    }
  }
  {
    // Mixed groups: refills until 4 groups are kept (or the rounds run out),
    // and never trains on more than rl.prompts_per_step groups.
    std::filesystem::remove_all(dir_ + "/fake_run");
    FakeCluster cluster(2);
    RunControl control;
    RunConfig config = SmallConfig(dir_);
    config.rl_dynamic_sampling_rounds = 4;
    TrainingRun run(config, AddressesOf(cluster), &control, Options());
    ASSERT_TRUE(run.Run().ok());
    std::vector<nlohmann::json> metrics = ReadJsonLines(dir_ + "/fake_run/metrics.jsonl");
    ASSERT_EQ(metrics.size(), 3u);
    for (const nlohmann::json& m : metrics) {
      const int kept = m["groups_kept"].get<int>();
      EXPECT_LE(kept, 4);
      if (m["refill_rounds"].get<int>() < 4) EXPECT_EQ(kept, 4);
      EXPECT_GE(m["groups_total"].get<int>(), 4 + m["refill_rounds"].get<int>());
    }
    std::vector<v1::TrainBatch> batches = cluster.learner.batches();
    for (size_t i = 2; i < batches.size(); ++i) EXPECT_LE(batches[i].samples_size(), 16);
  }
}

TEST_F(FakeRunTest, TruncatedAndUnformattedSamplesLeaveTheLoss) {
  for (bool by_format : {false, true}) {
    std::filesystem::remove_all(dir_ + "/fake_run");
    FakeCluster cluster(1, FakeRollout::Mode::kSomeTruncated);
    RunControl control;
    RunConfig config = SmallConfig(dir_);
    config.rl_skip_uniform_groups = false;
    (by_format ? config.rl_require_format : config.rl_drop_truncated) = true;
    TrainingRun run(config, AddressesOf(cluster), &control, Options());
    ASSERT_TRUE(run.Run().ok());
    int64_t filtered = 0;
    for (const nlohmann::json& m : ReadJsonLines(dir_ + "/fake_run/metrics.jsonl")) {
      filtered += m["samples_filtered"].get<int64_t>();
    }
    EXPECT_GT(filtered, 0);
    std::vector<v1::TrainBatch> batches = cluster.learner.batches();
    int64_t trained = 0;
    for (size_t i = 2; i < batches.size(); ++i) {
      for (const v1::TrainSample& s : batches[i].samples()) {
        std::string text(s.response_token_ids().begin(), s.response_token_ids().end());
        EXPECT_NE(text.find("\\boxed{"), std::string::npos) << text;
        ++trained;
      }
    }
    EXPECT_EQ(trained + filtered, 3 * 16);  // 3 steps x 4 groups x 4 samples
  }
}

TEST_F(FakeRunTest, RejectionSamplingFineTuningTrainsOnOneCorrectSamplePerGroup) {
  for (const char* select : {"best_of_n", "shortest_correct"}) {
    std::filesystem::remove_all(dir_ + "/fake_run");
    FakeCluster cluster(1);
    RunControl control;
    RunConfig config = SmallConfig(dir_);
    config.rl_objective = "rft";
    config.rl_rft_select = select;
    TrainingRun run(config, AddressesOf(cluster), &control, Options());
    ASSERT_TRUE(run.Run().ok());
    std::vector<v1::TrainBatch> batches = cluster.learner.batches();
    ASSERT_GT(batches.size(), 2u);
    for (size_t i = 2; i < batches.size(); ++i) {
      EXPECT_EQ(batches[i].objective(), v1::OBJECTIVE_SFT);
      EXPECT_GT(batches[i].samples_size(), 0);
      EXPECT_LE(batches[i].samples_size(), 4);  // at most one per group
      for (const v1::TrainSample& s : batches[i].samples()) {
        EXPECT_GT(s.reward(), 0.0f);  // a correct sample
        EXPECT_EQ(s.old_logprobs_size(), 0);
      }
    }
  }
}

TEST_F(FakeRunTest, GaeSendsRewardsAndCriticOnlyStepsPublishNothing) {
  FakeCluster cluster(1);
  cluster.learner.set_critic_only_steps(2);
  RunControl control;
  RunConfig config = SmallConfig(dir_);
  config.rl_advantage = "gae";
  config.rl_value_warmup_steps = 2;
  TrainingRun run(config, AddressesOf(cluster), &control, Options());
  ASSERT_TRUE(run.Run().ok());
  std::vector<v1::TrainBatch> batches = cluster.learner.batches();
  ASSERT_EQ(batches.size(), 5u);  // 2 SFT + 3 RL
  bool rewarded = false;
  for (size_t i = 2; i < batches.size(); ++i) {
    for (const v1::TrainSample& s : batches[i].samples()) {
      EXPECT_EQ(s.advantage(), 0.0f);  // the learner's critic computes them
      rewarded |= s.reward() > 0;
    }
  }
  EXPECT_TRUE(rewarded);
  // Versions: 2 after SFT, unchanged by the two critic-only steps, 3 after
  // the last; workers follow.
  EXPECT_EQ(cluster.learner.version(), 3);
  EXPECT_EQ(cluster.rollouts[0]->version(), 3);
  EXPECT_EQ(MetricColumn<bool>(dir_ + "/fake_run", "critic_only"),
            (std::vector<bool>{true, true, false}));
}

TEST_F(FakeRunTest, ARestartedRunResumesFromTheLastCheckpointWithoutLosingSamples) {
  FakeCluster cluster(1);
  RunConfig config = SmallConfig(dir_);
  config.rl_steps = 5;
  config.run_checkpoint_every = 2;
  config.rl_skip_uniform_groups = false;  // every step trains: versions are predictable
  // The controller dies while step 4 trains: the last checkpoint is step
  // 2's (version 4); the learner and the workers live on at version 5+.
  CrashWhileTraining(cluster, config, 4);
  EXPECT_GE(cluster.learner.version(), 5);
  EXPECT_EQ(cluster.rollouts[0]->version(), 5);

  config.run_resume = true;
  RunControl control;
  TrainingRun run(config, AddressesOf(cluster), &control, Options());
  absl::StatusOr<RunSummary> summary = run.Run();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->steps, 5);
  EXPECT_THAT(out_.str(), HasSubstr("resumed from " + dir_ + "/fake_run/checkpoints/version-000000004 after step 2"));
  // The restarted controller rolled the live learner back (one Restore) and
  // the workers with it (5 -> 4, marked as a rollback); no second warm
  // start; steps 3-5 trained once more.
  EXPECT_EQ(cluster.learner.restores(), 1);
  const std::vector<int64_t> received = cluster.rollouts[0]->received_versions();
  EXPECT_EQ(std::vector<int64_t>(received.end() - 4, received.end()),
            (std::vector<int64_t>{4, 5, 6, 7}));
  std::vector<int64_t> steps;
  for (const v1::TrainBatch& b : cluster.learner.batches()) steps.push_back(b.step());
  EXPECT_EQ(steps, (std::vector<int64_t>{0, 0, 1, 2, 3, 4, 3, 4, 5}));
  EXPECT_EQ(cluster.rollouts[0]->version(), 7);
  // Metrics hold each step once; lineage has nothing lost or duplicated.
  EXPECT_EQ(MetricColumn<int64_t>(dir_ + "/fake_run", "step"),
            (std::vector<int64_t>{1, 2, 3, 4, 5}));
  absl::StatusOr<AuditReport> audit = AuditRun(dir_ + "/fake_run");
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_TRUE(audit->ok()) << (audit->problems.empty() ? "" : audit->problems.front());
  EXPECT_EQ(audit->samples, 5 * 4 * 4);

  // A resume the learner cannot back names what to do.
  FakeCluster fresh(1);
  RunControl control2;
  TrainingRun orphan(config, AddressesOf(fresh), &control2, Options());
  absl::StatusOr<RunSummary> failed = orphan.Run();
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(failed.status().message()),
              HasSubstr("run.resume: learner " + fresh.learner_address() +
                        " Restore: no trainer checkpoint under"));
}

// Behaviour versions of the RL batches, in step order.
std::vector<int64_t> BehaviorVersions(const FakeLearner& learner) {
  std::vector<int64_t> out;
  for (const v1::TrainBatch& b : learner.batches()) {
    if (b.step() > 0) out.push_back(b.behavior_version());
  }
  return out;
}

TEST_F(FakeRunTest, AsyncModeTrainsOnRolloutsAtMostTheBoundBehindAndIsReproducible) {
  for (int64_t bound : {1, 2}) {
    SCOPED_TRACE(absl::StrCat("rl.max_staleness=", bound));
    auto run_once = [&](const std::string& name) {
      FakeCluster cluster(2);
      RunConfig config = SmallConfig(dir_);
      config.name = name;
      config.rl_steps = 5;
      config.rl_skip_uniform_groups = false;  // every step trains: versions are predictable
      config.rl_mode = "async";
      config.rl_max_staleness = bound;
      RunControl control;
      TrainingRun run(config, AddressesOf(cluster), &control, Options());
      absl::StatusOr<RunSummary> summary = run.Run();
      EXPECT_TRUE(summary.ok()) << summary.status();
      // The held-out eval after RL ran on the final weights.
      for (const auto& rollout : cluster.rollouts) EXPECT_EQ(rollout->version(), 7);
      return BehaviorVersions(cluster.learner);
    };
    const std::string name = absl::StrCat("async", bound);
    const std::vector<int64_t> versions = run_once(name);
    // 2 SFT steps publish version 2; step s samples with the version step
    // s - bound - 1 published, so steps 1..bound+1 all use version 2.
    EXPECT_EQ(versions, bound == 1 ? (std::vector<int64_t>{2, 2, 3, 4, 5})
                                   : (std::vector<int64_t>{2, 2, 2, 3, 4}));
    const std::string run_dir = dir_ + "/" + name;
    const std::vector<int64_t> lag = MetricColumn<int64_t>(run_dir, "staleness_max");
    EXPECT_EQ(lag, bound == 1 ? (std::vector<int64_t>{0, 1, 1, 1, 1})
                              : (std::vector<int64_t>{0, 1, 2, 2, 2}));
    absl::StatusOr<AuditReport> audit = AuditRun(run_dir);
    ASSERT_TRUE(audit.ok()) << audit.status();
    EXPECT_TRUE(audit->ok()) << (audit->problems.empty() ? "" : audit->problems.front());
    EXPECT_EQ(audit->staleness_max, bound);
    EXPECT_EQ(audit->staleness_bound, bound);
    EXPECT_EQ(audit->samples, 5 * 4 * 4);
    // Versions follow the step numbers, not timing: a second run is the same.
    EXPECT_EQ(run_once(name + "_again"), versions);
    EXPECT_EQ(MetricColumn<double>(dir_ + "/" + name + "_again", "reward_mean"),
              MetricColumn<double>(run_dir, "reward_mean"));
  }
}

TEST_F(FakeRunTest, AsyncModeStaysWithinItsBoundAcrossAResume) {
  FakeCluster cluster(2);
  RunConfig config = SmallConfig(dir_);
  config.rl_steps = 6;
  config.run_checkpoint_every = 2;
  config.rl_skip_uniform_groups = false;
  config.rl_mode = "async";
  config.rl_max_staleness = 2;
  // Attempt 1 dies while step 3 trains, with steps 4 and 5 gathered or
  // being gathered ahead; the last checkpoint is step 2's.
  CrashWhileTraining(cluster, config, 3);
  ASSERT_TRUE(cluster.learner.RestartFromLastCheckpoint());
  EXPECT_EQ(cluster.learner.version(), 4);

  config.run_resume = true;
  RunControl control;
  TrainingRun run(config, AddressesOf(cluster), &control, Options());
  absl::StatusOr<RunSummary> summary = run.Run();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->steps, 6);
  // After the resume, step 3 samples with the checkpoint's version 4, as do
  // steps 4 and 5 (their basis steps precede the resume); step 6 uses the
  // version step 3 published. Nothing trains further than 2 versions behind.
  const std::vector<int64_t> versions = BehaviorVersions(cluster.learner);
  ASSERT_EQ(versions.size(), 7u);  // steps 1, 2, 3 (interrupted), 3..6
  EXPECT_EQ(std::vector<int64_t>(versions.begin() + 3, versions.end()),
            (std::vector<int64_t>{4, 4, 4, 5}));
  EXPECT_EQ(MetricColumn<int64_t>(dir_ + "/fake_run", "step"),
            (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_THAT(MetricColumn<int64_t>(dir_ + "/fake_run", "staleness_max"),
              Each(::testing::Le(2)));
  absl::StatusOr<AuditReport> audit = AuditRun(dir_ + "/fake_run");
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_TRUE(audit->ok()) << (audit->problems.empty() ? "" : audit->problems.front());
  EXPECT_EQ(audit->samples, 6 * 4 * 4);
  EXPECT_EQ(audit->staleness_max, 2);
}

TEST_F(FakeRunTest, AsyncStopRecordsTheRolloutsGatheredAheadAsUnused) {
  FakeCluster cluster(1);
  RunConfig config = SmallConfig(dir_);
  config.rl_steps = 6;
  config.rl_skip_uniform_groups = false;
  config.rl_mode = "async";
  config.rl_max_staleness = 2;
  RunControl control;
  TrainingRun run(config, AddressesOf(cluster), &control, Options());
  cluster.learner.set_train_hook([&](const v1::TrainBatch& b) {
    if (b.step() == 2) (void)control.Stop();
  });
  absl::StatusOr<RunSummary> summary = run.Run();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->steps, 2);
  absl::StatusOr<AuditReport> audit = AuditRun(dir_ + "/fake_run");
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_TRUE(audit->ok()) << (audit->problems.empty() ? "" : audit->problems.front());
  EXPECT_EQ(audit->used, 2 * 4 * 4);
  // Steps 3 to 5 may have been gathered ahead (step 6 waits for step 3),
  // how many depends on timing: whatever was issued is recorded, unused.
  EXPECT_EQ(audit->samples, audit->issued);
  EXPECT_GE(audit->samples, audit->used);
  EXPECT_LE(audit->samples, 5 * 4 * 4);
}

// Every "sample" record of the run's lineage.
std::vector<nlohmann::json> SampleRecords(const std::string& run_dir) {
  std::vector<nlohmann::json> out;
  for (const auto& entry : std::filesystem::directory_iterator(run_dir + "/samples")) {
    for (const nlohmann::json& j : ReadJsonLines(entry.path().string())) {
      if (j["type"] == "sample") out.push_back(j);
    }
  }
  return out;
}

TEST_F(FakeRunTest, PartialRolloutsAreCarriedToTheNextStepAndContinuedUnderNewerWeights) {
  // Samples of 47 tokens (a quarter, "truncated" ones) exceed the 40-token
  // budget; the others (about 34) finish in their step.
  FakeCluster cluster(2, FakeRollout::Mode::kSomeTruncated);
  RunConfig config = SmallConfig(dir_);
  config.rl_steps = 6;
  config.rl_skip_uniform_groups = false;
  config.rl_partial_rollout_tokens = 40;
  config.rl_partial_rollout_max_carries = 2;
  config.run_checkpoint_every = 2;
  // Dies while step 4 trains; resumes from step 2's checkpoint, whose
  // client_state holds the groups carried out of step 2.
  CrashWhileTraining(cluster, config, 4);
  config.run_resume = true;
  RunControl control;
  TrainingRun run(config, AddressesOf(cluster), &control, Options());
  absl::StatusOr<RunSummary> summary = run.Run();
  ASSERT_TRUE(summary.ok()) << summary.status();
  const std::string run_dir = dir_ + "/fake_run";
  const std::vector<int64_t> carried = MetricColumn<int64_t>(run_dir, "groups_carried");
  ASSERT_EQ(carried.size(), 6u);
  EXPECT_GT(std::accumulate(carried.begin(), carried.end(), int64_t{0}), 0);
  EXPECT_EQ(carried.back(), 0);  // the last step finishes everything
  int64_t continued = 0, mixed = 0;
  for (const nlohmann::json& r : SampleRecords(run_dir)) {
    if (r["carries"].get<int64_t>() == 0) continue;
    ++continued;
    EXPECT_LT(r["step"].get<int64_t>(), r["at_step"].get<int64_t>());  // keyed where issued
    if (r["segments"].size() == 2) {
      // Cut at the budget, continued under the newer version.
      ++mixed;
      EXPECT_EQ(r["segments"][0]["tokens"], 40);
      EXPECT_LT(r["segments"][0]["version"].get<int64_t>(),
                r["segments"][1]["version"].get<int64_t>());
    }
  }
  EXPECT_GT(continued, 0);
  EXPECT_GT(mixed, 0);
  // Every sample issued is recorded once, across the crash and the carries;
  // no trained sample lags more than its bound (0 + its carries).
  absl::StatusOr<AuditReport> audit = AuditRun(run_dir);
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_TRUE(audit->ok()) << (audit->problems.empty() ? "" : audit->problems.front());
  EXPECT_EQ(audit->samples, audit->issued);
  EXPECT_EQ(audit->dropped, 0);
}

TEST_F(FakeRunTest, KeepsUniformGroupsWhenRejectionSamplingIsOff) {
  FakeCluster cluster(1, FakeRollout::Mode::kAllCorrect);
  RunControl control;
  RunConfig config = SmallConfig(dir_);
  config.rl_skip_uniform_groups = false;
  TrainingRun run(config, AddressesOf(cluster), &control, Options());
  ASSERT_TRUE(run.Run().ok());
  std::vector<v1::TrainBatch> batches = cluster.learner.batches();
  ASSERT_EQ(batches.size(), 5u);
  EXPECT_EQ(batches[2].samples_size(), 16);
  EXPECT_EQ(batches[2].samples(0).advantage(), 0.0f);
  EXPECT_EQ(cluster.rollouts[0]->version(), 5);
}

TEST_F(FakeRunTest, PauseWaitsAfterTheCurrentStepAndResumeGoesOn) {
  FakeCluster cluster(2);
  RunControl control;
  cluster.learner.set_train_hook([&](const v1::TrainBatch& batch) {
    if (batch.objective() == v1::OBJECTIVE_POLICY_GRADIENT && batch.step() == 1) {
      ASSERT_TRUE(control.Pause().ok());
    }
  });
  RunConfig config = SmallConfig(dir_);
  config.rl_skip_uniform_groups = false;  // every step trains, so the hook fires
  TrainingRun run(config, AddressesOf(cluster), &control, Options());
  absl::StatusOr<RunSummary> summary;
  std::thread runner([&] { summary = run.Run(); });

  ASSERT_TRUE(control.WaitUntilParked(absl::Seconds(60)));
  v1::RunStatus status = control.Status();
  EXPECT_EQ(status.state(), v1::RUN_STATE_PAUSED);
  EXPECT_EQ(status.step(), 1);
  EXPECT_THAT(status.message(), HasSubstr("paused after step 1"));
  EXPECT_EQ(ReadJsonLines(dir_ + "/fake_run/metrics.jsonl").size(), 1u);
  EXPECT_TRUE(control.Pause().ok());  // idempotent

  absl::StatusOr<v1::RunStatus> resumed = control.Resume();
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(resumed->state(), v1::RUN_STATE_RUNNING);
  runner.join();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->steps, 3);
  EXPECT_EQ(ReadJsonLines(dir_ + "/fake_run/metrics.jsonl").size(), 3u);
  EXPECT_EQ(control.Status().state(), v1::RUN_STATE_FINISHED);
}

TEST_F(FakeRunTest, StopDuringTheRunFinishesTheStepThenWritesTheSummary) {
  FakeCluster cluster(2);
  RunControl control;
  cluster.learner.set_train_hook([&](const v1::TrainBatch& batch) {
    if (batch.objective() == v1::OBJECTIVE_POLICY_GRADIENT && batch.step() == 1) {
      absl::StatusOr<v1::RunStatus> s = control.Stop();
      ASSERT_TRUE(s.ok());
      EXPECT_EQ(s->state(), v1::RUN_STATE_STOPPING);
    }
  });
  RunConfig config = SmallConfig(dir_);
  config.rl_skip_uniform_groups = false;
  TrainingRun run(config, AddressesOf(cluster), &control, Options());
  absl::StatusOr<RunSummary> summary = run.Run();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->steps, 1);
  EXPECT_TRUE(summary->stopped_early);
  EXPECT_EQ(ReadJsonLines(dir_ + "/fake_run/metrics.jsonl").size(), 1u);
  nlohmann::json s = ReadJson(dir_ + "/fake_run/summary.json");
  EXPECT_EQ(s["steps"], 1);
  EXPECT_EQ(s["stopped_early"], true);
  // The update of step 1 still reached every worker.
  for (const auto& rollout : cluster.rollouts) EXPECT_EQ(rollout->version(), 3);
  v1::RunStatus status = control.Status();
  EXPECT_EQ(status.state(), v1::RUN_STATE_FINISHED);
  EXPECT_THAT(status.message(), HasSubstr("stopped"));
  EXPECT_FALSE(control.Stop().ok());  // the run is over
}

TEST_F(FakeRunTest, StopBeforeTheRunSkipsTrainingButStillEvaluatesAndSummarises) {
  FakeCluster cluster(1);
  RunControl control;
  TrainingRun run(SmallConfig(dir_), AddressesOf(cluster), &control, Options());
  ASSERT_TRUE(control.Stop().ok());
  absl::StatusOr<RunSummary> summary = run.Run();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->steps, 0);
  EXPECT_EQ(summary->sft_steps, 0);
  EXPECT_TRUE(cluster.learner.batches().empty());
  EXPECT_TRUE(ReadJsonLines(dir_ + "/fake_run/metrics.jsonl").empty());
  EXPECT_EQ(ReadJson(dir_ + "/fake_run/summary.json")["steps"], 0);
  EXPECT_EQ(control.Status().state(), v1::RUN_STATE_FINISHED);
}

TEST_F(FakeRunTest, CancelWhilePausedEndsTheRunCancelled) {
  FakeCluster cluster(1);
  RunControl control;
  ASSERT_TRUE(control.Status().state() == v1::RUN_STATE_IDLE);
  RunConfig config = SmallConfig(dir_);
  TrainingRun run(config, AddressesOf(cluster), &control, Options());
  ASSERT_TRUE(control.Pause().ok());  // parks before step 1
  absl::StatusOr<RunSummary> summary;
  std::thread runner([&] { summary = run.Run(); });
  ASSERT_TRUE(control.WaitUntilParked(absl::Seconds(60)));
  run.Cancel();
  runner.join();
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(control.Status().state(), v1::RUN_STATE_FAILED);
}

TEST_F(FakeRunTest, UnreachableWorkerFailsNamingItsAddressAfterRetries) {
  FakeCluster cluster(1);
  const std::string dead = absl::StrCat("127.0.0.1:", *PickFreePort());
  PeerAddresses peers = AddressesOf(cluster);
  peers.rollouts.push_back(dead);
  RunControl control;
  std::vector<int64_t> sleeps;
  TrainingRunOptions options = Options();
  options.sleep = [&](std::chrono::milliseconds d) { sleeps.push_back(d.count()); };
  TrainingRun run(SmallConfig(dir_), peers, &control, options);
  absl::StatusOr<RunSummary> summary = run.Run();
  ASSERT_FALSE(summary.ok());
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(summary.status().message()),
              HasSubstr(absl::StrCat("rollout ", dead, " unreachable after 3 attempts")));
  EXPECT_EQ(sleeps, (std::vector<int64_t>{1, 2}));
  v1::RunStatus status = control.Status();
  EXPECT_EQ(status.state(), v1::RUN_STATE_FAILED);
  EXPECT_THAT(status.message(), HasSubstr(dead));
}

TEST_F(FakeRunTest, ALostWorkersRequestsGoToTheOthersAndNothingIsLost) {
  FakeCluster cluster(2);
  // After step 1 trains, worker 1 dies at its next Generate and worker 0
  // holds its calls until then. With 2 requests in flight per worker and 4
  // groups per step, worker 1 is sure to take some of step 2's groups and
  // fail them; they go back to the queue and worker 0 runs them.
  absl::Notification died;
  cluster.learner.set_train_hook([&](const v1::TrainBatch& b) {
    if (b.step() != 1) return;
    cluster.rollouts[1]->DieAtNextGenerate(&died);
    cluster.rollouts[0]->HoldGenerateUntil(&died);
  });
  RunControl control;
  TrainingRunOptions options = Options();
  options.requests_per_worker = 2;
  TrainingRun run(SmallConfig(dir_), AddressesOf(cluster), &control, options);
  absl::StatusOr<RunSummary> summary = run.Run();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_TRUE(died.HasBeenNotified());
  EXPECT_EQ(summary->steps, 3);
  EXPECT_THAT(out_.str(), HasSubstr("rollout worker lost: " + cluster.rollout_addresses()[1] +
                                    ": rollout " + cluster.rollout_addresses()[1] +
                                    " Generate: fake rollout: killed"));
  EXPECT_THAT(out_.str(), HasSubstr("its requests went to the other 1 worker(s)"));
  EXPECT_EQ(cluster.rollouts[0]->version(), cluster.learner.version());
  EXPECT_EQ(MetricColumn<int64_t>(dir_ + "/fake_run", "workers_lost"),
            (std::vector<int64_t>{0, 1, 0}));
  absl::StatusOr<AuditReport> audit = AuditRun(dir_ + "/fake_run");
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_TRUE(audit->ok());
  EXPECT_EQ(audit->samples, 3 * 4 * 4);
}

TEST_F(FakeRunTest, OversamplingCutsTheLongTailInsteadOfWaiting) {
  FakeCluster cluster(1);
  // The first group of step 2 has a member that never finishes, and there
  // is no group deadline: only the long-tail cut lets the step end.
  cluster.learner.set_train_hook([&](const v1::TrainBatch& b) {
    if (b.step() == 1) cluster.rollouts[0]->StraggleNextGenerate();
  });
  RunConfig config = SmallConfig(dir_);
  config.rl_oversample_groups = 1;  // 5 groups issued, the first 4 done are kept
  config.rl_skip_uniform_groups = false;
  RunControl control;
  TrainingRun run(config, AddressesOf(cluster), &control, Options());
  absl::StatusOr<RunSummary> summary = run.Run();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->steps, 3);
  const std::vector<int64_t> cut = MetricColumn<int64_t>(dir_ + "/fake_run", "groups_cut");
  ASSERT_EQ(cut.size(), 3u);
  EXPECT_EQ(cut[1], 1);  // the straggler (other steps: 0 or 1, as timing falls)
  EXPECT_LE(cut[0], 1);
  EXPECT_LE(cut[2], 1);
  EXPECT_EQ(MetricColumn<int64_t>(dir_ + "/fake_run", "groups_kept"),
            (std::vector<int64_t>{4, 4, 4}));
  // Cut groups are accounted for as dropped, not lost.
  absl::StatusOr<AuditReport> audit = AuditRun(dir_ + "/fake_run");
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_TRUE(audit->ok()) << (audit->problems.empty() ? "" : audit->problems.front());
  EXPECT_EQ(audit->issued, 3 * 5 * 4);
  EXPECT_EQ(audit->samples + audit->dropped, audit->issued);
  EXPECT_GE(audit->dropped, 4);
}

TEST_F(FakeRunTest, ARolloutWorkerThatStopsHeartbeatingLeavesServiceBeforeTheNextStep) {
  FakeCluster cluster(2);
  RunControl control;
  std::atomic<int64_t> seconds{1000};  // a fake clock, advanced by the test
  control.SetClockForTesting([&] { return absl::FromUnixSeconds(seconds.load()); });
  const std::string silent = cluster.rollout_addresses()[1];
  int64_t calls_before_step2 = -1;
  cluster.learner.set_train_hook([&](const v1::TrainBatch& b) {
    if (b.step() == 0) {
      control.Heartbeat(silent, "rollout");  // registered workers heartbeat...
    } else if (b.step() == 1) {
      seconds += 11;  // ...and this one has been silent for 11 s
      calls_before_step2 = cluster.rollouts[1]->generate_calls();
    }
  });
  RunConfig config = SmallConfig(dir_);  // net.heartbeat_timeout_ms = 10000
  TrainingRun run(config, AddressesOf(cluster), &control, Options());
  absl::StatusOr<RunSummary> summary = run.Run();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_THAT(out_.str(), HasSubstr("rollout worker " + silent +
                                    ": no heartbeat for over 10000 ms; out of service"));
  EXPECT_EQ(cluster.rollouts[1]->generate_calls(), calls_before_step2);  // nothing after step 1
  // It is no longer counted as serving: its next heartbeat hears so (and
  // the worker registers again).
  EXPECT_FALSE(control.Heartbeat(silent, "rollout"));
  EXPECT_TRUE(control.Heartbeat(cluster.rollout_addresses()[0], "rollout"));
  absl::StatusOr<AuditReport> audit = AuditRun(dir_ + "/fake_run");
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_TRUE(audit->ok());
}

TEST_F(FakeRunTest, ARegisteredVerifierSharesTheWorkUntilItsHeartbeatsStop) {
  FakeCluster cluster(1);
  testing::FakeVerifier extra;
  auto host = ServerHost::Start("127.0.0.1:0", {&extra}, "", "extra verifier");
  ASSERT_TRUE(host.ok()) << host.status();
  const std::string address = (*host)->address();
  RunControl control;
  std::atomic<int64_t> seconds{1000};
  control.SetClockForTesting([&] { return absl::FromUnixSeconds(seconds.load()); });
  int64_t calls_after_step2 = -1;
  cluster.learner.set_train_hook([&](const v1::TrainBatch& b) {
    if (b.step() == 1) {
      // Registers (and heartbeats) while step 1 trains: joins before step 2.
      ASSERT_TRUE(control.RegisterVerifier(address).ok());
      control.Heartbeat(address, "verifier");
    } else if (b.step() == 2) {
      seconds += 11;  // then falls silent
      calls_after_step2 = extra.calls();
    }
  });
  RunConfig config = SmallConfig(dir_);
  config.rl_steps = 4;
  TrainingRun run(config, AddressesOf(cluster), &control, Options());
  absl::StatusOr<RunSummary> summary = run.Run();
  (*host)->Shutdown();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_THAT(out_.str(), HasSubstr("verifier joined: " + address + "; 2 serving"));
  EXPECT_THAT(out_.str(), HasSubstr("verifier " + address + ": no heartbeat for over 10000 ms"));
  EXPECT_GT(calls_after_step2, 0);                  // it took a share in step 2
  EXPECT_EQ(extra.calls(), calls_after_step2);      // and nothing once silent
  EXPECT_FALSE(control.Heartbeat(address, "verifier"));  // so it would register again
  absl::StatusOr<AuditReport> audit = AuditRun(dir_ + "/fake_run");
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_TRUE(audit->ok());
}

TEST_F(FakeRunTest, AStragglerIsResampledOrItsGroupDropped) {
  for (const char* policy : {"resample", "drop"}) {
    std::filesystem::remove_all(dir_ + "/fake_run");
    FakeCluster cluster(1);
    // The first group of step 2 has a member that never finishes.
    cluster.learner.set_train_hook([&](const v1::TrainBatch& b) {
      if (b.step() == 1) cluster.rollouts[0]->StraggleNextGenerate();
    });
    RunConfig config = SmallConfig(dir_);
    // Far above what a fake group takes, even on a loaded machine.
    config.rl_group_deadline_ms = 1500;
    config.rl_straggler_policy = policy;
    RunControl control;
    TrainingRun run(config, AddressesOf(cluster), &control, Options());
    absl::StatusOr<RunSummary> summary = run.Run();
    ASSERT_TRUE(summary.ok()) << policy << ": " << summary.status();
    EXPECT_EQ(summary->steps, 3);
    const std::vector<int64_t> resampled =
        MetricColumn<int64_t>(dir_ + "/fake_run", "samples_resampled");
    const std::vector<int64_t> dropped = MetricColumn<int64_t>(dir_ + "/fake_run", "groups_dropped");
    absl::StatusOr<AuditReport> audit = AuditRun(dir_ + "/fake_run");
    ASSERT_TRUE(audit.ok()) << audit.status();
    EXPECT_TRUE(audit->ok()) << policy;
    EXPECT_EQ(audit->issued, 3 * 4 * 4);
    if (std::string(policy) == "resample") {
      EXPECT_EQ(resampled, (std::vector<int64_t>{0, 1, 0}));
      EXPECT_EQ(dropped, (std::vector<int64_t>{0, 0, 0}));
      EXPECT_EQ(audit->samples, 3 * 4 * 4);
      EXPECT_EQ(audit->dropped, 0);
    } else {
      EXPECT_EQ(resampled, (std::vector<int64_t>{0, 0, 0}));
      EXPECT_EQ(dropped, (std::vector<int64_t>{0, 1, 0}));
      EXPECT_EQ(audit->samples, 3 * 4 * 4 - 4);
      EXPECT_EQ(audit->dropped, 4);
    }
  }
}

TEST_F(FakeRunTest, AWorkerThatRegistersMidRunGetsTheWeightsThenServes) {
  FakeCluster cluster(2);
  PeerAddresses peers = AddressesOf(cluster);
  const std::string joiner = peers.rollouts[1];
  peers.rollouts.resize(1);  // the run starts with worker 0 only
  RunControl control;
  EXPECT_EQ(control.RegisterRollout(joiner).status().code(),
            absl::StatusCode::kFailedPrecondition);  // no run yet
  cluster.learner.set_train_hook([&](const v1::TrainBatch& b) {
    if (b.step() == 1) ASSERT_TRUE(control.RegisterRollout(joiner).ok());
  });
  RunConfig config = SmallConfig(dir_);
  config.rl_skip_uniform_groups = false;
  TrainingRun run(config, peers, &control, Options());
  ASSERT_TRUE(run.Run().ok());
  // Joined before step 2 with version 3 (2 SFT steps + step 1), then served.
  EXPECT_THAT(out_.str(), HasSubstr("rollout worker joined: " + joiner +
                                    " (weight version 3); 2 serving"));
  ASSERT_FALSE(cluster.rollouts[1]->received_versions().empty()) << out_.str();
  EXPECT_EQ(cluster.rollouts[1]->received_versions().front(), 3);
  EXPECT_GT(cluster.rollouts[1]->generate_calls(), 0);
  EXPECT_EQ(cluster.rollouts[1]->version(), cluster.learner.version());
  bool listed = false;
  const v1::RunStatus status = control.Status();
  for (const v1::WorkerStatus& w : status.workers()) {
    listed |= w.address() == joiner && w.role() == "rollout" && w.healthy();
  }
  EXPECT_TRUE(listed);
  EXPECT_EQ(control.RegisterRollout("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(control.DrainRollout(joiner).status().code(),
            absl::StatusCode::kFailedPrecondition);  // the run has ended
  absl::StatusOr<AuditReport> audit = AuditRun(dir_ + "/fake_run");
  ASSERT_TRUE(audit.ok());
  EXPECT_TRUE(audit->ok());
}

TEST_F(FakeRunTest, ADrainedWorkerGetsNoMoreWorkAndTheLastOneIsKept) {
  FakeCluster cluster(2);
  RunControl control;
  const std::vector<std::string> addresses = cluster.rollout_addresses();
  int64_t calls_after_drain = -1;
  cluster.learner.set_train_hook([&](const v1::TrainBatch& b) {
    if (b.step() == 1) {
      ASSERT_TRUE(control.DrainRollout(addresses[1]).ok());
      ASSERT_TRUE(control.DrainRollout(addresses[0]).ok());  // would leave none: refused
      ASSERT_TRUE(control.DrainRollout("127.0.0.1:1").ok());  // unknown: refused
    }
    if (b.step() == 2) calls_after_drain = cluster.rollouts[1]->generate_calls();
  });
  RunConfig config = SmallConfig(dir_);
  config.rl_skip_uniform_groups = false;
  const int64_t before = cluster.rollouts[1]->generate_calls();
  TrainingRun run(config, AddressesOf(cluster), &control, Options());
  ASSERT_TRUE(run.Run().ok());
  EXPECT_THAT(out_.str(), HasSubstr("rollout worker drained: " + addresses[1] + "; 1 serving"));
  EXPECT_THAT(out_.str(), HasSubstr("rollout worker " + addresses[0] +
                                    " not drained: rollout " + addresses[0] +
                                    " is the last serving worker"));
  EXPECT_THAT(out_.str(), HasSubstr("rollout worker 127.0.0.1:1 not drained: rollout "
                                    "127.0.0.1:1 is not serving"));
  EXPECT_GT(calls_after_drain, before);
  // Nothing reached worker 1 after the drain (step 2 on), and its weights
  // stayed at the version it had.
  EXPECT_EQ(cluster.rollouts[1]->generate_calls(), calls_after_drain);
  EXPECT_LT(cluster.rollouts[1]->version(), cluster.learner.version());
  EXPECT_EQ(cluster.rollouts[0]->version(), cluster.learner.version());
  absl::StatusOr<AuditReport> audit = AuditRun(dir_ + "/fake_run");
  ASSERT_TRUE(audit.ok());
  EXPECT_TRUE(audit->ok());
}

TEST_F(FakeRunTest, AnOperatorCheckpointIsSavedAfterTheCurrentStep) {
  FakeCluster cluster(1);
  RunControl control;
  // rlctl checkpoint while step 2 trains.
  cluster.learner.set_train_hook([&](const v1::TrainBatch& b) {
    if (b.step() == 2) ASSERT_TRUE(control.RequestCheckpoint().ok());
  });
  RunConfig config = SmallConfig(dir_);
  config.rl_skip_uniform_groups = false;
  TrainingRun run(config, AddressesOf(cluster), &control, Options());
  ASSERT_TRUE(run.Run().ok());
  EXPECT_THAT(out_.str(), HasSubstr("checkpoint after step 2 (version 4) written to " + dir_ +
                                    "/fake_run/checkpoints/version-000000004"));
  EXPECT_THAT(out_.str(), Not(HasSubstr("checkpoint after step 1")));
  ASSERT_TRUE(cluster.learner.RestartFromLastCheckpoint());
  EXPECT_EQ(cluster.learner.version(), 4);
}

TEST_F(FakeRunTest, AnUnavailableVerifierIsRetriedWithBackoff) {
  FakeCluster cluster(1);
  std::vector<std::chrono::milliseconds> sleeps;
  TrainingRunOptions options = Options();
  options.sleep = [&](std::chrono::milliseconds d) { sleeps.push_back(d); };
  // Step 2's verify call fails twice, then goes through.
  cluster.learner.set_train_hook([&](const v1::TrainBatch& b) {
    if (b.step() == 1) cluster.verifier.FailNext(2);
  });
  RunControl control;
  TrainingRun run(SmallConfig(dir_), AddressesOf(cluster), &control, options);
  absl::StatusOr<RunSummary> summary = run.Run();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(MetricColumn<int64_t>(dir_ + "/fake_run", "verifier_retries"),
            (std::vector<int64_t>{0, 2, 0}));
  EXPECT_EQ(sleeps, (std::vector<std::chrono::milliseconds>{std::chrono::milliseconds(1),
                                                            std::chrono::milliseconds(2)}));
  absl::StatusOr<AuditReport> audit = AuditRun(dir_ + "/fake_run");
  ASSERT_TRUE(audit.ok());
  EXPECT_TRUE(audit->ok());

  // One that stays down fails the run after net.connect_retries attempts,
  // naming it.
  FakeCluster down(1);
  down.learner.set_train_hook([&](const v1::TrainBatch& b) {
    if (b.step() == 1) down.verifier.FailNext(100);
  });
  RunControl control2;
  TrainingRun failing(SmallConfig(dir_), AddressesOf(down), &control2, options);
  absl::StatusOr<RunSummary> failed = failing.Run();
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(failed.status().message()),
              HasSubstr("verifier " + down.verifier_address() + " unreachable after 3 attempts"));
}

TEST_F(FakeRunTest, WorkerErrorMidRunFailsNamingTheWorker) {
  FakeCluster cluster(1, FakeRollout::Mode::kFailGenerate);
  RunControl control;
  TrainingRun run(SmallConfig(dir_), AddressesOf(cluster), &control, Options());
  absl::StatusOr<RunSummary> summary = run.Run();
  ASSERT_FALSE(summary.ok());
  EXPECT_THAT(std::string(summary.status().message()),
              HasSubstr(absl::StrCat("rollout ", cluster.rollout_addresses()[0], " Generate")));
  EXPECT_THAT(std::string(summary.status().message()), HasSubstr("engine crashed"));
  EXPECT_EQ(control.Status().state(), v1::RUN_STATE_FAILED);
}

TEST_F(FakeRunTest, MalformedDatasetFailsTheRunWithTheLineNumber) {
  FakeCluster cluster(1);
  const std::string path = dir_ + "/bad.jsonl";
  {
    std::ofstream out(path);
    out << "{\"prompt\": \"1+1=\", \"answer\": \"2\"}\n{\"prompt\": \"2+2=\"}\n";
  }
  RunConfig config = SmallConfig(dir_);
  config.task_kind = "jsonl";
  config.task_train_path = path;
  config.task_heldout_path = path;
  RunControl control;
  TrainingRun run(config, AddressesOf(cluster), &control, Options());
  absl::StatusOr<RunSummary> summary = run.Run();
  ASSERT_FALSE(summary.ok());
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(summary.status().message()), HasSubstr("line 2: field 'answer' missing"));
}

}  // namespace
}  // namespace rlpost
