// The controller's run loop against in-process fake services: steps, weight
// sync, batches and algorithms, pause/stop/cancel, bad input.

#include "tests/controller/fake_run_fixture.h"

namespace rlpost {
namespace {

using ::rlpost::testing::FakeCluster;
using ::rlpost::testing::FakeLearner;
using ::rlpost::testing::FakeRollout;
using ::testing::Each;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;

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
