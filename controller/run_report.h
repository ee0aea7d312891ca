#pragma once
// What a run reports: the per-step metrics (one progress line on stdout, one
// JSON line in metrics.jsonl), the held-out evaluations, the end-of-run
// summary.json and the before/after table. Pure formatting and file writing;
// thread-compatible.

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"

namespace rlpost {

struct StepMetrics {
  int64_t step = 0;
  int64_t total_steps = 0;
  double reward_mean = 0.0;
  double accuracy = 0.0;           // fraction of samples verified correct
  double response_len_mean = 0.0;  // generated tokens per sample
  double tokens_per_sec = 0.0;     // generated tokens / generation seconds
  double step_seconds = 0.0;
  double generate_seconds = 0.0;
  double train_seconds = 0.0;
  double sync_seconds = 0.0;
  int64_t groups_kept = 0;
  int64_t groups_total = 0;
  int64_t groups_uniform = 0;
  int64_t samples_trained = 0;
  bool trained = false;  // false when rejection sampling left nothing to train on
  int64_t weight_version = 0;
  // From the learner's TrainResult (zero when !trained).
  double loss = 0.0;
  double grad_norm = 0.0;
  double clip_fraction = 0.0;
  double approx_kl = 0.0;
  double ref_kl = 0.0;   // KL to the reference policy (when rl.kl_coef > 0)
  double entropy = 0.0;  // mean policy entropy over the trained tokens
  // Weight versions between the learner (before this step's update) and the
  // oldest token of a trained sample: the largest and the mean over trained
  // samples. Always 0 in sync mode; at most rl.max_staleness in async mode.
  int64_t staleness_max = 0;
  double staleness_mean = 0.0;
  // Async mode: steps already generated and waiting to be trained when this
  // one started training, and seconds the learner waited for this step's
  // rollouts.
  int64_t buffered_steps = 0;
  double wait_seconds = 0.0;
  // The learner skipped the update (NaN/Inf guard); nothing was published.
  bool skipped = false;
  // PPO with a critic: the step trained only the critic (value pre-training);
  // the policy and its version did not change.
  bool critic_only = false;
  double value_loss = 0.0;
  double value_mean = 0.0;
  // Dynamic sampling: extra generate rounds that refilled the batch.
  int64_t refill_rounds = 0;
  // Samples of kept groups left out by rl.drop_truncated / rl.require_format.
  int64_t samples_filtered = 0;
  // Rollout workers lost during the step (their requests were re-queued).
  int64_t workers_lost = 0;
  // Stragglers (rl.group_deadline_ms): groups dropped at the deadline, and
  // late members asked for again under a new seed (rl.straggler_policy).
  int64_t groups_dropped = 0;
  int64_t samples_resampled = 0;
  // Partial rollouts: groups cut at rl.partial_rollout_tokens and carried to
  // the next step.
  int64_t groups_carried = 0;
  // Oversampling: the slowest extra groups, cancelled once the step had
  // enough (rl.oversample_groups).
  int64_t groups_cut = 0;
  // Verify batches retried after UNAVAILABLE / DEADLINE_EXCEEDED.
  int64_t verifier_retries = 0;
  // Reward plugins: samples whose plugin part failed (crash, deadline, NaN,
  // wrong count, plugin error) and the groups left out for them; plugin
  // hosts restarted so far in the run.
  int64_t samples_reward_failed = 0;
  int64_t groups_reward_failed = 0;
  int64_t reward_plugin_restarts = 0;
  // Mean weighted value of each reward part over the step's samples.
  std::map<std::string, double> reward_parts_mean;
};

// "step 3/40  reward 0.412  acc 0.398  len 38.2  tok/s 5321  kept 12/16  step_s 2.31  v 63"
std::string FormatProgressLine(const StepMetrics& m);
// One line of metrics.jsonl (no trailing newline).
std::string MetricsJsonLine(const StepMetrics& m);
// The step into DefaultMetrics() (the controller's /metrics): gauges of the
// latest step, counters summed over steps, a histogram of step seconds.
void ExportStepMetrics(const StepMetrics& m);

struct RunSummary {
  std::string run_name;
  double heldout_accuracy_before = 0.0;
  double heldout_accuracy_after = 0.0;
  int64_t heldout_problems = 0;  // problems per evaluation
  int64_t steps = 0;             // RL steps completed
  int64_t steps_planned = 0;
  int64_t sft_steps = 0;
  int64_t final_weight_version = 0;
  double wall_seconds = 0.0;
  // Wall time of the RL steps alone (no warm start, evals or final
  // checkpoint), and RL steps per hour over it.
  double rl_seconds = 0.0;
  double steps_per_hour = 0.0;
  bool stopped_early = false;  // the operator stopped the run
  std::string checkpoint_dir;
};

std::string SummaryJson(const RunSummary& s);
// Writes SummaryJson to `path` (replacing it).
absl::Status WriteSummary(const RunSummary& s, const std::string& path);

// held-out accuracy   before RL   after RL   gain
//                     31.5%       52.0%      +20.5 pts
std::string FormatHeldoutTable(double before, double after);

}  // namespace rlpost
