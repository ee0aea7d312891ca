// The controller under faults and membership changes, against in-process
// fake services: resume after a crash, async mode and its staleness bound,
// partial rollouts, lost and silent workers, stragglers and the long-tail
// cut, joining and draining, verifier retries.

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

}  // namespace
}  // namespace rlpost
