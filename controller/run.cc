#include "controller/run.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "controller/run_internal.h"
#include "controller/dataset.h"
#include "controller/group_advantage.h"
#include "controller/plots.h"
#include "learner/advantages.h"
#include "reward/reward.h"

namespace rlpost {

using run_internal::Clock;
using run_internal::SecondsSince;

namespace {

PeerTimeouts TimeoutsOf(const RunConfig& config) {
  PeerTimeouts t;
  t.rpc = std::chrono::milliseconds(config.rpc_timeout_ms);
  t.connect = std::min(t.rpc, std::chrono::milliseconds(10000));
  t.verifier_deadline_ms = static_cast<int>(config.verifier_deadline_ms);
  return t;
}

}  // namespace

TrainingRun::TrainingRun(RunConfig config, PeerAddresses peers, RunControl* control,
                         TrainingRunOptions options)
    : config_(std::move(config)),
      addresses_(std::move(peers)),
      control_(control),
      options_(std::move(options)),
      out_(options_.out != nullptr ? options_.out : &std::cout) {
  if (options_.requests_per_worker <= 0) {
    const int64_t group = std::max<int64_t>(1, config_.rl_group_size);
    options_.requests_per_worker =
        static_cast<int>(std::max<int64_t>(1, (config_.rollout_max_batch + group - 1) / group));
  }
  clients_ = std::make_unique<PeerClients>(addresses_, TimeoutsOf(config_), &canceller_);
  control_->BeginRun(config_.name, config_.rl_steps);
}

std::string TrainingRun::run_dir() const {
  return (std::filesystem::path(config_.output_dir) / config_.name).string();
}

void TrainingRun::Cancel() {
  control_->Abort();
  canceller_.CancelAll();
}

void TrainingRun::Print(const std::string& line) {
  std::lock_guard<std::mutex> lock(print_mu_);
  *out_ << line << "\n" << std::flush;
}

absl::StatusOr<RunSummary> TrainingRun::Run() {
  RunSummary summary;
  absl::Status status = Execute(&summary);
  if (canceller_.cancelled()) {
    status = absl::CancelledError(absl::StrCat("run '", config_.name,
                                               "' cancelled by a shutdown signal after step ",
                                               steps_done_));
  }
  if (!status.ok()) {
    RLPOST_LOG(ERROR) << "run failed: " << status.message();
    control_->Fail(std::string(status.message()));
    return status;
  }
  control_->Finish();
  return summary;
}

absl::Status TrainingRun::Execute(RunSummary* summary) {
  const Clock::time_point start = Clock::now();
  summary->run_name = config_.name;
  summary->steps_planned = config_.rl_steps;

  absl::StatusOr<std::vector<Problem>> train = LoadProblems(config_, Split::kTrain);
  if (!train.ok()) return train.status();
  absl::StatusOr<std::vector<Problem>> heldout = LoadProblems(config_, Split::kHeldout);
  if (!heldout.ok()) return heldout.status();
  train_ = std::move(*train);
  heldout_ = std::move(*heldout);
  if (train_.empty()) {
    return absl::InvalidArgumentError("the task has no train problems (task.train_size or "
                                      "task.train_path)");
  }
  rl_cursor_ = std::make_unique<ProblemCursor>(&train_, DeriveSeed(config_.seed, SeedTag::kRlOrder));

  std::error_code ec;
  std::filesystem::create_directories(run_dir(), ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create '", run_dir(), "': ", ec.message()));
  {
    const std::string samples = (std::filesystem::path(run_dir()) / "samples").string();
    // A fresh run starts a fresh record; a resumed one goes on with it.
    if (!config_.run_resume) std::filesystem::remove_all(samples, ec);
    absl::StatusOr<std::unique_ptr<LineageLog>> log =
        LineageLog::Open(samples, config_.run_lineage_file_mb << 20);
    if (!log.ok()) return log.status();
    lineage_ = std::move(*log);
  }
  metrics_path_ = (std::filesystem::path(run_dir()) / "metrics.jsonl").string();
  if (!config_.run_resume) {
    std::ofstream truncate(metrics_path_, std::ios::trunc);
    if (!truncate) return absl::InternalError(absl::StrCat("cannot write '", metrics_path_, "'"));
  }

  absl::Status s = Connect();
  if (!s.ok()) return s;
  s = StartRewardPlugins();
  if (!s.ok()) return s;
  double before_accuracy = 0.0;
  if (config_.run_resume) {
    // The learner restored its checkpoint; the controller's own state (step,
    // data cursor, held-out baseline) came back with it as client_state.
    absl::StatusOr<double> restored = ResumeFromLearner();
    if (!restored.ok()) return restored.status();
    before_accuracy = *restored;
    s = SyncWeights(version_);
    if (!s.ok()) return s;
  } else {
    s = WarmStart();
    if (!s.ok()) return s;
    s = SyncWeights(version_);
    if (!s.ok()) return s;
    absl::StatusOr<EvalResult> before = Evaluate("before RL");
    if (!before.ok()) return before.status();
    before_accuracy = before->accuracy();
    if (config_.run_checkpoint_every > 0) {
      // Step 0: a crash in any RL step can resume without redoing the warm
      // start or the first evaluation.
      s = SaveRunCheckpoint(0, before_accuracy, rl_cursor_->position(), carried_);
      if (!s.ok()) return s;
    }
  }
  summary->sft_steps = sft_steps_done_;
  control_->SetHeldoutAccuracy(/*after_rl=*/false, before_accuracy);

  control_->BeginSteps();
  const int64_t steps_before = steps_done_;
  const Clock::time_point rl_start = Clock::now();
  s = config_.rl_mode == "async" ? RunStepsAsync(before_accuracy) : RunStepsSync(before_accuracy);
  if (!s.ok()) return s;
  summary->rl_seconds = SecondsSince(rl_start);
  summary->steps_per_hour =
      summary->rl_seconds > 0 ? 3600.0 * static_cast<double>(steps_done_ - steps_before) /
                                    summary->rl_seconds
                              : 0.0;

  absl::StatusOr<EvalResult> after = Evaluate("after RL");
  if (!after.ok()) return after.status();
  control_->SetHeldoutAccuracy(/*after_rl=*/true, after->accuracy());

  control_->SetActivity("saving checkpoint");
  std::filesystem::path checkpoint =
      std::filesystem::absolute(std::filesystem::path(run_dir()) / "checkpoint", ec);
  absl::StatusOr<v1::SaveCheckpointResponse> saved = clients_->SaveCheckpoint(checkpoint.string());
  if (!saved.ok()) return saved.status();
  Print(absl::StrCat("checkpoint (version ", saved->weight_version(), ") written to ",
                     saved->directory().empty() ? checkpoint.string() : saved->directory()));

  summary->heldout_accuracy_before = before_accuracy;
  summary->heldout_accuracy_after = after->accuracy();
  summary->heldout_problems = after->total;
  summary->steps = steps_done_;
  summary->stopped_early = steps_done_ < config_.rl_steps;
  summary->final_weight_version = version_;
  summary->checkpoint_dir = checkpoint.string();
  summary->wall_seconds = SecondsSince(start);
  const std::string summary_path = (std::filesystem::path(run_dir()) / "summary.json").string();
  s = WriteSummary(*summary, summary_path);
  if (!s.ok()) return s;
  {
    const std::string plots = (std::filesystem::path(run_dir()) / "plots").string();
    std::vector<std::string> written;
    absl::Status p = WriteRunPlots(metrics_path_, plots, &written);
    if (p.ok()) {
      Print(absl::StrCat("plots: ", plots, "/{reward,accuracy,response_length,throughput}.png"));
    } else {
      // The figures are in metrics.jsonl either way.
      RLPOST_LOG(WARNING) << "plots not written: " << p.message();
    }
  }
  Print(absl::StrFormat("run %s: %d RL steps in %.1f s; metrics %s, summary %s", config_.name,
                        steps_done_, summary->wall_seconds, metrics_path_, summary_path));
  Print("");
  *out_ << FormatHeldoutTable(before_accuracy, after->accuracy()) << std::flush;
  return absl::OkStatus();
}

absl::Status TrainingRun::Connect() {
  control_->SetActivity("connecting to workers");
  RetryPolicy policy;
  policy.max_attempts = static_cast<int>(config_.connect_retries);
  policy.initial_backoff = std::chrono::milliseconds(config_.connect_backoff_ms);
  policy.multiplier = 2.0;
  SleepFn sleep = options_.sleep;
  if (!sleep) sleep = [this](std::chrono::milliseconds d) { canceller_.Sleep(d); };
  std::vector<v1::WorkerStatus> workers;
  v1::LearnerInfo learner_info;
  absl::Status s = clients_->Connect(policy, sleep, &workers, &learner_info);
  if (!s.ok()) return s;
  learner_info_ = learner_info;
  control_->SetWorkers(workers);
  version_ = learner_info.weight_version();
  control_->SetWeightVersion(version_);
  Print(absl::StrFormat("connected: %d rollout worker(s), verifier %s, learner %s "
                        "(world size %d, weight version %d)",
                        clients_->rollout_count(), addresses_.verifier, addresses_.learner,
                        learner_info.world_size(), learner_info.weight_version()));
  return absl::OkStatus();
}

absl::Status TrainingRun::WarmStart() {
  if (config_.sft_steps == 0) {
    Print("sft: skipped (sft.steps = 0)");
    return absl::OkStatus();
  }
  std::vector<Problem> solved;
  for (const Problem& p : train_) {
    if (!p.solution.empty()) solved.push_back(p);
  }
  if (solved.empty()) {
    Print("sft: skipped: the train problems carry no solutions");
    RLPOST_LOG(WARNING) << "sft warm start skipped: no train problem has a solution";
    return absl::OkStatus();
  }
  ProblemCursor cursor(&solved, DeriveSeed(config_.seed, SeedTag::kSftOrder));
  const int64_t report_every = std::max<int64_t>(1, config_.sft_steps / 10);
  const Clock::time_point start = Clock::now();
  for (int64_t s = 1; s <= config_.sft_steps; ++s) {
    if (control_->StopRequested()) {
      Print(absl::StrCat("sft: stop requested after ", s - 1, " steps"));
      break;
    }
    control_->SetActivity(absl::StrCat("sft ", s, "/", config_.sft_steps));
    v1::TrainBatch batch;
    batch.set_step(0);  // SFT batches are not RL steps
    batch.set_objective(v1::OBJECTIVE_SFT);
    batch.set_behavior_version(version_);
    for (const Problem* p : cursor.Take(config_.sft_batch_size)) {
      v1::TrainSample* sample = batch.add_samples();
      sample->set_prompt_text(p->prompt);
      sample->set_response_text(p->solution);
    }
    absl::StatusOr<v1::TrainResult> result = clients_->Train(batch);
    if (!result.ok()) return result.status();
    version_ = result->weight_version();
    sft_steps_done_ = s;
    control_->SetWeightVersion(version_);
    if (s % report_every == 0 || s == config_.sft_steps) {
      Print(absl::StrFormat("sft %d/%d  loss %.4f  v %d  elapsed_s %.1f", s, config_.sft_steps,
                            result->loss(), version_, SecondsSince(start)));
    }
  }
  return absl::OkStatus();
}

absl::Status TrainingRun::SyncWeights(int64_t version) {
  absl::StatusOr<WeightSet> weights =
      clients_->FetchWeights(config_.learner_publish_dtype == "bfloat16", version);
  if (!weights.ok()) return weights.status();
  if (rollback_next_sync_ && !weights->chunks.empty()) {
    weights->chunks.front().set_rollback(true);
    rollback_next_sync_ = false;
  }
  if (weights->version != version) {
    return absl::DataLossError(absl::StrCat("learner ", addresses_.learner,
                                            " GetWeights sent version ", weights->version,
                                            ", expected version ", version));
  }
  absl::Status s = clients_->PushWeights(*weights);
  ReportLostWorkers();
  if (!s.ok()) return s;
  worker_version_ = weights->version;
  control_->SetWeightVersion(weights->version);
  return absl::OkStatus();
}

absl::StatusOr<TrainingRun::EvalResult> TrainingRun::Evaluate(const char* label) {
  control_->SetActivity(absl::StrCat("held-out eval ", label));
  EvalResult result;
  const size_t count =
      std::min(heldout_.size(), static_cast<size_t>(std::max<int64_t>(0, config_.eval_size)));
  if (count == 0) {
    Print(absl::StrCat("held-out eval ", label, ": no held-out problems"));
    return result;
  }
  const Clock::time_point start = Clock::now();
  std::vector<v1::GenerateRequest> requests(count);
  for (size_t i = 0; i < count; ++i) {
    v1::GenerateRequest& r = requests[i];
    r.set_prompt_id(heldout_[i].id);
    r.set_prompt(heldout_[i].prompt);
    r.set_n(1);
    r.mutable_params()->set_temperature(static_cast<float>(config_.eval_temperature));
    r.mutable_params()->set_max_new_tokens(static_cast<int32_t>(config_.rl_max_new_tokens));
    r.mutable_params()->set_seed(DeriveSeed(config_.seed, SeedTag::kEvalSampling, {i}));
  }
  absl::StatusOr<std::vector<std::vector<v1::Completion>>> groups =
      clients_->GenerateAll(requests, options_.requests_per_worker);
  ReportLostWorkers();
  if (!groups.ok()) return groups.status();
  std::vector<v1::VerifyItem> items(count);
  for (size_t i = 0; i < count; ++i) {
    items[i].set_id(heldout_[i].id);
    items[i].set_kind("math");
    items[i].set_response((*groups)[i][0].text());
    items[i].set_reference(heldout_[i].answer);
  }
  absl::StatusOr<std::vector<v1::Verdict>> verdicts = clients_->VerifyAll(items);
  if (!verdicts.ok()) return verdicts.status();
  result.total = static_cast<int64_t>(count);
  for (const v1::Verdict& v : *verdicts) result.correct += v.correct() ? 1 : 0;
  Print(absl::StrFormat("held-out eval %s: %d/%d correct (%.1f%%)  eval_s %.1f", label,
                        result.correct, result.total, 100.0 * result.accuracy(),
                        SecondsSince(start)));
  return result;
}

absl::Status TrainingRun::TrainStep(StepRollouts rollouts, bool sync_after) {
  const Clock::time_point start = Clock::now();
  const int64_t step = rollouts.step;
  StepMetrics m = rollouts.metrics;
  m.step = step;
  m.total_steps = config_.rl_steps;
  std::vector<ScoredGroups>& rounds = rollouts.rounds;
  const int64_t wanted = config_.rl_prompts_per_step;
  const int64_t samples = rollouts.samples, tokens = rollouts.tokens, correct = rollouts.correct;
  const double reward_sum = rollouts.reward_sum;

  // 3. The training batch: kept groups (at most rl.prompts_per_step), with
  // advantages over them (batch-normalised estimators see only these).
  struct KeptGroup {
    const ScoredGroups* round;
    size_t index;
  };
  std::vector<KeptGroup> kept;
  for (const ScoredGroups& r : rounds) {
    for (size_t i = 0; i < r.groups.size(); ++i) {
      m.groups_total += 1;
      if (r.dropped[i]) continue;  // a straggler cut off at the deadline
      if (r.reward_failed[i]) {
        m.groups_reward_failed += 1;  // a sample without a reward: not trainable
        continue;
      }
      if (r.uniform[i]) m.groups_uniform += 1;
      if ((r.uniform[i] && config_.rl_skip_uniform_groups) ||
          static_cast<int64_t>(kept.size()) >= wanted) {
        continue;
      }
      kept.push_back({&r, i});
    }
  }
  std::vector<std::vector<double>> kept_rewards;
  for (const KeptGroup& g : kept) kept_rewards.push_back(g.round->rewards[g.index]);
  absl::StatusOr<AdvantageEstimator> estimator = ParseAdvantageEstimator(config_.rl_advantage);
  if (!estimator.ok()) return estimator.status();
  // With a critic (gae) the learner computes per-token advantages from the
  // rewards; outcome estimators are computed here, over the kept groups.
  absl::StatusOr<std::vector<std::vector<double>>> kept_advantages = kept_rewards;
  if (NeedsCritic(*estimator)) {
    for (auto& group : *kept_advantages) std::fill(group.begin(), group.end(), 0.0);
  } else {
    kept_advantages = ComputeOutcomeAdvantages(*estimator, kept_rewards);
  }
  if (!kept_advantages.ok()) return kept_advantages.status();
  // Which samples go into the batch: [round][group][sample].
  std::vector<std::vector<std::vector<bool>>> used;
  for (const ScoredGroups& r : rounds) used.push_back(r.used);
  v1::TrainBatch batch;
  batch.set_step(step);
  batch.set_objective(config_.rl_objective == "rft" ? v1::OBJECTIVE_SFT
                                                    : v1::OBJECTIVE_POLICY_GRADIENT);
  batch.set_behavior_version(rollouts.worker_version);
  if (config_.rl_objective == "rft") {
    // Rejection-sampling fine-tuning: SFT on one accepted (correct) sample
    // per generated group, the best-rewarded or the shortest.
    for (const ScoredGroups& r : rounds) {
      for (size_t i = 0; i < r.groups.size(); ++i) {
        if (r.reward_failed[i]) continue;
        int best = -1;
        for (size_t j = 0; j < r.groups[i].size(); ++j) {
          if (!r.correct_flags[i][j]) continue;
          const v1::Completion& c = r.groups[i][j];
          if (config_.rl_rft_select == "shortest_correct") {
            if (best < 0 || c.token_ids_size() < r.groups[i][best].token_ids_size()) {
              best = static_cast<int>(j);
            }
          } else if (best < 0 || r.rewards[i][j] > r.rewards[i][best]) {
            best = static_cast<int>(j);
          }
        }
        if (best < 0) continue;
        used[&r - rounds.data()][i][static_cast<size_t>(best)] = true;
        const v1::Completion& c = r.groups[i][best];
        v1::TrainSample* sample = batch.add_samples();
        *sample->mutable_prompt_token_ids() = c.prompt_token_ids();
        *sample->mutable_response_token_ids() = c.token_ids();
        sample->set_reward(static_cast<float>(r.rewards[i][best]));
      }
    }
  }
  for (size_t kg = 0; config_.rl_objective != "rft" && kg < kept.size(); ++kg) {
    const std::vector<v1::Completion>& group = kept[kg].round->groups[kept[kg].index];
    for (size_t j = 0; j < group.size(); ++j) {
      const v1::Completion& c = group[j];
      // Filters after the advantages (the group statistics still count the
      // sample): truncated samples (DAPO's overlong filtering) and samples
      // without a well-formed final answer leave the loss.
      if (config_.rl_drop_truncated && c.finish_reason() == v1::FINISH_REASON_LENGTH) {
        ++m.samples_filtered;
        continue;
      }
      if (config_.rl_require_format && !HasWellFormedAnswer(c.text())) {
        ++m.samples_filtered;
        continue;
      }
      used[kept[kg].round - rounds.data()][kept[kg].index][j] = true;
      v1::TrainSample* sample = batch.add_samples();
      *sample->mutable_prompt_token_ids() = c.prompt_token_ids();
      *sample->mutable_response_token_ids() = c.token_ids();
      *sample->mutable_old_logprobs() = c.logprobs();
      sample->set_advantage(static_cast<float>((*kept_advantages)[kg][j]));
      sample->set_reward(static_cast<float>(kept[kg].round->rewards[kept[kg].index][j]));
      if (config_.rl_router_replay) {
        *sample->mutable_routed_experts() = c.routed_experts();
        sample->set_experts_per_token(c.experts_per_token());
      }
    }
  }

  for (size_t r = 0; r < rounds.size(); ++r) rounds[r].used = std::move(used[r]);

  // Staleness: how far the oldest token of each trained sample lags the
  // learner. Generation never runs ahead of the bound, so a breach is a bug.
  const int64_t learner_version = version_;
  int64_t stale_sum = 0, stale_count = 0;
  for (const ScoredGroups& r : rounds) {
    for (size_t i = 0; i < r.groups.size(); ++i) {
      for (size_t j = 0; j < r.groups[i].size(); ++j) {
        if (!r.used[i][j]) continue;
        const v1::Completion& c = r.groups[i][j];
        int64_t oldest = learner_version;
        for (int64_t v : c.weight_versions()) oldest = std::min(oldest, v);
        const int64_t lag = learner_version - oldest;
        // A continued partial rollout may lag one more version per carry.
        if (lag > config_.rl_max_staleness + r.carries[i]) {
          return absl::InternalError(absl::StrCat(
              "step ", step, ": sample ", c.sample_index(), " of prompt '", c.prompt_id(),
              "' is ", lag, " weight versions behind the learner (", learner_version,
              "), over rl.max_staleness ", config_.rl_max_staleness, " + ", r.carries[i],
              " carries"));
        }
        m.staleness_max = std::max(m.staleness_max, lag);
        stale_sum += lag;
        ++stale_count;
      }
    }
  }
  m.staleness_mean = stale_count > 0 ? static_cast<double>(stale_sum) / stale_count : 0.0;

  // 4. Train; in sync mode publish the new version to every worker.
  bool trained = false;
  if (batch.samples_size() > 0) {
    control_->SetActivity(absl::StrCat("step ", step, "/", config_.rl_steps, ": training"));
    const Clock::time_point train_start = Clock::now();
    absl::StatusOr<v1::TrainResult> result = clients_->Train(batch);
    if (!result.ok()) return result.status();
    m.train_seconds = SecondsSince(train_start);
    trained = !result->skipped();
    const int64_t before = version_;
    version_ = result->weight_version();
    m.trained = !result->skipped();
    m.skipped = result->skipped();
    m.critic_only = result->critic_only();
    m.loss = result->loss();
    m.grad_norm = result->grad_norm();
    m.clip_fraction = result->clip_fraction();
    m.approx_kl = result->approx_kl();
    m.ref_kl = result->ref_kl();
    m.entropy = result->entropy();
    m.value_loss = result->value_loss();
    m.value_mean = result->value_mean();
    if (version_ != before && sync_after) {
      control_->SetActivity(absl::StrCat("step ", step, "/", config_.rl_steps, ": weight sync"));
      const Clock::time_point sync_start = Clock::now();
      absl::Status s = SyncWeights(version_);
      if (!s.ok()) return s;
      m.sync_seconds = SecondsSince(sync_start);
    }
  }

  absl::Status recorded = RecordSamples(step, rounds, trained, learner_version);
  if (!recorded.ok()) return recorded;
  m.verifier_retries = clients_->TakeVerifierRetries();

  // 5. Report.
  m.reward_mean = samples > 0 ? reward_sum / static_cast<double>(samples) : 0.0;
  m.accuracy = samples > 0 ? static_cast<double>(correct) / static_cast<double>(samples) : 0.0;
  m.response_len_mean = samples > 0 ? static_cast<double>(tokens) / static_cast<double>(samples) : 0.0;
  m.tokens_per_sec = m.generate_seconds > 0 ? static_cast<double>(tokens) / m.generate_seconds : 0.0;
  m.groups_kept = static_cast<int64_t>(kept.size());
  m.samples_trained = batch.samples_size();
  m.weight_version = version_;
  m.step_seconds += SecondsSince(start);
  steps_done_ = step;
  Print(FormatProgressLine(m));
  std::ofstream metrics(metrics_path_, std::ios::app);
  metrics << MetricsJsonLine(m) << "\n";
  control_->AppendMetricsLine(MetricsJsonLine(m));
  metrics.flush();
  if (!metrics) return absl::InternalError(absl::StrCat("cannot append to '", metrics_path_, "'"));
  control_->RecordStep(step, m.reward_mean, m.accuracy);
  ExportStepMetrics(m);
  return absl::OkStatus();
}

absl::Status TrainingRun::RunStepsSync(double before_accuracy) {
  for (int64_t step = steps_done_ + 1; step <= config_.rl_steps; ++step) {
    if (control_->WaitBetweenSteps(step - 1)) {
      if (canceller_.cancelled()) return absl::CancelledError("cancelled");
      Print(absl::StrCat("stop requested: ending the run after step ", step - 1, " of ",
                         config_.rl_steps));
      break;
    }
    AdmitJoiningWorkers();
    absl::StatusOr<StepRollouts> rollouts = GatherStep(step);
    if (!rollouts.ok()) return rollouts.status();
    const ProblemCursor::Position cursor = rollouts->cursor_after;
    const std::vector<CarriedGroup> carried = rollouts->carried_after;
    absl::Status s = TrainStep(*std::move(rollouts), /*sync_after=*/true);
    if (!s.ok()) return s;
    s = MaybeCheckpoint(step, before_accuracy, cursor, carried);
    if (!s.ok()) return s;
  }
  return DropCarried(steps_done_);
}

absl::Status TrainingRun::RecordSamples(int64_t step, const std::vector<ScoredGroups>& rounds,
                                        bool trained, int64_t learner_version) {
  for (const ScoredGroups& r : rounds) {
    for (size_t i = 0; i < r.groups.size(); ++i) {
      for (size_t j = 0; j < r.groups[i].size(); ++j) {
        const v1::Completion& c = r.groups[i][j];
        const v1::Verdict& v = r.verdicts[i][j];
        const SampleReward& reward = r.reward_detail[i][j];
        nlohmann::ordered_json parts;
        for (const RewardPart& p : reward.parts) parts[p.name] = p.weighted();
        parts["total"] = reward.total;
        const bool used = trained && r.used[i][j];
        std::vector<int64_t> versions(c.weight_versions().begin(), c.weight_versions().end());
        const ScoredGroups::Origin& o = r.origins[i];
        absl::Status s = lineage_->Append(nlohmann::ordered_json{
            {"type", "sample"},
            {"step", o.step},
            {"round", o.round},
            {"group", o.group},
            {"at_step", step},
            {"prompt_id", c.prompt_id()},
            {"sample_index", c.sample_index()},
            {"seed", c.seed()},
            {"segments", VersionSegments(versions)},
            {"response_tokens", c.token_ids_size()},
            {"finish_reason", v1::FinishReason_Name(c.finish_reason())},
            {"verifier_version", v.verifier_version()},
            {"verdict", v.verdict()},
            {"correct", v.correct()},
            {"reward", parts},
            {"reward_failure", reward.failed() ? nlohmann::ordered_json(reward.failure)
                                               : nlohmann::ordered_json(nullptr)},
            {"used", used},
            {"train_step", used ? nlohmann::ordered_json(step) : nlohmann::ordered_json(nullptr)},
            {"learner_version", used ? nlohmann::ordered_json(learner_version)
                                     : nlohmann::ordered_json(nullptr)},
            {"max_staleness", config_.rl_max_staleness + r.carries[i]},
            {"carries", r.carries[i]},
        });
        if (!s.ok()) return s;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace rlpost
