#pragma once
// Options of the policy-gradient loss, as plain types (the trainer's API and
// the learner service include this without LibTorch). The loss itself:
// learner/policy_loss.h.

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rlpost {

enum class LossAggregation { kTokenMean, kSeqMeanTokenMean, kSeqMeanTokenSumNorm };

// "token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"; anything
// else is INVALID_ARGUMENT listing them.
absl::StatusOr<LossAggregation> ParseLossAggregation(absl::string_view name);

struct PolicyLossOptions {
  double clip_low = 0.2;   // ratio floor 1 - clip_low
  double clip_high = 0.2;  // ratio ceiling 1 + clip_high
  double dual_clip = 0.0;  // c > 1 turns dual clip on; 0 = off
  bool sequence_ratio = false;  // GSPO
  double tis_cap = 0.0;         // > 0 turns truncated importance sampling on
};

}  // namespace rlpost
