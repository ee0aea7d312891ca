#pragma once
// The rollout engine: continuous batching over paged keys/values with exact
// speculative decoding. No gRPC and no LibTorch types in this header.
//
// Requests (a prompt and a group size n) join the running batch at any step
// and samples leave it as they finish. A group's prompt is prefilled once and
// its blocks shared by the n samples. Every step decodes all running samples
// together: each row feeds its last token plus the drafted tokens, and
// VerifyDraft (spec_sampling.h) keeps the samples exactly on-policy. With
// adaptive speculation the draft length (0 included) is chosen per step from
// the measured acceptance and the measured cost of forwards of that shape.
//
// Randomness is counter based (sampler.h), so a seeded sample does not depend
// on the batch it ran in; with plain decoding or the n-gram drafter it does
// not depend on the draft lengths either.
//
// Weight updates are applied between steps: in-flight samples keep their
// tokens, their keys/values are recomputed under the new weights, and every
// token records the version that produced it.
//
// Thread-safety: all public methods may be called from any thread. With
// EngineOptions::background_thread the engine steps on its own thread;
// otherwise callers drive it with Step()/RunUntilIdle() (deterministic
// batching for tests). Callbacks run on the stepping thread and must not call
// back into the engine.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/model_config.h"
#include "model/raw_tensor.h"
#include "rollout/sampler.h"

namespace rlpost {

enum class DrafterKind { kNone, kNgram, kMtp, kDraftModel };

// "none", "ngram", "mtp", "draft".
absl::StatusOr<DrafterKind> ParseDrafterKind(const std::string& name);
std::string DrafterName(DrafterKind kind);

struct SpeculationOptions {
  DrafterKind drafter = DrafterKind::kNone;
  int max_draft_tokens = 4;  // k, or the largest k adaptive mode may pick
  bool adaptive = true;      // false: always max_draft_tokens
  // Suffix lengths tried by the n-gram drafter, longest first: long suffixes
  // align a sample with the same point of its siblings' text.
  int ngram_min = 1;
  int ngram_max = 8;
  // Finished rollouts kept per prompt for the n-gram drafter.
  int history_per_prompt = 16;
};

struct EngineOptions {
  int64_t max_batch = 64;         // samples decoded together
  int64_t kv_block_size = 16;
  // Blocks in the pool; 0 = enough for max_batch samples of the full context.
  int64_t kv_blocks = 0;
  int64_t max_prefill_tokens = 8192;  // prompt tokens prefilled per step
  bool prefix_sharing = true;
  SpeculationOptions speculation;
  bool background_thread = true;
  // Forwards in float32 (default) or float64 (exactness tests).
  bool float64 = false;
  // Where the policy, the draft model and the KV cache live: "cpu", "cuda"
  // or "cuda:N" (rollout.device). Sampling and acceptance run on the CPU
  // over the logits of the sampled rows.
  std::string device = "cpu";
};

// Why a sample stopped. kPartial: the call's token budget ran out; continue it
// with GenerationRequest::resume.
enum class FinishKind { kPartial, kStop, kLength, kAbort };

struct SampleOutput {
  int sample_index = 0;
  uint64_t seed = 0;
  // Generated tokens (all of them, including those of earlier calls when
  // resumed), stop token included when finish is kStop.
  std::vector<int> tokens;
  std::vector<float> logprobs;      // under the distribution sampled from
  std::vector<float> raw_logprobs;  // log softmax of the raw logits (when requested)
  std::vector<int64_t> weight_versions;
  // When requested: for each token, for each MoE layer, the top_k experts of
  // the forward position that produced it (router replay in the learner).
  std::vector<int32_t> routed_experts;
  FinishKind finish = FinishKind::kPartial;
  int64_t drafted_tokens = 0;   // this call
  int64_t accepted_tokens = 0;  // this call
};

struct GenerationRequest {
  std::vector<int> prompt;  // token ids, BOS included
  int n = 1;
  SamplingOptions sampling;
  uint64_t seed = 0;  // sample i uses SampleSeed(seed, i)
  // Tokens each sample may generate in this call (0 = no limit); a sample
  // that runs out comes back kPartial.
  int64_t token_budget = 0;
  bool raw_logprobs = false;
  bool routed_experts = false;
  // Partial samples to continue (from an earlier call, possibly under older
  // weights): each keeps its sample_index, seed and tokens. When non-empty,
  // these are the samples of the request and n is ignored.
  std::vector<SampleOutput> resume;
  int eos_token = -1;  // stops generation like a stop token (-1: none)
  // Decodes generated tokens to text for stop strings (required when
  // sampling.stop_strings is non-empty).
  std::function<std::string(const std::vector<int>&)> detokenize;
};

struct EngineStats {
  int64_t weight_version = 0;
  int64_t draft_model_version = -1;  // -1: none loaded
  int64_t steps = 0;
  int64_t tokens_generated = 0;
  int64_t samples_finished = 0;
  int64_t running = 0;   // samples in the batch
  int64_t waiting = 0;   // samples queued
  int64_t drafted_tokens = 0;
  int64_t accepted_tokens = 0;
  int64_t decode_rows = 0;  // sample-steps decoded (tokens / decode_rows = mean emitted per step)
  int64_t preemptions = 0;
  int64_t kv_blocks_total = 0;
  int64_t kv_blocks_free = 0;
  double forward_seconds = 0;  // time inside model forwards
  double step_seconds = 0;     // time inside Step()
  double mean_draft_length = 0;
  // Decode steps and their wall seconds by the draft length played (index
  // k); what the adaptive mode chose and what it cost.
  std::vector<int64_t> steps_by_draft_length;
  std::vector<double> seconds_by_draft_length;
  std::string drafter;
};

class RolloutEngine {
 public:
  // The policy is built from `config` (seeded initialisation, version 0).
  static absl::StatusOr<std::unique_ptr<RolloutEngine>> Create(const ModelConfig& config,
                                                               const EngineOptions& options);
  ~RolloutEngine();

  using SampleCallback = std::function<void(const SampleOutput&)>;
  // Queues a request; `on_sample` runs once per sample as it finishes (or
  // runs out of budget). Returns the request id. Errors (prompt longer than
  // the context, sampling options out of range, bad resume state) are
  // INVALID_ARGUMENT and nothing is queued.
  absl::StatusOr<int64_t> Submit(GenerationRequest request, SampleCallback on_sample);
  // Finishes the request's unfinished samples with kAbort (callbacks run).
  void Cancel(int64_t request_id);
  // Submit and wait for every sample (in sample_index order).
  absl::StatusOr<std::vector<SampleOutput>> Generate(GenerationRequest request);

  // Manual stepping (background_thread = false): one scheduling step, or
  // steps until nothing is queued or running. Returns false when idle.
  bool Step();
  void RunUntilIdle();

  // Replaces the policy weights between two steps (waits for it). Tensors
  // are validated first; on error the old weights keep serving. The MTP head
  // is part of the weights and changes with them.
  absl::Status UpdateWeights(int64_t version, const std::vector<RawTensor>& tensors);
  // Loads (or replaces) the separate draft model, between two steps.
  absl::Status LoadDraftModel(const ModelConfig& config, const std::vector<RawTensor>& tensors,
                              int64_t version);

  std::vector<RawTensor> ExportWeights() const;
  EngineStats Stats() const;
  // The adaptive tuner's state (rlpost-bench rollout's verbose log). Only
  // while no step runs: an engine without its background thread, between
  // RunUntilIdle calls.
  std::string DescribeSpeculation() const;
  const ModelConfig& config() const;
  std::string Describe() const;
  int64_t weight_version() const;

 private:
  struct Impl;
  explicit RolloutEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rlpost
