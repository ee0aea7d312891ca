#include "bench/model_bench.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "bench/bench_flags.h"
#include "absl/strings/str_format.h"
#include "model/moe_transformer.h"

namespace rlpost::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct BenchConfig {
  std::string name;
  ModelConfig model;
  int64_t prompt_len;
  int64_t decode_steps;
};

// The built-in policy of configs/arith_grpo.yaml.
BenchConfig BuiltIn() {
  BenchConfig b{"builtin", ModelConfig::FromShape(ModelShape{}, 99), 48, 32};
  return b;
}

// About 100M total parameters: 8 layers of 8 experts (top-2), d=512.
BenchConfig Cpu100M() {
  ModelConfig c;
  c.model_type = "qwen3_moe";
  c.vocab_size = 8192;
  c.n_layers = 8;
  c.d_model = 512;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.n_experts = 8;
  c.top_k = 2;
  c.expert_hidden = 896;
  c.norm_topk_prob = true;
  c.max_seq_len = 512;
  return BenchConfig{"cpu-100m", c, 64, 16};
}

int64_t ActiveParams(const ModelConfig& c, int64_t total) {
  int64_t per_expert = 3 * c.d_model * c.expert_hidden;
  int64_t inactive = 0;
  for (int64_t i = 0; i < c.n_layers; ++i) {
    if (c.IsMoeLayer(i)) inactive += (c.n_experts - c.top_k) * per_expert;
  }
  return total - inactive;
}

struct Throughput {
  int64_t batch;
  double prefill_tps;
  double decode_tps;
};

// Best of `reps` (the least disturbed run on a shared machine).
Throughput Measure(MoeTransformer& m, const BenchConfig& bc, int64_t batch, int reps) {
  torch::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(17);
  int64_t p = bc.prompt_len, d = bc.decode_steps;
  at::Tensor tokens = at::randint(3, bc.model.vocab_size, {batch, p}, gen, at::kLong);
  at::Tensor positions = at::arange(p, at::kLong).unsqueeze(0).expand({batch, p}).contiguous();
  double best_prefill = 1e30, best_decode = 1e30;
  for (int r = 0; r < reps; ++r) {
    KvCache cache = m->NewCache(batch, p + d);
    ForwardOptions sampling;  // as the rollout engine samples
    sampling.cache = &cache;
    sampling.router_losses = false;
    at::Tensor mask = at::ones({batch, p}, at::kBool);
    auto t0 = Clock::now();
    at::Tensor logits = m->Forward(tokens, positions, mask, sampling).logits;
    at::Tensor next = logits.select(1, p - 1).argmax(-1, /*keepdim=*/true);
    auto t1 = Clock::now();
    for (int64_t s = 0; s < d; ++s) {
      mask = at::cat({mask, at::ones({batch, 1}, at::kBool)}, 1);
      at::Tensor pos = at::full({batch, 1}, p + s, at::kLong);
      logits = m->Forward(next, pos, mask, sampling).logits;
      next = logits.select(1, 0).argmax(-1, /*keepdim=*/true);
    }
    auto t2 = Clock::now();
    best_prefill = std::min(best_prefill, Seconds(t0, t1));
    best_decode = std::min(best_decode, Seconds(t1, t2));
  }
  return {batch, static_cast<double>(batch * p) / best_prefill,
          static_cast<double>(batch * d) / best_decode};
}

struct MoeEfficiency {
  int64_t tokens;
  double moe_seconds;
  double dense_seconds;
  double moe_gflops;
  double dense_gflops;
  double efficiency;
};

// The MoE layer (router + permutation + grouped experts + combine) against one
// dense SwiGLU of width top_k * expert_hidden on the same tokens: the same
// active FLOPs. Interleaved repetitions, best of each.
MoeEfficiency MeasureMoe(const ModelConfig& c, int64_t tokens, int reps) {
  torch::NoGradGuard no_grad;
  MoeFeedForward moe(c);
  SwiGlu dense(c.d_model, c.top_k * c.expert_hidden);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(23);
  for (auto& p : moe->parameters()) p.normal_(0.0, 0.05, gen);
  for (auto& p : dense->parameters()) p.normal_(0.0, 0.05, gen);
  at::Tensor x = at::empty({tokens, c.d_model}).normal_(0.0, 1.0, gen);
  RoutingContext routing;
  double best_moe = 1e30, best_dense = 1e30;
  moe->forward(x, routing);  // warm-up
  dense->forward(x);
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    at::Tensor y = moe->forward(x, routing);
    auto t1 = Clock::now();
    at::Tensor z = dense->forward(x);
    auto t2 = Clock::now();
    best_moe = std::min(best_moe, Seconds(t0, t1));
    best_dense = std::min(best_dense, Seconds(t1, t2));
  }
  double flops = 2.0 * 3.0 * static_cast<double>(tokens * c.top_k * c.d_model * c.expert_hidden);
  return {tokens, best_moe, best_dense, flops / best_moe / 1e9, flops / best_dense / 1e9,
          best_dense / best_moe};
}

}  // namespace

int RunModelBench(const std::vector<std::string>& args) {
  bool json_out = false, quick = false;
  if (!ParseJsonQuickFlags(args, "model", &json_out, &quick)) return 2;
  const int reps = quick ? 1 : 3;
  nlohmann::json report;
  report["benchmark"] = "model";
  report["threads"] = at::get_num_threads();
  report["device"] = "cpu";
  nlohmann::json configs = nlohmann::json::array();
  for (const BenchConfig& bc : {BuiltIn(), Cpu100M()}) {
    MoeTransformer m(bc.model);
    m->eval();
    int64_t total = m->ParameterCount();
    nlohmann::json entry;
    entry["name"] = bc.name;
    entry["model"] = bc.model.Describe();
    entry["total_params"] = total;
    entry["active_params"] = ActiveParams(bc.model, total);
    entry["prompt_len"] = bc.prompt_len;
    entry["decode_steps"] = bc.decode_steps;
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t batch : {1, 8, 32}) {
      Throughput t = Measure(m, bc, batch, reps);
      rows.push_back({{"batch", batch},
                      {"prefill_tokens_per_s", t.prefill_tps},
                      {"decode_tokens_per_s", t.decode_tps}});
      if (!json_out) {
        std::printf("%-9s batch %2lld  prefill %10.0f tok/s  decode %9.0f tok/s\n",
                    bc.name.c_str(), static_cast<long long>(batch), t.prefill_tps, t.decode_tps);
        std::fflush(stdout);
      }
    }
    entry["throughput"] = rows;
    if (!json_out) {
      std::printf("%-9s %s, %.1fM params (%.1fM active)\n", bc.name.c_str(),
                  bc.model.Describe().c_str(), total / 1e6,
                  ActiveParams(bc.model, total) / 1e6);
    }
    configs.push_back(entry);
  }
  report["configs"] = configs;

  ModelConfig layer = Cpu100M().model;
  nlohmann::json moe_rows = nlohmann::json::array();
  double efficiency_2048 = 0;
  for (int64_t tokens : {256, 2048}) {
    MoeEfficiency e = MeasureMoe(layer, tokens, quick ? 3 : 10);
    moe_rows.push_back({{"tokens", tokens},
                        {"moe_gflops", e.moe_gflops},
                        {"dense_gflops", e.dense_gflops},
                        {"efficiency", e.efficiency}});
    if (tokens == 2048) efficiency_2048 = e.efficiency;
    if (!json_out) {
      std::printf("moe layer %4lld tokens: grouped experts %.1f GFLOP/s, dense %.1f GFLOP/s, "
                  "efficiency %.2f\n",
                  static_cast<long long>(tokens), e.moe_gflops, e.dense_gflops, e.efficiency);
    }
  }
  report["moe_layer"] = {{"d_model", layer.d_model},
                         {"experts", layer.n_experts},
                         {"top_k", layer.top_k},
                         {"expert_hidden", layer.expert_hidden},
                         {"rows", moe_rows}};
  report["moe_efficiency"] = efficiency_2048;
  report["moe_efficiency_target"] = 0.6;
  if (json_out) {
    std::printf("%s\n", report.dump().c_str());
  } else {
    std::printf("moe_efficiency (2048 tokens) %.2f (target >= 0.6)\n", efficiency_2048);
  }
  return 0;
}

}  // namespace rlpost::bench
