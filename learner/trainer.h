#pragma once
// The policy trainer: PPO-clipped policy-gradient (GRPO when advantages are
// group-normalised rewards) and SFT steps on the MoE policy with AdamW, over
// one or more data-parallel ranks. Plain types in the API; LibTorch inside.
//
// Every rank holds a Trainer with identical initial weights and calls Step()
// with the same global batch. The examples are spread over ranks by token
// count and each rank packs its share into micro-batches of at most
// StepOptions::micro_batch_tokens tokens (learner/packing.h): one packed row
// per micro-batch, no padding, gradients accumulated. Every loss term is a
// sum divided by global counts (tokens, sequences), so micro-batches and
// ranks add up to exactly the gradient of one pass over the whole batch.
// Not thread-safe: one caller at a time.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/run_config.h"
#include "learner/advantages.h"
#include "learner/loss_options.h"
#include "model/raw_tensor.h"

namespace rlpost {

class ProcessGroupHandle;  // learner/collective.h

struct TrainExample {
  std::vector<int> prompt;          // BOS + prompt tokens
  std::vector<int> response;        // generated (or reference) tokens
  std::vector<float> old_logprobs;  // PG: logprobs under the sampling policy
  float advantage = 0.0f;           // PG: per-sequence advantage
  float reward = 0.0f;              // PG: the sample's reward (> 0: a positive example)
  // Router replay: per response token, top_k expert ids of each MoE layer in
  // layer order (response.size() * top_k * MoE layers values), recorded by
  // the rollout for the forward position that produced the token. Empty:
  // route as usual.
  std::vector<int32_t> routed_experts;
};

enum class TrainObjective { kPolicyGradient, kSft };

// PPO with a critic (rl.advantage=gae; docs/algorithms.md). The examples'
// `advantage` is ignored: each response gets per-token rewards (its `reward`
// on the last token, minus kl_in_reward_coef times the per-token KL of the
// rollout policy to the reference), the critic's values turn them into GAE
// advantages and value targets, and the critic is trained on the targets.
struct CriticOptions {
  bool enabled = false;
  GaeOptions gae;
  bool whiten = true;          // advantages whitened over the global batch
  double value_clip = 0.2;     // PPO value clip around the pre-update values; 0 = off
  double lr = 1e-3;
  double grad_clip = 1.0;      // the critic's own gradient-norm clip; 0 = off
  // VAPO's value pre-training: train the critic only, leave the policy (and
  // the weight version) as they are.
  bool critic_only = false;
  double kl_in_reward_coef = 0.0;
};

struct StepOptions {
  TrainObjective objective = TrainObjective::kPolicyGradient;
  double lr = 1e-3;
  // PG loss (learner/policy_loss.h): clip ranges, dual clip, GSPO sequence
  // ratios, truncated importance sampling.
  PolicyLossOptions policy;
  LossAggregation aggregation = LossAggregation::kTokenMean;
  double norm_length = 1.0;     // seq-mean-token-sum-norm's constant length
  // KL to the reference policy (the weights at the first policy-gradient
  // step) added to the loss with this coefficient (0 = off), estimated per
  // token with k1, k2 or k3.
  double kl_coef = 0.0;
  KlEstimator kl_estimator = KlEstimator::kK3;
  double entropy_coef = 0.0;    // entropy bonus (subtracted from the loss)
  double nll_coef = 0.0;        // NLL on positive examples (reward > 0)
  double temperature = 1.0;     // logits are divided by it, as when sampling
  // MoE router losses: load balancing (1.0 = balanced) and z-loss, each a
  // token-weighted mean over micro-batches.
  double aux_loss_coef = 0.01;
  double router_z_loss_coef = 0.0;
  // Tokens (prompt + response) per micro-batch; <= 0: one per rank.
  int64_t micro_batch_tokens = 4096;
  // Multi-token-prediction loss (models with an MTP block): cross-entropy of
  // the token after next on response tokens. SFT steps train the whole model
  // with it (DeepSeek-V3 style); policy-gradient steps train the MTP block
  // alone, so the policy update is exactly the one without MTP.
  double mtp_loss_coef = 0.1;
  double grad_clip = 1.0;       // 0 = off
  // bf16 mixed precision (learner/mixed_precision.h): forward and backward
  // matmuls in bfloat16, weights, gradients and AdamW state in float32.
  bool bf16 = false;
  // Activation checkpointing of every decoder block (policy, reference-free
  // forwards and critic): less memory, about one extra forward of compute.
  bool checkpoint_activations = false;
  CriticOptions critic;
};

struct StepStats {
  double loss = 0.0;           // mean per-token loss over the global batch
  double grad_norm = 0.0;
  double clip_fraction = 0.0;  // PG: fraction of tokens whose ratio was clipped
  double approx_kl = 0.0;      // PG: k3 estimate of KL(old || new)
  double ref_kl = 0.0;         // PG with kl_coef: mean per-token KL to the reference
  // The loss or the gradient norm was NaN/Inf: the update was not applied and
  // the weight version did not change.
  bool skipped = false;
  std::string skip_reason;
  double entropy = 0.0;        // PG: mean per-token entropy of the policy
  double mtp_loss = 0.0;       // MTP cross-entropy per predicted token (0 without MTP)
  int64_t tokens = 0;          // response tokens in the global batch
  int64_t micro_batches = 0;   // this rank's forward/backward passes
  // False when the policy was not updated (skipped, or critic_only).
  bool policy_updated = true;
  // With a critic: mean per-token clipped value loss, mean pre-update value,
  // mean value target, fraction of tokens whose value was clipped.
  double value_loss = 0.0;
  double value_mean = 0.0;
  double return_mean = 0.0;
  double value_clip_fraction = 0.0;
  // Of the token positions this rank's forwards computed, the fraction that
  // held no token of the batch (padding).
  double padding_fraction = 0.0;
  int64_t weight_version = 0;  // version after the step
};

struct CheckpointOptions {
  // > 0: `dir` is a root; the checkpoint goes to DIR/version-NNNNNNNNN,
  // DIR/latest names it, and only the newest keep_last are kept. 0: write
  // into `dir` itself, replacing what was there.
  int keep_last = 0;
  // Stored and handed back by LoadCheckpoint (the controller's data cursor).
  std::string client_state;
};

struct ResumePoint {
  std::string directory;  // the checkpoint loaded
  int64_t weight_version = 0;
  int64_t optimizer_steps = 0;
  std::string client_state;
};

class Trainer {
 public:
  // `group` may be null (single rank); not owned.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(const RunConfig& config,
                                                         int64_t vocab_size,
                                                         ProcessGroupHandle* group);
  ~Trainer();

  absl::StatusOr<StepStats> Step(const std::vector<TrainExample>& batch,
                                 const StepOptions& options);

  int64_t weight_version() const;
  std::vector<RawTensor> ExportWeights() const;
  std::string Describe() const;
  // Writes a checkpoint (docs/checkpoints.md, "Trainer checkpoints"): the
  // model as Hugging Face files plus optimizer state, the KL reference,
  // counters, RNG state and `options.client_state`, each file checksummed.
  // The directory appears atomically (written as DIR.tmp, then renamed).
  // Returns the directory written.
  absl::StatusOr<std::string> SaveCheckpoint(const std::string& dir,
                                             const CheckpointOptions& options = {}) const;
  // Restores everything SaveCheckpoint wrote, so that further steps are
  // bit-identical to a run that never stopped. `dir` is a checkpoint or a
  // root written with keep_last (its newest complete checkpoint is taken).
  // Corrupt or mismatched checkpoints are errors naming the file; the
  // trainer is unchanged unless everything checks out.
  absl::StatusOr<ResumePoint> LoadCheckpoint(const std::string& dir);

 private:
  struct Impl;
  explicit Trainer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rlpost
