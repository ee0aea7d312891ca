#pragma once
// The policy-gradient loss menu on token tensors (LibTorch; learner only).
//
// Shapes: [B, T] for logprobs, masks and per-token advantages (a per-sequence
// advantage broadcasts as [B, 1]). Masks are 1 on response tokens, 0
// elsewhere. Everything returns *sums* over this rank's rows scaled by global
// counts, so that data-parallel ranks add up to the loss of one rank over the
// whole batch (see trainer.h).
//
// - PPO clipped surrogate with separate low and high clip ranges (DAPO's
//   clip-higher: clip_high > clip_low), optional dual clip (Ye et al. 2020:
//   for negative advantages the loss is capped at -c * A), and sequence-level
//   ratios (GSPO, Zheng et al. 2025: one ratio per sequence, the exponential of
//   the mean token log-ratio).
// - Truncated importance sampling (Yao et al. 2025): the rollout engine's
//   logprobs differ slightly from the learner's, so each token's loss is
//   weighted by min(pi_learner_behavior / pi_rollout, cap), detached.
// - Aggregation: token-mean (every token of the global batch counts the
//   same), seq-mean-token-mean (each sequence's token mean, then the mean over
//   sequences), seq-mean-token-sum-norm (Dr. GRPO: each sequence's token sum
//   divided by a constant length, then the mean over sequences).

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "learner/loss_options.h"

namespace rlpost {

// Global counts the aggregation divides by.
struct LossScale {
  LossAggregation mode = LossAggregation::kTokenMean;
  int64_t global_tokens = 1;     // response tokens of the whole batch
  int64_t global_sequences = 1;  // sequences of the whole batch
  double norm_length = 1.0;      // seq-mean-token-sum-norm's constant
};

// Sum over this rank's rows of `token_values` aggregated as `scale` says.
at::Tensor AggregateLoss(const at::Tensor& token_values, const at::Tensor& mask,
                         const LossScale& scale);

struct PolicyLossTerms {
  at::Tensor token_loss;  // [B, T] per-token surrogate loss (before aggregation, masked later)
  at::Tensor clipped;     // [B, T] 1 where the clipped branch was taken (no grad)
};

// `logp` carries the gradient; `rollout_logp` are the sampling logprobs.
PolicyLossTerms PolicyGradientLoss(const at::Tensor& logp, const at::Tensor& rollout_logp,
                                   const at::Tensor& advantages, const at::Tensor& mask,
                                   const PolicyLossOptions& options);

}  // namespace rlpost
