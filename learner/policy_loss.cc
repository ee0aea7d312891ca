#include "learner/policy_loss.h"

#include <torch/utils.h>

#include "absl/strings/str_cat.h"

namespace rlpost {

absl::StatusOr<LossAggregation> ParseLossAggregation(absl::string_view name) {
  if (name == "token-mean") return LossAggregation::kTokenMean;
  if (name == "seq-mean-token-mean") return LossAggregation::kSeqMeanTokenMean;
  if (name == "seq-mean-token-sum-norm") return LossAggregation::kSeqMeanTokenSumNorm;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown loss aggregation '", name,
      "'; valid: token-mean, seq-mean-token-mean, seq-mean-token-sum-norm"));
}

at::Tensor AggregateLoss(const at::Tensor& token_values, const at::Tensor& mask,
                         const LossScale& scale) {
  const at::Tensor masked = token_values * mask;
  switch (scale.mode) {
    case LossAggregation::kTokenMean:
      return masked.sum() / static_cast<double>(scale.global_tokens);
    case LossAggregation::kSeqMeanTokenMean: {
      const at::Tensor lengths = mask.sum(1).clamp_min(1.0);
      return (masked.sum(1) / lengths).sum() / static_cast<double>(scale.global_sequences);
    }
    case LossAggregation::kSeqMeanTokenSumNorm:
      return masked.sum() / (scale.norm_length * static_cast<double>(scale.global_sequences));
  }
  return masked.sum();
}

PolicyLossTerms PolicyGradientLoss(const at::Tensor& logp, const at::Tensor& rollout_logp,
                                   const at::Tensor& advantages, const at::Tensor& mask,
                                   const PolicyLossOptions& options) {
  // With truncated importance sampling the PPO ratio is taken against the
  // learner's own behaviour logprobs (at this forward the parameters are the
  // behaviour policy's, so they are logp detached), and the rollout-vs-learner
  // mismatch goes into a capped, detached per-token weight.
  const bool tis = options.tis_cap > 0;
  const at::Tensor old = tis ? logp.detach() : rollout_logp;
  at::Tensor log_ratio = (logp - old) * mask;
  if (options.sequence_ratio) {
    // GSPO: the sequence's mean log-ratio for every token of it; the
    // gradient reaches every token through the mean.
    const at::Tensor lengths = mask.sum(1, /*keepdim=*/true).clamp_min(1.0);
    log_ratio = (log_ratio.sum(1, /*keepdim=*/true) / lengths).expand_as(logp) * mask;
  }
  const at::Tensor ratio = at::exp(log_ratio);
  const at::Tensor adv = advantages.expand_as(logp);
  const at::Tensor surr1 = ratio * adv;
  const at::Tensor surr2 = at::clamp(ratio, 1.0 - options.clip_low, 1.0 + options.clip_high) * adv;
  at::Tensor loss = -at::min(surr1, surr2);
  at::Tensor clipped, weight;
  {
    torch::NoGradGuard no_grad;
    clipped = (surr2 < surr1).to(logp.scalar_type()) * mask;
    if (tis) weight = at::exp(logp.detach() - rollout_logp).clamp_max(options.tis_cap);
  }
  if (options.dual_clip > 1.0) {
    // For A < 0 the surrogate grows without bound as the ratio grows; cap the
    // loss at -c * A there.
    loss = at::where(adv < 0, at::min(loss, -options.dual_clip * adv), loss);
  }
  if (tis) loss = loss * weight;
  return {loss, clipped};
}

}  // namespace rlpost
