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
#include "controller/dataset.h"
#include "controller/group_advantage.h"
#include "controller/plots.h"
#include "learner/advantages.h"
#include "reward/reward.h"

namespace rlpost {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

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

absl::StatusOr<TrainingRun::ScoredGroups> TrainingRun::SampleAndScore(
    int64_t step, int64_t round, const std::vector<const Problem*>& problems) {
  ScoredGroups out;
  out.round = round;
  const bool partial = config_.rl_partial_rollout_tokens > 0;
  // The last step finishes everything: nothing is left partial at the end.
  const bool last_step = step >= config_.rl_steps;
  // Round 0 continues the groups carried from the previous step first.
  std::vector<CarriedGroup> resumed;
  if (round == 0) resumed = std::move(carried_), carried_.clear();
  const size_t n_resumed = resumed.size();
  std::vector<v1::GenerateRequest> requests(n_resumed + problems.size());
  // For a resumed group: the original sample_index of each member sent back
  // (they go renumbered 0..m-1, as the worker numbers a request's samples).
  std::vector<std::vector<int32_t>> resumed_index(n_resumed);
  for (size_t g = 0; g < n_resumed; ++g) {
    CarriedGroup& c = resumed[g];
    v1::GenerateRequest& r = requests[g];
    r = c.request;
    r.clear_resume();
    for (const v1::Completion& m : c.members) {
      if (m.finish_reason() != v1::FINISH_REASON_PARTIAL) continue;
      resumed_index[g].push_back(m.sample_index());
      v1::Completion* sent = r.add_resume();
      *sent = m;
      sent->set_sample_index(static_cast<int32_t>(resumed_index[g].size()) - 1);
    }
    r.set_n(r.resume_size());
    r.set_token_budget(last_step || c.carries + 1 >= config_.rl_partial_rollout_max_carries
                           ? 0
                           : config_.rl_partial_rollout_tokens);
  }
  for (size_t i = 0; i < problems.size(); ++i) {
    v1::GenerateRequest& r = requests[n_resumed + i];
    r.set_prompt_id(problems[i]->id);
    r.set_prompt(problems[i]->prompt);
    r.set_n(static_cast<int32_t>(config_.rl_group_size));
    r.set_return_routed_experts(config_.rl_router_replay);
    if (partial && !last_step) r.set_token_budget(config_.rl_partial_rollout_tokens);
    v1::SamplingParams* p = r.mutable_params();
    p->set_temperature(static_cast<float>(config_.rl_temperature));
    p->set_top_p(static_cast<float>(config_.rl_top_p));
    p->set_max_new_tokens(static_cast<int32_t>(config_.rl_max_new_tokens));
    // Round 0 keeps the seeds runs had before refill rounds existed.
    p->set_seed(round == 0 ? DeriveSeed(config_.seed, SeedTag::kRlSampling,
                                        {static_cast<uint64_t>(step), static_cast<uint64_t>(i)})
                           : DeriveSeed(config_.seed, SeedTag::kRlSampling,
                                        {static_cast<uint64_t>(step), static_cast<uint64_t>(i),
                                         static_cast<uint64_t>(round)}));
  }
  for (size_t i = 0; i < problems.size(); ++i) {
    const v1::GenerateRequest& r = requests[n_resumed + i];
    absl::Status s = lineage_->Append(nlohmann::ordered_json{{"type", "issued"},
                                       {"step", step},
                                       {"round", round},
                                       {"group", i},
                                       {"prompt_id", r.prompt_id()},
                                       {"n", r.n()},
                                       {"seed", r.params().seed()}});
    if (!s.ok()) return s;
  }
  const Clock::time_point generate_start = Clock::now();
  PeerClients::StragglerPolicy stragglers;
  stragglers.group_deadline = std::chrono::milliseconds(config_.rl_group_deadline_ms);
  stragglers.resample = config_.rl_straggler_policy == "resample";
  if (round == 0 && config_.rl_oversample_groups > 0) {
    // Oversampling: the step needs its rl.prompts_per_step groups; the
    // slowest extra ones are cut.
    stragglers.finish_after = static_cast<int>(
        std::max<int64_t>(1, static_cast<int64_t>(requests.size()) - config_.rl_oversample_groups));
  }
  absl::StatusOr<std::vector<PeerClients::GroupResult>> groups =
      clients_->GenerateGroups(requests, options_.requests_per_worker, stragglers);
  out.workers_lost = ReportLostWorkers();
  if (!groups.ok()) return groups.status();
  out.generate_seconds = SecondsSince(generate_start);
  for (size_t i = 0; i < groups->size(); ++i) {
    PeerClients::GroupResult& g = (*groups)[i];
    const bool is_resumed = i < n_resumed;
    ScoredGroups::Origin origin =
        is_resumed ? resumed[i].origin
                   : ScoredGroups::Origin{step, round, static_cast<int64_t>(i - n_resumed)};
    const Problem* problem = is_resumed ? resumed[i].problem : problems[i - n_resumed];
    const int64_t carries = is_resumed ? resumed[i].carries + 1 : 0;
    std::vector<v1::Completion> members;
    if (is_resumed && !g.dropped) {
      // The members that had finished, plus the continued ones back under
      // their own sample_index.
      members = resumed[i].members;
      for (v1::Completion& c : g.completions) {
        const int32_t k = c.sample_index();
        if (k < 0 || k >= static_cast<int32_t>(resumed_index[i].size())) {
          return absl::DataLossError(absl::StrCat("a continued sample of prompt '",
                                                  c.prompt_id(), "' came back as sample ", k));
        }
        c.set_sample_index(resumed_index[i][static_cast<size_t>(k)]);
        members[static_cast<size_t>(c.sample_index())] = std::move(c);
      }
    } else {
      members = std::move(g.completions);
    }
    out.samples_resampled += g.resampled;
    if (g.dropped) {
      (g.cut ? out.groups_cut : out.groups_dropped) += 1;
      // Accounted for in the lineage, so the audit does not call its
      // samples lost.
      absl::Status s = lineage_->Append(nlohmann::ordered_json{{"type", "dropped"},
                                                               {"step", origin.step},
                                                               {"round", origin.round},
                                                               {"group", origin.group},
                                                               {"at_step", step},
                                                               {"reason", g.cut ? "long-tail cut"
                                                                                : "deadline"}});
      if (!s.ok()) return s;
    } else {
      bool unfinished = false;
      for (const v1::Completion& c : members) {
        unfinished = unfinished || c.finish_reason() == v1::FINISH_REASON_PARTIAL;
      }
      if (unfinished) {
        // Cut at the token budget: continued at the start of the next step.
        CarriedGroup carry;
        carry.origin = origin;
        carry.problem = problem;
        carry.request = requests[i];
        carry.request.clear_resume();
        carry.request.set_n(static_cast<int32_t>(members.size()));
        carry.members = std::move(members);
        carry.carries = carries;
        carried_.push_back(std::move(carry));
        ++out.groups_carried;
        continue;
      }
    }
    out.problems.push_back(problem);
    out.origins.push_back(origin);
    out.carries.push_back(is_resumed ? carries : 0);
    out.dropped.push_back(g.dropped);
    out.groups.push_back(g.dropped ? std::vector<v1::Completion>{} : std::move(members));
  }

  // Every token generated now must come from the version the workers were
  // synced to (the learner's latest in sync mode; in async mode a
  // bounded-stale one); tokens of a continued sample generated in earlier
  // steps come from older versions.
  for (size_t i = 0; i < out.groups.size(); ++i) {
    for (const v1::Completion& c : out.groups[i]) {
      ++out.samples;
      out.tokens += c.token_ids_size();
      bool current_seen = false;
      for (int64_t v : c.weight_versions()) {
        const bool older_ok = out.carries[i] > 0 && !current_seen && v < worker_version_;
        current_seen = current_seen || v == worker_version_;
        if (v != worker_version_ && !older_ok) {
          return absl::FailedPreconditionError(absl::StrCat(
              "rollout ", clients_->rollout_address(static_cast<int>(i) % clients_->rollout_count()),
              " sampled prompt '", c.prompt_id(), "' with weight version ", v,
              ", expected version ", worker_version_));
        }
      }
    }
  }

  // Verify and reward every completion.
  std::vector<v1::VerifyItem> items;
  items.reserve(static_cast<size_t>(out.samples));
  for (size_t i = 0; i < out.groups.size(); ++i) {
    for (const v1::Completion& c : out.groups[i]) {
      v1::VerifyItem item;
      item.set_id(absl::StrCat(step, "/", round, "/", i, "/", c.sample_index()));
      item.set_kind("math");
      item.set_response(c.text());
      item.set_reference(out.problems[i]->answer);
      items.push_back(std::move(item));
    }
  }
  absl::StatusOr<std::vector<v1::Verdict>> verdicts = clients_->VerifyAll(items);
  if (!verdicts.ok()) return verdicts.status();
  const RewardWeights weights{config_.reward_correct, config_.reward_format};
  out.rewards.resize(out.groups.size());
  out.correct_flags.resize(out.groups.size());
  out.verdicts.resize(out.groups.size());
  out.reward_parts.resize(out.groups.size());
  out.used.resize(out.groups.size());
  size_t k = 0;
  for (size_t i = 0; i < out.groups.size(); ++i) {
    for (const v1::Completion& c : out.groups[i]) {
      const v1::Verdict& verdict = (*verdicts)[k++];
      out.correct += verdict.correct() ? 1 : 0;
      out.correct_flags[i].push_back(verdict.correct());
      const RewardParts parts = ComputeReward(weights, {verdict.score(), c.text()});
      out.rewards[i].push_back(parts.total);
      out.reward_sum += parts.total;
      out.verdicts[i].push_back(verdict);
      out.reward_parts[i].push_back(parts);
      out.used[i].push_back(false);
    }
    // A dropped group has no samples: no signal, never kept.
    out.uniform.push_back(ComputeGroupAdvantage(out.rewards[i]).uniform);
  }
  return out;
}

absl::StatusOr<TrainingRun::StepRollouts> TrainingRun::GatherStep(int64_t step) {
  const Clock::time_point start = Clock::now();
  StepRollouts out;
  out.step = step;
  out.worker_version = worker_version_;
  StepMetrics& m = out.metrics;

  // Sample a group per prompt, verify and reward. Rejection sampling drops
  // uniform groups (no signal); dynamic sampling refills the batch from
  // further prompts, at most rl.dynamic_sampling_rounds extra rounds.
  const int64_t wanted = config_.rl_prompts_per_step;
  for (int64_t round = 0;; ++round) {
    // Groups carried from the previous step count toward round 0's prompts.
    // Oversampling adds rl.oversample_groups to round 0 (the slowest are cut).
    const int64_t take =
        round == 0 ? std::max<int64_t>(0, wanted - static_cast<int64_t>(carried_.size())) +
                         config_.rl_oversample_groups
                   : wanted - out.kept_count;
    control_->SetActivity(absl::StrCat("step ", step, "/", config_.rl_steps, ": generating",
                                       round > 0 ? absl::StrCat(" (refill ", round, ")") : ""));
    absl::StatusOr<ScoredGroups> scored = SampleAndScore(step, round, rl_cursor_->Take(take));
    if (!scored.ok()) return scored.status();
    m.generate_seconds += scored->generate_seconds;
    m.workers_lost += scored->workers_lost;
    out.samples += scored->samples;
    out.tokens += scored->tokens;
    out.correct += scored->correct;
    out.reward_sum += scored->reward_sum;
    for (size_t i = 0; i < scored->uniform.size(); ++i) {
      if (!scored->dropped[i] && (!scored->uniform[i] || !config_.rl_skip_uniform_groups)) {
        ++out.kept_count;
      }
    }
    m.groups_dropped += scored->groups_dropped;
    m.samples_resampled += scored->samples_resampled;
    m.groups_carried += scored->groups_carried;
    m.groups_cut += scored->groups_cut;
    out.rounds.push_back(*std::move(scored));
    if (!config_.rl_skip_uniform_groups || out.kept_count >= wanted ||
        round >= config_.rl_dynamic_sampling_rounds) {
      break;
    }
  }
  m.refill_rounds = static_cast<int64_t>(out.rounds.size()) - 1;
  m.step_seconds = SecondsSince(start);  // the generation side; TrainStep adds its part
  out.cursor_after = rl_cursor_->position();
  out.carried_after = carried_;
  return out;
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

absl::Status TrainingRun::MaybeCheckpoint(int64_t step, double before_accuracy,
                                          const ProblemCursor::Position& cursor,
                                          const std::vector<CarriedGroup>& carried) {
  const bool asked = control_->TakeCheckpointRequest();  // rlctl checkpoint
  if (asked || (config_.run_checkpoint_every > 0 && step % config_.run_checkpoint_every == 0 &&
                step < config_.rl_steps)) {
    return SaveRunCheckpoint(step, before_accuracy, cursor, carried);
  }
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

void TrainingRun::Produce(int64_t first, int64_t last) {
  const int64_t ahead = config_.rl_max_staleness;
  for (int64_t step = first; step <= last; ++step) {
    int64_t behavior_version = 0;
    {
      // Step s starts once step s - ahead - 1 has trained, and samples with
      // the version that step published: at most `ahead` versions behind the
      // one that trains on them (the learner publishes at most one version
      // per step). Fixed by the step numbers, not by timing, so an async run
      // is as reproducible as a sync one.
      std::unique_lock<std::mutex> lock(pipeline_.mu);
      const int64_t basis = std::max(first - 1, step - ahead - 1);
      pipeline_.cv.wait(lock, [&] {
        return pipeline_.stop || pipeline_.version_after.count(basis) > 0;
      });
      if (pipeline_.stop) return;
      behavior_version = pipeline_.version_after.at(basis);
    }
    absl::Status s;
    if (behavior_version != worker_version_) s = SyncWeights(behavior_version);
    if (s.ok()) AdmitJoiningWorkers();
    absl::StatusOr<StepRollouts> rollouts =
        s.ok() ? GatherStep(step) : absl::StatusOr<StepRollouts>(s);
    std::lock_guard<std::mutex> lock(pipeline_.mu);
    if (!rollouts.ok()) {
      pipeline_.error = rollouts.status();
      pipeline_.cv.notify_all();
      return;
    }
    pipeline_.ready.emplace(step, *std::move(rollouts));
    pipeline_.cv.notify_all();
  }
}

absl::Status TrainingRun::RunStepsAsync(double before_accuracy) {
  const int64_t first = steps_done_ + 1;
  {
    std::lock_guard<std::mutex> lock(pipeline_.mu);
    pipeline_.version_after.clear();
    pipeline_.version_after[steps_done_] = version_;
    pipeline_.ready.clear();
    pipeline_.error = absl::OkStatus();
    pipeline_.stop = false;
  }
  Print(absl::StrCat("async mode: rollouts run up to ", config_.rl_max_staleness,
                     " step(s) ahead of training (rl.max_staleness)"));
  std::thread producer([this, first] { Produce(first, config_.rl_steps); });
  auto stop_producer = [&] {
    {
      std::lock_guard<std::mutex> lock(pipeline_.mu);
      pipeline_.stop = true;
      pipeline_.cv.notify_all();
    }
    if (producer.joinable()) producer.join();
  };

  absl::Status status;
  for (int64_t step = first; step <= config_.rl_steps; ++step) {
    if (control_->WaitBetweenSteps(step - 1)) {
      if (canceller_.cancelled()) {
        status = absl::CancelledError("cancelled");
        break;
      }
      Print(absl::StrCat("stop requested: ending the run after step ", step - 1, " of ",
                         config_.rl_steps));
      break;
    }
    const Clock::time_point wait_start = Clock::now();
    StepRollouts rollouts;
    int64_t buffered = 0;
    {
      std::unique_lock<std::mutex> lock(pipeline_.mu);
      pipeline_.cv.wait(lock,
                        [&] { return pipeline_.ready.count(step) > 0 || !pipeline_.error.ok(); });
      if (pipeline_.ready.count(step) == 0) {
        status = pipeline_.error;
        break;
      }
      rollouts = std::move(pipeline_.ready.at(step));
      pipeline_.ready.erase(step);
      buffered = static_cast<int64_t>(pipeline_.ready.size());
    }
    rollouts.metrics.wait_seconds = SecondsSince(wait_start);
    rollouts.metrics.buffered_steps = buffered;
    // A step's wall time in async mode: waiting for its rollouts plus training.
    rollouts.metrics.step_seconds = rollouts.metrics.wait_seconds;
    const ProblemCursor::Position cursor = rollouts.cursor_after;
    const std::vector<CarriedGroup> carried = rollouts.carried_after;
    status = TrainStep(std::move(rollouts), /*sync_after=*/false);
    if (!status.ok()) break;
    {
      std::lock_guard<std::mutex> lock(pipeline_.mu);
      pipeline_.version_after[step] = version_;
      pipeline_.cv.notify_all();
    }
    // The checkpoint's data cursor is the one after the trained step's
    // prompts: steps gathered ahead are issued again after a resume.
    status = MaybeCheckpoint(step, before_accuracy, cursor, carried);
    if (!status.ok()) break;
  }
  stop_producer();
  if (!status.ok()) return status;

  // Rollouts gathered ahead of a stop are recorded, unused, so the lineage
  // accounts for every sample issued.
  for (auto& [step, rollouts] : pipeline_.ready) {
    absl::Status s = RecordSamples(step, rollouts.rounds, /*trained=*/false, -1);
    if (!s.ok()) return s;
  }
  pipeline_.ready.clear();
  if (!pipeline_.error.ok()) return pipeline_.error;
  absl::Status dropped = DropCarried(steps_done_);
  if (!dropped.ok()) return dropped;
  // The held-out eval after RL uses the final weights.
  if (worker_version_ != version_) return SyncWeights(version_);
  return absl::OkStatus();
}

nlohmann::json TrainingRun::CarriedToJson(const std::vector<CarriedGroup>& carried) const {
  nlohmann::json out = nlohmann::json::array();
  for (const CarriedGroup& c : carried) {
    nlohmann::json members = nlohmann::json::array();
    for (const v1::Completion& m : c.members) members.push_back(absl::Base64Escape(m.SerializeAsString()));
    out.push_back({{"step", c.origin.step},
                   {"round", c.origin.round},
                   {"group", c.origin.group},
                   {"problem", c.problem - train_.data()},
                   {"carries", c.carries},
                   {"request", absl::Base64Escape(c.request.SerializeAsString())},
                   {"members", members}});
  }
  return out;
}

absl::Status TrainingRun::CarriedFromJson(const nlohmann::json& j) {
  carried_.clear();
  if (!j.is_array()) return absl::DataLossError("'carried' is not a list");
  for (const nlohmann::json& c : j) {
    CarriedGroup g;
    std::string bytes;
    const int64_t problem = c.value("problem", int64_t{-1});
    if (!c.is_object() || problem < 0 || problem >= static_cast<int64_t>(train_.size()) ||
        !absl::Base64Unescape(c.value("request", std::string()), &bytes) ||
        !g.request.ParseFromString(bytes) || !c.contains("members") || !c["members"].is_array()) {
      return absl::DataLossError("a carried partial rollout is unreadable");
    }
    g.origin = {c.value("step", int64_t{0}), c.value("round", int64_t{0}),
                c.value("group", int64_t{0})};
    g.problem = &train_[static_cast<size_t>(problem)];
    g.carries = c.value("carries", int64_t{0});
    for (const nlohmann::json& m : c["members"]) {
      v1::Completion completion;
      if (!m.is_string() || !absl::Base64Unescape(m.get<std::string>(), &bytes) ||
          !completion.ParseFromString(bytes)) {
        return absl::DataLossError("a carried partial rollout's sample is unreadable");
      }
      g.members.push_back(std::move(completion));
    }
    carried_.push_back(std::move(g));
  }
  return absl::OkStatus();
}

absl::Status TrainingRun::DropCarried(int64_t step) {
  for (const CarriedGroup& c : carried_) {
    absl::Status s = lineage_->Append(nlohmann::ordered_json{{"type", "dropped"},
                                                             {"step", c.origin.step},
                                                             {"round", c.origin.round},
                                                             {"group", c.origin.group},
                                                             {"at_step", step},
                                                             {"reason", "partial at run end"}});
    if (!s.ok()) return s;
  }
  carried_.clear();
  return absl::OkStatus();
}

absl::Status TrainingRun::RecordSamples(int64_t step, const std::vector<ScoredGroups>& rounds,
                                        bool trained, int64_t learner_version) {
  for (const ScoredGroups& r : rounds) {
    for (size_t i = 0; i < r.groups.size(); ++i) {
      for (size_t j = 0; j < r.groups[i].size(); ++j) {
        const v1::Completion& c = r.groups[i][j];
        const v1::Verdict& v = r.verdicts[i][j];
        const RewardParts& parts = r.reward_parts[i][j];
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
            {"reward", nlohmann::ordered_json{{"correctness", parts.correctness},
                        {"format", parts.format},
                        {"total", parts.total}}},
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

namespace {

v1::WorkerStatus RolloutStatus(const std::string& address, int64_t version, bool healthy) {
  v1::WorkerStatus w;
  w.set_address(address);
  w.set_role("rollout");
  w.set_weight_version(version);
  w.set_healthy(healthy);
  return w;
}

}  // namespace

void TrainingRun::AdmitJoiningWorkers() {
  // Registered workers that stopped sending heartbeats leave before they
  // are handed requests; they rejoin by registering again.
  for (const std::string& address :
       control_->SilentRollouts(absl::Milliseconds(config_.heartbeat_timeout_ms))) {
    absl::Status s = clients_->DrainRollout(address);
    if (!s.ok()) {
      Print(absl::StrCat("rollout worker ", address, " sends no heartbeats but stays: ",
                         s.message()));
      continue;
    }
    control_->AddWorker(RolloutStatus(address, worker_version_, /*healthy=*/false));
    Print(absl::StrCat("rollout worker ", address, ": no heartbeat for over ",
                       config_.heartbeat_timeout_ms, " ms; out of service until it registers "
                       "again; ", clients_->live_rollout_count(), " serving"));
  }
  for (const std::string& address : control_->TakeDrainingRollouts()) {
    absl::Status s = clients_->DrainRollout(address);
    if (!s.ok()) {
      Print(absl::StrCat("rollout worker ", address, " not drained: ", s.message()));
      continue;
    }
    control_->AddWorker(RolloutStatus(address, worker_version_, /*healthy=*/false));
    Print(absl::StrCat("rollout worker drained: ", address, "; ",
                       clients_->live_rollout_count(), " serving"));
  }
  // Verifiers: registered ones join the pool; silent ones leave it.
  for (const std::string& address : control_->TakeJoiningVerifiers()) {
    absl::StatusOr<int> index = clients_->AddVerifier(address);
    if (!index.ok()) continue;
    v1::WorkerStatus w = RolloutStatus(address, 0, /*healthy=*/true);
    w.set_role("verifier");
    control_->AddWorker(w);
    Print(absl::StrCat("verifier joined: ", address, "; ", clients_->live_verifier_count(),
                       " serving"));
  }
  for (const std::string& address :
       control_->SilentWorkers("verifier", absl::Milliseconds(config_.heartbeat_timeout_ms))) {
    absl::Status s = clients_->DrainVerifier(address);
    if (!s.ok()) continue;  // the last one stays; its calls are retried
    v1::WorkerStatus w = RolloutStatus(address, 0, /*healthy=*/false);
    w.set_role("verifier");
    control_->AddWorker(w);
    Print(absl::StrCat("verifier ", address, ": no heartbeat for over ",
                       config_.heartbeat_timeout_ms, " ms; out of service until it registers "
                       "again"));
  }
  const std::vector<std::string> joining = control_->TakeJoiningRollouts();
  if (joining.empty()) return;
  // The version the other workers hold (in async mode the learner may have
  // published a newer one meanwhile; it reaches everyone at the next sync).
  absl::StatusOr<WeightSet> weights =
      clients_->FetchWeights(config_.learner_publish_dtype == "bfloat16", worker_version_);
  for (const std::string& address : joining) {
    absl::StatusOr<int> index = clients_->AddRollout(address);
    absl::Status s = index.ok() ? (weights.ok() ? clients_->PushWeightsToWorker(*index, *weights)
                                                : weights.status())
                                : index.status();
    if (!s.ok()) {
      clients_->TakeNewlyLost();  // reported here, with the reason
      Print(absl::StrCat("rollout worker ", address, " could not join: ", s.message()));
      continue;
    }
    control_->AddWorker(RolloutStatus(address, worker_version_, /*healthy=*/true));
    Print(absl::StrCat("rollout worker joined: ", address, " (weight version ", worker_version_,
                       "); ", clients_->live_rollout_count(), " serving"));
  }
}

int64_t TrainingRun::ReportLostWorkers() {
  const std::vector<std::string> lost = clients_->TakeNewlyLost();
  for (const std::string& worker : lost) {
    RLPOST_LOG(WARNING) << "rollout worker lost: " << worker;
    control_->AddWorker(
        RolloutStatus(worker.substr(0, worker.find(": ")), worker_version_, /*healthy=*/false));
    Print(absl::StrCat("rollout worker lost: ", worker, "; its requests went to the other ",
                       clients_->live_rollout_count(), " worker(s)"));
  }
  return static_cast<int64_t>(lost.size());
}

absl::Status TrainingRun::SaveRunCheckpoint(int64_t step, double before_accuracy,
                                            const ProblemCursor::Position& cursor,
                                            const std::vector<CarriedGroup>& carried) {
  control_->SetActivity(absl::StrCat("step ", step, ": saving checkpoint"));
  const nlohmann::json state = {
      {"format", 1},
      {"run", config_.name},
      {"step", step},
      {"sft_steps", sft_steps_done_},
      {"cursor", {{"epoch", cursor.epoch}, {"next", cursor.next}}},
      {"heldout_accuracy_before", before_accuracy},
      {"carried", CarriedToJson(carried)},
  };
  std::error_code ec;
  const std::string root = std::filesystem::absolute(config_.CheckpointRoot(), ec).string();
  absl::StatusOr<v1::SaveCheckpointResponse> saved = clients_->SaveCheckpoint(
      root, static_cast<int>(config_.run_keep_checkpoints), state.dump());
  if (!saved.ok()) return saved.status();
  Print(absl::StrCat("checkpoint after step ", step, " (version ", saved->weight_version(),
                     ") written to ", saved->directory()));
  return absl::OkStatus();
}

absl::StatusOr<double> TrainingRun::ResumeFromLearner() {
  control_->SetActivity("restoring the last checkpoint");
  std::error_code ec;
  const std::string root = std::filesystem::absolute(config_.CheckpointRoot(), ec).string();
  absl::StatusOr<v1::LearnerInfo> restored = clients_->Restore(root);
  if (!restored.ok()) {
    return absl::Status(restored.status().code(),
                        absl::StrCat("run.resume: ", restored.status().message(),
                                     " (a run saves checkpoints with run.checkpoint_every > 0)"));
  }
  learner_info_ = *restored;
  version_ = restored->weight_version();
  rollback_next_sync_ = true;
  const std::string& dir = learner_info_.resumed_from();
  if (learner_info_.client_state().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "run.resume: checkpoint ", dir, " holds no controller state (it was not written by a run)"));
  }
  const nlohmann::json state =
      nlohmann::json::parse(learner_info_.client_state(), nullptr, /*allow_exceptions=*/false);
  if (!state.is_object() || state.value("format", 0) != 1 || !state.contains("step") ||
      !state["step"].is_number_integer() || !state.contains("cursor") ||
      !state["cursor"].is_object()) {
    return absl::DataLossError(absl::StrCat("checkpoint ", dir,
                                            " holds no controller state this build reads"));
  }
  if (state.value("run", std::string()) != config_.name) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint ", dir, " belongs to run '", state.value("run", std::string()),
        "', not '", config_.name, "'"));
  }
  steps_done_ = state["step"].get<int64_t>();
  sft_steps_done_ = state.value("sft_steps", int64_t{0});
  ProblemCursor::Position cursor;
  cursor.epoch = state["cursor"].value("epoch", uint64_t{0});
  cursor.next = state["cursor"].value("next", uint64_t{0});
  rl_cursor_->Restore(cursor);
  if (state.contains("carried")) {
    absl::Status carried = CarriedFromJson(state["carried"]);
    if (!carried.ok()) {
      return absl::DataLossError(absl::StrCat("checkpoint ", dir, ": ", carried.message()));
    }
  }
  // Records of later steps from the interrupted attempt are superseded, and
  // metrics.jsonl keeps only the steps the checkpoint covers.
  absl::Status s =
      lineage_->Append(nlohmann::ordered_json{{"type", "resume"}, {"after_step", steps_done_}});
  if (!s.ok()) return s;
  {
    std::ifstream in(metrics_path_);
    std::string line, kept;
    while (std::getline(in, line)) {
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.value("step", int64_t{0}) <= steps_done_) {
        kept += line + "\n";
        control_->AppendMetricsLine(line);  // rlctl metrics shows them too
      }
    }
    in.close();
    std::ofstream out(metrics_path_, std::ios::trunc);
    out << kept;
    if (!out) return absl::InternalError(absl::StrCat("cannot rewrite '", metrics_path_, "'"));
  }
  control_->RecordStep(steps_done_, 0.0, 0.0);
  Print(absl::StrCat("resumed from ", dir, " after step ", steps_done_, " (weight version ",
                     version_, ")"));
  return state.value("heldout_accuracy_before", 0.0);
}

}  // namespace rlpost
