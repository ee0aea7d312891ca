#include "controller/run_report.h"

#include <cmath>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/metrics_registry.h"
#include "nlohmann/json.hpp"

namespace rlpost {
namespace {

// Keeps metrics readable and JSON valid (no NaN/Inf in JSON).
double Finite(double x) { return std::isfinite(x) ? x : 0.0; }

}  // namespace

std::string FormatProgressLine(const StepMetrics& m) {
  return absl::StrFormat(
      "step %d/%d  reward %.3f  acc %.3f  len %.1f  tok/s %.0f  kept %d/%d  step_s %.2f  v %d%s",
      m.step, m.total_steps, m.reward_mean, m.accuracy, m.response_len_mean, m.tokens_per_sec,
      m.groups_kept, m.groups_total, m.step_seconds, m.weight_version,
      m.skipped       ? "  SKIPPED (non-finite loss or gradient)"
      : m.critic_only ? "  CRITIC ONLY (value pre-training)"
                      : "");
}

std::string MetricsJsonLine(const StepMetrics& m) {
  nlohmann::ordered_json j;
  j["step"] = m.step;
  j["reward_mean"] = Finite(m.reward_mean);
  j["accuracy"] = Finite(m.accuracy);
  j["response_len_mean"] = Finite(m.response_len_mean);
  j["tokens_per_sec"] = Finite(m.tokens_per_sec);
  j["step_seconds"] = Finite(m.step_seconds);
  j["generate_seconds"] = Finite(m.generate_seconds);
  j["train_seconds"] = Finite(m.train_seconds);
  j["sync_seconds"] = Finite(m.sync_seconds);
  j["groups_kept"] = m.groups_kept;
  j["groups_total"] = m.groups_total;
  j["groups_uniform"] = m.groups_uniform;
  j["samples_trained"] = m.samples_trained;
  j["trained"] = m.trained;
  j["weight_version"] = m.weight_version;
  j["loss"] = Finite(m.loss);
  j["grad_norm"] = Finite(m.grad_norm);
  j["clip_fraction"] = Finite(m.clip_fraction);
  j["approx_kl"] = Finite(m.approx_kl);
  j["ref_kl"] = Finite(m.ref_kl);
  j["entropy"] = Finite(m.entropy);
  j["staleness_max"] = m.staleness_max;
  j["staleness_mean"] = Finite(m.staleness_mean);
  j["buffered_steps"] = m.buffered_steps;
  j["wait_seconds"] = Finite(m.wait_seconds);
  j["skipped"] = m.skipped;
  j["critic_only"] = m.critic_only;
  j["value_loss"] = Finite(m.value_loss);
  j["value_mean"] = Finite(m.value_mean);
  j["refill_rounds"] = m.refill_rounds;
  j["samples_filtered"] = m.samples_filtered;
  j["workers_lost"] = m.workers_lost;
  j["verifier_retries"] = m.verifier_retries;
  j["groups_dropped"] = m.groups_dropped;
  j["samples_resampled"] = m.samples_resampled;
  j["groups_carried"] = m.groups_carried;
  j["groups_cut"] = m.groups_cut;
  j["samples_reward_failed"] = m.samples_reward_failed;
  j["groups_reward_failed"] = m.groups_reward_failed;
  j["reward_plugin_restarts"] = m.reward_plugin_restarts;
  nlohmann::ordered_json parts = nlohmann::ordered_json::object();
  for (const auto& [name, mean] : m.reward_parts_mean) parts[name] = Finite(mean);
  j["reward_parts"] = parts;
  return j.dump();
}

void ExportStepMetrics(const StepMetrics& m) {
  MetricsRegistry& r = DefaultMetrics();
  r.Declare("rlpost_controller_step_seconds", MetricsRegistry::Type::kHistogram,
            "Wall seconds of an RL step.", {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900});
  r.Observe("rlpost_controller_step_seconds", {}, m.step_seconds);
  r.Set("rlpost_controller_step", {}, static_cast<double>(m.step));
  r.Set("rlpost_controller_weight_version", {}, static_cast<double>(m.weight_version));
  r.Set("rlpost_controller_reward_mean", {}, Finite(m.reward_mean));
  r.Set("rlpost_controller_accuracy", {}, Finite(m.accuracy));
  r.Set("rlpost_controller_response_length_mean", {}, Finite(m.response_len_mean));
  r.Set("rlpost_controller_tokens_per_second", {}, Finite(m.tokens_per_sec));
  r.Set("rlpost_controller_approx_kl", {}, Finite(m.approx_kl));
  r.Set("rlpost_controller_ref_kl", {}, Finite(m.ref_kl));
  r.Set("rlpost_controller_entropy", {}, Finite(m.entropy));
  r.Set("rlpost_controller_clip_fraction", {}, Finite(m.clip_fraction));
  r.Set("rlpost_controller_loss", {}, Finite(m.loss));
  r.Set("rlpost_controller_staleness_max", {}, static_cast<double>(m.staleness_max));
  r.Set("rlpost_controller_staleness_mean", {}, Finite(m.staleness_mean));
  r.Set("rlpost_controller_buffered_steps", {}, static_cast<double>(m.buffered_steps));
  r.Add("rlpost_controller_steps_total", {{"trained", m.trained ? "true" : "false"}});
  r.Add("rlpost_controller_samples_trained_total", {}, static_cast<double>(m.samples_trained));
  r.Add("rlpost_controller_groups_total", {{"outcome", "kept"}}, static_cast<double>(m.groups_kept));
  r.Add("rlpost_controller_groups_total", {{"outcome", "uniform"}},
        static_cast<double>(m.groups_uniform));
  r.Add("rlpost_controller_groups_total", {{"outcome", "dropped"}},
        static_cast<double>(m.groups_dropped));
  r.Add("rlpost_controller_samples_resampled_total", {}, static_cast<double>(m.samples_resampled));
  r.Add("rlpost_controller_groups_total", {{"outcome", "carried"}},
        static_cast<double>(m.groups_carried));
  r.Add("rlpost_controller_groups_total", {{"outcome", "cut"}}, static_cast<double>(m.groups_cut));
  r.Add("rlpost_controller_workers_lost_total", {}, static_cast<double>(m.workers_lost));
  r.Add("rlpost_controller_verifier_retries_total", {}, static_cast<double>(m.verifier_retries));
  r.Add("rlpost_controller_reward_failed_samples_total", {},
        static_cast<double>(m.samples_reward_failed));
  r.Add("rlpost_controller_groups_total", {{"outcome", "reward_failed"}},
        static_cast<double>(m.groups_reward_failed));
  r.Set("rlpost_controller_reward_plugin_restarts", {},
        static_cast<double>(m.reward_plugin_restarts));
  for (const auto& [name, mean] : m.reward_parts_mean) {
    r.Set("rlpost_controller_reward_part_mean", {{"part", name}}, Finite(mean));
  }
}

std::string SummaryJson(const RunSummary& s) {
  nlohmann::ordered_json j;
  j["run_name"] = s.run_name;
  j["heldout_accuracy_before"] = Finite(s.heldout_accuracy_before);
  j["heldout_accuracy_after"] = Finite(s.heldout_accuracy_after);
  j["heldout_gain_points"] =
      Finite(100.0 * (s.heldout_accuracy_after - s.heldout_accuracy_before));
  j["heldout_problems"] = s.heldout_problems;
  j["steps"] = s.steps;
  j["rl_seconds"] = Finite(s.rl_seconds);
  j["steps_per_hour"] = Finite(s.steps_per_hour);
  j["steps_planned"] = s.steps_planned;
  j["sft_steps"] = s.sft_steps;
  j["final_weight_version"] = s.final_weight_version;
  j["wall_seconds"] = Finite(s.wall_seconds);
  j["stopped_early"] = s.stopped_early;
  j["checkpoint_dir"] = s.checkpoint_dir;
  return j.dump(2);
}

absl::Status WriteSummary(const RunSummary& s, const std::string& path) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << SummaryJson(s) << "\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write '", tmp, "'"));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot write '", path, "'"));
  }
  return absl::OkStatus();
}

std::string FormatHeldoutTable(double before, double after) {
  const double gain = 100.0 * (after - before);
  return absl::StrFormat(
      "held-out accuracy   before RL   after RL   gain\n"
      "                    %-11s %-10s %s%.1f pts\n",
      absl::StrFormat("%.1f%%", 100.0 * before), absl::StrFormat("%.1f%%", 100.0 * after),
      gain >= 0 ? "+" : "", gain);
}

}  // namespace rlpost
