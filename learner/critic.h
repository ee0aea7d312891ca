#pragma once
// The critic of PPO with GAE (LibTorch; learner only): a separate value
// model, the policy's architecture with a value head (RMSNorm, then a linear
// map to one number) in place of the output head, as verl and OpenRLHF
// build theirs. It starts from the policy's weights at the first step that
// needs it (the SFT model, the usual choice) with a zero value head, and has
// its own AdamW.
//
// A value V_t belongs to the column that predicts response token t: the
// state is the prompt plus the response before t.

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adamw.h>

#include <memory>
#include <string>
#include <vector>

#include "learner/packed_batch.h"
#include "model/moe_transformer.h"
#include "model/raw_tensor.h"

namespace rlpost {

class Critic {
 public:
  // Copies `policy`'s weights into the trunk.
  Critic(const MoeTransformer& policy, double weight_decay);

  // [N] values at row.logit_rows (with a gradient unless under
  // NoGradGuard), optionally with activation checkpointing.
  at::Tensor Values(const PackedRow& row, bool checkpoint_activations = false);

  std::vector<at::Tensor> parameters() const;
  // Parameters under checkpoint names: the trunk's Hugging Face names, and
  // "score.weight" / "score_norm.weight" for the head.
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;
  torch::optim::AdamW& optimizer() { return *optimizer_; }

  std::vector<RawTensor> ExportWeights() const;
  // Every tensor must be present with its shape; nothing changes otherwise.
  absl::Status ImportWeights(const std::vector<RawTensor>& tensors);

 private:
  MoeTransformer trunk_;
  RmsNorm norm_{nullptr};
  torch::nn::Linear score_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
};

// Clipped value loss (PPO2): 0.5 * max((V - R)^2, (V_old + clip(V - V_old,
// -c, c) - R)^2) per token; c <= 0 leaves it unclipped. Also returns a [S, L]
// mask of tokens where the clipped branch was larger (no grad).
std::pair<at::Tensor, at::Tensor> ClippedValueLoss(const at::Tensor& values,
                                                   const at::Tensor& old_values,
                                                   const at::Tensor& returns, double clip);

}  // namespace rlpost
