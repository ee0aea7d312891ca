#include "bench/learner_bench.h"

#include <torch/cuda.h>
#include <torch/optim/adamw.h>
#include <torch/types.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"
#include "bench/bench_flags.h"
#include "learner/packed_batch.h"
#include "learner/packing.h"
#include "learner/trainer.h"
#include "model/device.h"
#include "model/moe_transformer.h"

namespace rlpost::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A long-tailed batch like reasoning rollouts: prompts of 16-64 tokens,
// responses log-normal around ~150 tokens with a tail to `max_response`.
std::vector<TrainExample> VariableLengthBatch(int64_t sequences, int64_t vocab,
                                              int64_t max_response, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> prompt_len(16, 64);
  std::lognormal_distribution<double> response_len(5.0, 0.7);
  std::uniform_int_distribution<int> token(3, static_cast<int>(vocab) - 1);
  std::normal_distribution<double> noise(0.0, 0.3);
  std::vector<TrainExample> batch;
  for (int64_t i = 0; i < sequences; ++i) {
    TrainExample ex;
    ex.prompt.push_back(1);
    for (int64_t j = prompt_len(rng); j > 1; --j) ex.prompt.push_back(token(rng));
    const int64_t r = std::clamp<int64_t>(static_cast<int64_t>(response_len(rng)), 8, max_response);
    for (int64_t j = 0; j < r; ++j) ex.response.push_back(token(rng));
    // Near the untrained policy's logprobs, so PPO ratios stay around 1.
    for (int64_t j = 0; j < r; ++j) {
      ex.old_logprobs.push_back(static_cast<float>(
          std::min(0.0, -std::log(static_cast<double>(vocab)) + noise(rng))));
    }
    ex.advantage = (i % 2 == 0) ? 1.0f : -1.0f;
    ex.reward = (i % 2 == 0) ? 1.0f : 0.0f;
    batch.push_back(std::move(ex));
  }
  return batch;
}

}  // namespace

int RunLearnerBench(const std::vector<std::string>& args) {
  bool json_out = false, quick = false;
  std::string device_name;
  if (!ParseJsonQuickFlags(args, "learner", &json_out, &quick, &device_name)) return 2;
  absl::StatusOr<c10::Device> device = OpenDevice("--device", device_name);
  if (!device.ok()) {
    std::fprintf(stderr, "rlpost-bench learner: %s\n", std::string(device.status().message()).c_str());
    return 2;
  }
  // Kernels are asynchronous on a GPU: a timed region ends when they have run.
  auto sync = [&] {
    if (device->is_cuda()) torch::cuda::synchronize(device->index());
  };
  at::set_num_threads(1);
  const int rounds = quick ? 3 : 7;
  const int64_t sequences = quick ? 32 : 64;
  const int64_t vocab = 4096;
  RunConfig run;
  run.model.n_layers = 4;
  run.model.d_model = 256;
  run.model.n_heads = 8;
  run.model.n_kv_heads = 4;
  run.model.n_experts = 8;
  run.model.top_k = 2;
  run.model.expert_hidden = 512;
  run.model.max_seq_len = 1024;
  run.rl_lr = 1e-5;
  run.learner_device = device->str();
  const std::vector<TrainExample> batch = VariableLengthBatch(sequences, vocab, 900, 7);

  StepOptions step;
  step.lr = run.rl_lr;
  step.micro_batch_tokens = 4096;
  step.policy.clip_high = 0.28;  // DAPO's clip-higher, a typical reasoning-RL setting
  auto trainer = Trainer::Create(run, vocab, nullptr);
  if (!trainer.ok()) {
    std::fprintf(stderr, "rlpost-bench learner: %s\n", trainer.status().ToString().c_str());
    return 1;
  }
  // The bare loop: the same model and weights, the same micro-batches, only
  // forward, cross-entropy at the response positions, backward and AdamW.
  const ModelConfig config = ModelConfig::FromShape(run.model, vocab);
  MoeTransformer bare(config);
  if (absl::Status s = bare->ImportWeights((*trainer)->ExportWeights()); !s.ok()) {
    std::fprintf(stderr, "rlpost-bench learner: %s\n", s.ToString().c_str());
    return 1;
  }
  bare->to(*device);
  bare->train();
  torch::optim::AdamW optimizer(bare->parameters(),
                                torch::optim::AdamWOptions(run.rl_lr).betas({0.9, 0.99}));
  std::vector<int64_t> lengths, all;
  int64_t positions = 0, response_tokens = 0, longest = 0;
  for (const TrainExample& ex : batch) {
    lengths.push_back(static_cast<int64_t>(ex.prompt.size() + ex.response.size()));
    all.push_back(static_cast<int64_t>(all.size()));
    positions += lengths.back();
    response_tokens += static_cast<int64_t>(ex.response.size());
    longest = std::max(longest, lengths.back());
  }
  std::vector<PackedRow> rows;
  for (const auto& micro : PlanMicroBatches(lengths, all, step.micro_batch_tokens)) {
    std::vector<const TrainExample*> examples;
    for (int64_t i : micro) examples.push_back(&batch[static_cast<size_t>(i)]);
    rows.push_back(PackExamples(examples, config));
  }
  auto bare_step = [&] {
    optimizer.zero_grad();
    for (PackedRow row : rows) {
      MoveToDevice(&row, *device);  // as the trainer does, inside the timed step
      ForwardOptions fo;
      fo.segments = &row.segments;
      fo.logit_rows = &row.logit_rows;
      ForwardOutput out = bare->Forward(row.tokens, row.positions, row.key_mask, fo);
      at::Tensor loss = -at::log_softmax(out.logits, -1)
                             .gather(-1, row.targets.unsqueeze(-1))
                             .sum() /
                        static_cast<double>(response_tokens);
      loss.backward();
    }
    optimizer.step();
    sync();
  };

  std::vector<double> step_s, bare_s;
  StepStats last;
  for (int r = -1; r < rounds; ++r) {  // round -1 warms up
    Clock::time_point t0 = Clock::now();
    auto stats = (*trainer)->Step(batch, step);
    sync();
    Clock::time_point t1 = Clock::now();
    if (!stats.ok()) {
      std::fprintf(stderr, "rlpost-bench learner: %s\n", stats.status().ToString().c_str());
      return 1;
    }
    last = *stats;
    bare_step();
    Clock::time_point t2 = Clock::now();
    if (r < 0) continue;
    step_s.push_back(Seconds(t1 - t0));
    bare_s.push_back(Seconds(t2 - t1));
    if (!json_out) {
      std::printf("round %d: ppo step %.3f s, bare %.3f s\n", r + 1, step_s.back(), bare_s.back());
      std::fflush(stdout);
    }
  }
  const double step_median = Median(step_s), bare_median = Median(bare_s);
  const double overhead = step_median / bare_median;
  // What the same batch would cost left-padded: one padded row per sequence
  // at the longest length (a single micro-batch), or per micro-batch padded to
  // its own longest sequence.
  const double padded_whole =
      1.0 - static_cast<double>(positions) / static_cast<double>(longest * sequences);
  int64_t padded_micro = 0;
  for (const PackedRow& row : rows) {
    padded_micro += *std::max_element(row.segments.begin(), row.segments.end()) *
                    static_cast<int64_t>(row.segments.size());
  }
  const double padded_per_micro = 1.0 - static_cast<double>(positions) / padded_micro;

  nlohmann::json report;
  report["benchmark"] = "learner";
  report["device"] = device->str();
  report["threads"] = at::get_num_threads();
  report["model"] = config.Describe();
  report["sequences"] = sequences;
  report["tokens"] = positions;
  report["response_tokens"] = response_tokens;
  report["micro_batch_tokens"] = step.micro_batch_tokens;
  report["micro_batches"] = last.micro_batches;
  report["rounds"] = rounds;
  report["ppo_step_s"] = step_median;
  report["bare_step_s"] = bare_median;
  report["train_tokens_per_s"] = static_cast<double>(positions) / step_median;
  report["bare_tokens_per_s"] = static_cast<double>(positions) / bare_median;
  report["step_overhead_ratio"] = overhead;
  report["padding_fraction"] = last.padding_fraction;
  report["padding_fraction_left_padded"] = padded_whole;
  report["padding_fraction_padded_micro_batches"] = padded_per_micro;
  report["targets"] = {{"step_overhead_ratio", "<= 1.15"}, {"padding_fraction", "< 0.05"}};
  if (json_out) {
    std::printf("%s\n", report.dump().c_str());
    return 0;
  }
  std::printf("model: %s\n", config.Describe().c_str());
  std::printf("batch: %ld sequences, %ld tokens (%ld response), %ld micro-batches of <= %ld\n",
              static_cast<long>(sequences), static_cast<long>(positions),
              static_cast<long>(response_tokens), static_cast<long>(last.micro_batches),
              static_cast<long>(step.micro_batch_tokens));
  std::printf("train_tokens_per_s     %.0f   (PPO step; bare loop %.0f)\n",
              static_cast<double>(positions) / step_median,
              static_cast<double>(positions) / bare_median);
  std::printf("step_overhead_ratio    %.3f  (PPO step / bare forward+backward+AdamW, median of %d; "
              "target <= 1.15)\n",
              overhead, rounds);
  std::printf("padding_fraction       %.3f  (packed rows; target < 0.05. Left-padded: %.3f "
              "whole batch, %.3f per micro-batch)\n",
              last.padding_fraction, padded_whole, padded_per_micro);
  return 0;
}

}  // namespace rlpost::bench
