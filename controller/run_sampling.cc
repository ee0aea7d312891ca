// TrainingRun: one RL step's rollouts: generate (new groups and carried partial
// ones), check versions, verify and reward; dynamic-sampling refill rounds.
#include "controller/run.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "controller/run_internal.h"
#include "common/seed.h"
#include "controller/group_advantage.h"
#include "reward/reward.h"

namespace rlpost {

using run_internal::Clock;
using run_internal::SecondsSince;

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
  out.correct_flags.resize(out.groups.size());
  out.verdicts.resize(out.groups.size());
  out.used.resize(out.groups.size());
  size_t k = 0;
  for (size_t i = 0; i < out.groups.size(); ++i) {
    for (size_t j = 0; j < out.groups[i].size(); ++j) {
      const v1::Verdict& verdict = (*verdicts)[k++];
      out.correct += verdict.correct() ? 1 : 0;
      out.correct_flags[i].push_back(verdict.correct());
      out.verdicts[i].push_back(verdict);
      out.used[i].push_back(false);
    }
  }
  ComputeRewards(&out);
  out.rewards.resize(out.groups.size());
  for (size_t i = 0; i < out.groups.size(); ++i) {
    for (const SampleReward& r : out.reward_detail[i]) {
      out.rewards[i].push_back(r.total);
      out.reward_sum += r.total;
    }
    // A dropped group has no samples: no signal, never kept.
    out.uniform.push_back(ComputeGroupAdvantage(out.rewards[i]).uniform);
  }
  return out;
}

absl::Status TrainingRun::StartRewardPlugins() {
  reward_plugins_.clear();
  for (const RewardPluginConfig& p : config_.reward_plugins) {
    control_->SetActivity(absl::StrCat("starting reward plugin ", p.id));
    RewardPluginRunner::Options o;
    o.plugin = p;
    o.host_binary = config_.reward_host_binary;
    o.work_dir = (std::filesystem::path(run_dir()) / "reward").string();
    absl::StatusOr<std::unique_ptr<RewardPluginRunner>> runner = RewardPluginRunner::Start(o);
    if (!runner.ok()) return runner.status();
    const v1::RewardHostInfo& info = (*runner)->info();
    Print(absl::StrFormat("reward plugin %s: %s %s (ABI %d.%d), function %s, weight %g", p.id,
                          info.plugin_name(), info.plugin_version(), info.abi_major(),
                          info.abi_minor(), info.function(), p.weight));
    reward_plugins_.push_back(*std::move(runner));
  }
  return absl::OkStatus();
}

void TrainingRun::ComputeRewards(ScoredGroups* out) {
  RewardConfig rc;
  rc.correct = config_.reward_correct;
  rc.format = config_.reward_format;
  rc.format_think = config_.reward_format_think;
  rc.overlong = config_.reward_overlong;
  rc.overlong_max_tokens = config_.reward_overlong_max_tokens;
  rc.overlong_buffer_tokens = config_.reward_overlong_buffer_tokens;
  rc.length = config_.reward_length;
  rc.repetition = config_.reward_repetition;
  rc.repetition_ngram = static_cast<int>(config_.reward_repetition_ngram);
  out->reward_detail.assign(out->groups.size(), {});
  out->reward_failed.assign(out->groups.size(), false);
  std::vector<v1::RewardSample> wire;  // every sample of the round, for the plugins
  for (size_t i = 0; i < out->groups.size(); ++i) {
    std::vector<RewardSampleInput> inputs;
    for (size_t j = 0; j < out->groups[i].size(); ++j) {
      const v1::Completion& c = out->groups[i][j];
      const v1::Verdict& v = out->verdicts[i][j];
      inputs.push_back({v.score(), v.correct(), c.text(), c.token_ids().data(),
                        static_cast<size_t>(c.token_ids_size())});
      if (reward_plugins_.empty()) continue;
      v1::RewardSample& s = wire.emplace_back();
      s.set_prompt(out->problems[i]->prompt);
      s.set_response(c.text());
      s.set_reference(out->problems[i]->answer);
      s.set_prompt_id(c.prompt_id());
      *s.mutable_response_token_ids() = c.token_ids();
      s.set_max_response_tokens(static_cast<uint32_t>(config_.rl_max_new_tokens));
      s.set_group(static_cast<uint32_t>(i));
      s.set_index_in_group(static_cast<uint32_t>(j));
      s.set_correct(v.correct());
      s.set_verifier_score(v.score());
      s.set_verdict(v.verdict());
      s.set_finish_reason(c.finish_reason() == v1::FINISH_REASON_LENGTH ? "length" : "stop");
    }
    out->reward_detail[i] = ComputeGroupRewards(rc, inputs);
  }
  for (const std::unique_ptr<RewardPluginRunner>& plugin : reward_plugins_) {
    if (wire.empty()) break;
    const RewardPluginRunner::Result scored = plugin->Score(wire);
    size_t k = 0;
    for (size_t i = 0; i < out->groups.size(); ++i) {
      for (SampleReward& r : out->reward_detail[i]) {
        const std::string& failure = scored.failures[k];
        r.Add("plugin:" + plugin->plugin().id, plugin->plugin().weight, scored.scores[k]);
        if (!failure.empty() && r.failure.empty()) r.failure = failure;
        ++k;
      }
    }
  }
  for (size_t i = 0; i < out->groups.size(); ++i) {
    for (const SampleReward& r : out->reward_detail[i]) {
      if (!r.failed()) continue;
      out->samples_reward_failed += 1;
      out->reward_failed[i] = true;
    }
  }
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
      if (!scored->dropped[i] && !scored->reward_failed[i] &&
          (!scored->uniform[i] || !config_.rl_skip_uniform_groups)) {
        ++out.kept_count;
      }
    }
    m.groups_dropped += scored->groups_dropped;
    m.samples_reward_failed += scored->samples_reward_failed;
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
  // Reward parts: the mean weighted value of each over the step's samples.
  int64_t rewarded = 0;
  for (const ScoredGroups& r : out.rounds) {
    for (const std::vector<SampleReward>& group : r.reward_detail) {
      for (const SampleReward& s : group) {
        ++rewarded;
        for (const RewardPart& p : s.parts) m.reward_parts_mean[p.name] += p.weighted();
      }
    }
  }
  for (auto& [name, sum] : m.reward_parts_mean) sum /= static_cast<double>(rewarded);
  for (const std::unique_ptr<RewardPluginRunner>& p : reward_plugins_) {
    m.reward_plugin_restarts += p->restarts();
  }
  m.step_seconds = SecondsSince(start);  // the generation side; TrainStep adds its part
  out.cursor_after = rl_cursor_->position();
  out.carried_after = carried_;
  return out;
}

}  // namespace rlpost
