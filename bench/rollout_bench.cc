#include "bench/rollout_bench.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "bench/bench_flags.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/run_config.h"
#include "controller/arith_task.h"
#include "learner/trainer.h"
#include "model/char_tokenizer.h"
#include "model/device.h"
#include "rollout/engine.h"

namespace rlpost::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct Policy {
  std::string name;
  ModelConfig config;
  std::vector<RawTensor> weights;  // empty: the seeded initialisation
  ModelConfig draft_config;
  std::vector<RawTensor> draft_weights;
};

// SFT on the built-in task's worked solutions, as the demo's warm start does.
absl::StatusOr<std::pair<ModelConfig, std::vector<RawTensor>>> Sft(
    const std::vector<std::string>& overrides, int64_t steps,
    const std::vector<Problem>& problems) {
  absl::StatusOr<RunConfig> rc = LoadRunConfig("", overrides);
  if (!rc.ok()) return rc.status();
  CharTokenizer tok;
  auto trainer = Trainer::Create(*rc, tok.vocab_size(), nullptr);
  if (!trainer.ok()) return trainer.status();
  StepOptions so;
  so.objective = TrainObjective::kSft;
  so.lr = rc->sft_lr;
  size_t cursor = 0;
  for (int64_t s = 0; s < steps; ++s) {
    std::vector<TrainExample> batch;
    for (int64_t i = 0; i < rc->sft_batch_size; ++i) {
      const Problem& p = problems[cursor++ % problems.size()];
      TrainExample ex;
      ex.prompt = {CharTokenizer::kBos};
      auto prompt = tok.Encode(p.prompt);
      auto response = tok.Encode(p.solution);
      if (!prompt.ok() || !response.ok()) return absl::InternalError("untokenizable problem");
      ex.prompt.insert(ex.prompt.end(), prompt->begin(), prompt->end());
      ex.response = *response;
      ex.response.push_back(CharTokenizer::kEos);
      batch.push_back(std::move(ex));
    }
    auto stats = (*trainer)->Step(batch, so);
    if (!stats.ok()) return stats.status();
  }
  return std::make_pair(ModelConfig::FromShape(rc->model, tok.vocab_size()),
                        (*trainer)->ExportWeights());
}

struct Mode {
  std::string name;
  DrafterKind drafter;
  bool adaptive;
};

struct Cell {
  double seconds = 0, forward_seconds = 0;
  int64_t tokens = 0, drafted = 0, accepted = 0, rows = 0, steps = 0;
  std::vector<int64_t> steps_by_k;  // decode steps by the draft length played
  std::vector<double> seconds_by_k;
  double tokens_per_s() const { return seconds > 0 ? tokens / seconds : 0; }
  void Add(const Cell& c) {
    seconds += c.seconds;
    forward_seconds += c.forward_seconds;
    tokens += c.tokens;
    drafted += c.drafted;
    accepted += c.accepted;
    rows += c.rows;
    steps += c.steps;
    steps_by_k.resize(std::max(steps_by_k.size(), c.steps_by_k.size()), 0);
    seconds_by_k.resize(steps_by_k.size(), 0.0);
    for (size_t k = 0; k < c.steps_by_k.size(); ++k) {
      steps_by_k[k] += c.steps_by_k[k];
      seconds_by_k[k] += c.seconds_by_k[k];
    }
  }
};

constexpr int kGroupSize = 8;  // rl.group_size of the built-in job

// GRPO-style load: `groups` prompts of kGroupSize samples each, all queued at
// once; the engine runs at most `batch` samples at a time (its max_batch).
void RunSlice(RolloutEngine* e, const std::vector<std::vector<int>>& prompts, size_t start,
              int64_t groups, Cell* cell) {
  const EngineStats before = e->Stats();
  const Clock::time_point t0 = Clock::now();
  for (int64_t g = 0; g < groups; ++g) {
    GenerationRequest r;
    r.prompt = prompts[(start + static_cast<size_t>(g)) % prompts.size()];
    r.n = kGroupSize;
    r.sampling.temperature = 1.0;
    r.sampling.max_new_tokens = 48;
    r.seed = 1000 + start + static_cast<uint64_t>(g);
    r.eos_token = CharTokenizer::kEos;
    (void)e->Submit(r, [](const SampleOutput&) {});
  }
  e->RunUntilIdle();
  cell->seconds += Seconds(Clock::now() - t0);
  const EngineStats after = e->Stats();
  cell->forward_seconds += after.forward_seconds - before.forward_seconds;
  cell->tokens += after.tokens_generated - before.tokens_generated;
  cell->drafted += after.drafted_tokens - before.drafted_tokens;
  cell->accepted += after.accepted_tokens - before.accepted_tokens;
  cell->rows += after.decode_rows - before.decode_rows;
  cell->steps += after.steps - before.steps;
  const std::vector<int64_t>& steps_after = after.steps_by_draft_length;
  const size_t n = steps_after.size();
  cell->steps_by_k.resize(std::max(cell->steps_by_k.size(), n), 0);
  cell->seconds_by_k.resize(cell->steps_by_k.size(), 0.0);
  for (size_t k = 0; k < n; ++k) {
    const bool seen = k < before.steps_by_draft_length.size();
    cell->steps_by_k[k] += steps_after[k] - (seen ? before.steps_by_draft_length[k] : 0);
    cell->seconds_by_k[k] +=
        after.seconds_by_draft_length[k] - (seen ? before.seconds_by_draft_length[k] : 0.0);
  }
}

std::unique_ptr<RolloutEngine> MakeEngine(const Policy& p, const Mode& m, int64_t batch,
                                          const std::string& device) {
  EngineOptions o;
  o.device = device;
  o.background_thread = false;
  o.max_batch = batch;
  o.speculation.drafter = m.drafter;
  o.speculation.max_draft_tokens = 4;
  o.speculation.adaptive = m.adaptive;
  auto e = RolloutEngine::Create(p.config, o);
  if (!e.ok()) {
    std::fprintf(stderr, "rlpost-bench rollout: %s\n", std::string(e.status().message()).c_str());
    return nullptr;
  }
  if (!p.weights.empty()) {
    absl::Status s = (*e)->UpdateWeights(1, p.weights);
    if (!s.ok()) std::fprintf(stderr, "rlpost-bench rollout: %s\n", s.ToString().c_str());
  }
  if (m.drafter == DrafterKind::kDraftModel) {
    absl::Status s = (*e)->LoadDraftModel(p.draft_config, p.draft_weights, 1);
    if (!s.ok()) std::fprintf(stderr, "rlpost-bench rollout: %s\n", s.ToString().c_str());
  }
  return std::move(*e);
}

// "  k: 0 93%/88% 1 7%/12%": each draft length's share of the decode steps
// and of their time.
std::string ByDraftLength(const Cell& c) {
  int64_t steps = 0;
  double seconds = 0;
  for (size_t k = 0; k < c.steps_by_k.size(); ++k) {
    steps += c.steps_by_k[k];
    seconds += c.seconds_by_k[k];
  }
  if (steps == 0) return "";
  std::string out = "  k:";
  for (size_t k = 0; k < c.steps_by_k.size(); ++k) {
    if (c.steps_by_k[k] == 0) continue;
    out += absl::StrFormat(" %d %.0f%%/%.0f%%", k, 100.0 * c.steps_by_k[k] / steps,
                           100.0 * c.seconds_by_k[k] / std::max(seconds, 1e-9));
  }
  return out;
}

}  // namespace

int RunRolloutBench(const std::vector<std::string>& args) {
  bool json_out = false, quick = false;
  std::string device;
  if (!ParseJsonQuickFlags(args, "rollout", &json_out, &quick, &device)) return 2;
  if (absl::StatusOr<c10::Device> d = OpenDevice("--device", device); !d.ok()) {
    std::fprintf(stderr, "rlpost-bench rollout: %s\n", std::string(d.status().message()).c_str());
    return 2;
  }
  auto log = [&](const std::string& line) {
    if (!json_out) {
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    }
  };
  const int64_t sft_steps = quick ? 150 : 300;
  const int rounds = quick ? 1 : 9;
  std::vector<Problem> train = GenerateArithProblems(1234, 4000, 999, Split::kTrain);
  std::vector<Problem> heldout = GenerateArithProblems(1234, 200, 999, Split::kHeldout);
  CharTokenizer tok;
  std::vector<std::vector<int>> prompts;
  for (const Problem& p : heldout) {
    std::vector<int> ids = {CharTokenizer::kBos};
    auto enc = tok.Encode(p.prompt);
    if (enc.ok()) ids.insert(ids.end(), enc->begin(), enc->end());
    prompts.push_back(std::move(ids));
  }

  // The built-in policy with an MTP block, and a one-layer draft model.
  const std::vector<std::string> policy_keys = {"model.mtp_layers=1"};
  const std::vector<std::string> draft_keys = {"model.n_layers=1", "model.d_model=48",
                                               "model.expert_hidden=64", "model.n_experts=2",
                                               "model.top_k=1"};
  const Clock::time_point sft_start = Clock::now();
  auto policy = Sft(policy_keys, sft_steps, train);
  auto draft = Sft(draft_keys, sft_steps, train);
  if (!policy.ok() || !draft.ok()) {
    std::fprintf(stderr, "rlpost-bench rollout: SFT failed: %s\n",
                 (!policy.ok() ? policy.status() : draft.status()).ToString().c_str());
    return 1;
  }
  log(absl::StrFormat("sft: policy and draft model, %d steps each, %.1f s", sft_steps,
                      Seconds(Clock::now() - sft_start)));
  at::set_num_threads(1);

  std::vector<Policy> policies;
  policies.push_back({"sft", policy->first, policy->second, draft->first, draft->second});
  {
    auto random_draft = Sft(draft_keys, 0, train);
    Policy random{"random-init", policy->first, {}, random_draft->first, random_draft->second};
    policies.push_back(random);
  }
  const std::vector<Mode> modes = {
      {"plain", DrafterKind::kNone, false},        {"ngram", DrafterKind::kNgram, false},
      {"ngram-adaptive", DrafterKind::kNgram, true}, {"mtp", DrafterKind::kMtp, false},
      {"mtp-adaptive", DrafterKind::kMtp, true},     {"draft", DrafterKind::kDraftModel, false},
      {"draft-adaptive", DrafterKind::kDraftModel, true}};
  const std::vector<int64_t> batches = {1, 8, 32};

  nlohmann::json report;
  report["benchmark"] = "rollout";
  report["device"] = device;
  report["threads"] = at::get_num_threads();
  report["temperature"] = 1.0;
  report["group_size"] = kGroupSize;
  report["max_new_tokens"] = 48;
  report["max_draft_tokens"] = 4;
  report["sft_steps"] = sft_steps;
  report["policy"] = policy->first.Describe();
  report["draft_model"] = draft->first.Describe();
  nlohmann::json per_policy = nlohmann::json::object();
  double speedup1 = 0, speedup8 = 0, adaptive_min = 1e9;
  double plain_wall = 0, plain_forward = 0;
  for (const Policy& p : policies) {
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t batch : batches) {
      // Queued work four times the batch (an RL step queues all its groups at
      // once: 16 groups of 8 in the built-in job), at least two groups.
      const int64_t groups = std::max<int64_t>(2, 4 * batch / kGroupSize);
      std::map<std::string, std::unique_ptr<RolloutEngine>> engines;
      std::map<std::string, Cell> cells;
      for (const Mode& m : modes) {
        engines[m.name] = MakeEngine(p, m, batch, device);
        if (!engines[m.name]) return 1;
        // Warm-up on other prompts: allocations, and the adaptive mode's
        // one-time measurement of every draft length in each batch-size
        // octave the slices visit (a worker does this once in its life).
        Cell ignored;
        for (int w = 0; w < (quick ? 1 : 2); ++w) {
          RunSlice(engines[m.name].get(), prompts, 100 + w * groups, groups, &ignored);
        }
      }
      // Interleaved rounds over the same prompts and seeds.
      // A mode's ratio to plain is the median over rounds of its round's
      // tokens/s over plain's in the same round: robust to a slice that a
      // neighbour process slowed down.
      std::map<std::string, std::vector<double>> round_ratios;
      for (int r = 0; r < rounds; ++r) {
        const size_t start = static_cast<size_t>(r * groups);
        std::map<std::string, Cell> round;
        for (const Mode& m : modes) {
          RunSlice(engines[m.name].get(), prompts, start, groups, &round[m.name]);
          cells[m.name].Add(round[m.name]);
        }
        for (const Mode& m : modes) {
          round_ratios[m.name].push_back(round[m.name].tokens_per_s() /
                                         std::max(round["plain"].tokens_per_s(), 1e-9));
        }
      }
      const double plain = cells["plain"].tokens_per_s();
      if (p.name == "sft") {
        plain_wall += cells["plain"].seconds;
        plain_forward += cells["plain"].forward_seconds;
      }
      nlohmann::json row;
      row["batch"] = batch;
      std::string line = absl::StrFormat("%-11s batch %2d  plain %7.0f tok/s", p.name, batch, plain);
      for (const Mode& m : modes) {
        const Cell& c = cells[m.name];
        std::vector<double>& rr = round_ratios[m.name];
        std::sort(rr.begin(), rr.end());
        const double ratio = rr[rr.size() / 2];
        nlohmann::json cell = {{"tokens_per_s", c.tokens_per_s()}, {"ratio_to_plain", ratio}};
        if (m.drafter != DrafterKind::kNone) {
          cell["acceptance_rate"] =
              c.drafted > 0 ? static_cast<double>(c.accepted) / c.drafted : 0.0;
          cell["mean_tokens_per_step"] =
              c.rows > 0 ? static_cast<double>(c.tokens) / c.rows : 0.0;
          line += absl::StrFormat("  %s %.2fx (acc %.2f)", m.name, ratio,
                                  cell["acceptance_rate"].get<double>());
          if (p.name == "sft" && batch == 1) speedup1 = std::max(speedup1, ratio);
          if (p.name == "sft" && batch == 8) speedup8 = std::max(speedup8, ratio);
          if (m.adaptive) adaptive_min = std::min(adaptive_min, ratio);
        } else {
          cell["forward_share"] = c.seconds > 0 ? c.forward_seconds / c.seconds : 0.0;
        }
        row[m.name] = cell;
      }
      log(line);
      if (std::getenv("RLPOST_BENCH_VERBOSE") != nullptr) {
        for (const Mode& m : modes) {
          const Cell& c = cells[m.name];
          log(absl::StrFormat("    %-15s %6.3f ms/step  %5.2f rows/step  %5.2f tokens/row-step  "
                              "forward %.0f%%",
                              m.name, 1e3 * c.seconds / std::max<int64_t>(c.steps, 1),
                              static_cast<double>(c.rows) / std::max<int64_t>(c.steps, 1),
                              static_cast<double>(c.tokens) / std::max<int64_t>(c.rows, 1),
                              100 * c.forward_seconds / std::max(c.seconds, 1e-9)) +
              ByDraftLength(c));
          if (m.adaptive) log(engines[m.name]->DescribeSpeculation());
        }
      }
      rows.push_back(row);
    }
    per_policy[p.name] = rows;
  }
  report["results"] = per_policy;
  const double overhead = plain_forward > 0 ? plain_wall / plain_forward : 0;
  report["speedup_batch1"] = speedup1;
  report["speedup_batch8"] = speedup8;
  report["adaptive_min_ratio"] = adaptive_min;
  report["engine_overhead_ratio"] = overhead;
  report["targets"] = {{"speedup_batch1", ">= 2.0"},
                       {"speedup_batch8", ">= 1.3"},
                       {"adaptive_min_ratio", ">= 0.95"},
                       {"engine_overhead_ratio", "<= 1.3"}};
  if (json_out) {
    std::printf("%s\n", report.dump().c_str());
  } else {
    std::printf("speedup_batch1         %.2f   (best drafter on the SFT policy; target >= 2.0)\n",
                speedup1);
    std::printf("speedup_batch8         %.2f   (target >= 1.3)\n", speedup8);
    std::printf("adaptive_min_ratio     %.2f   (adaptive / plain, every drafter, batch and "
                "policy; target >= 0.95)\n",
                adaptive_min);
    std::printf("engine_overhead_ratio  %.2f   (plain decoding wall time / its forward calls; "
                "target <= 1.3)\n",
                overhead);
  }
  return 0;
}

}  // namespace rlpost::bench
