#pragma once
// Trainer internals shared by trainer.cc (steps) and trainer_checkpoint.cc
// (save and resume). LibTorch; learner only.

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <cstdint>
#include <memory>

#include "learner/critic.h"
#include "learner/packed_batch.h"
#include "learner/policy_loss.h"
#include "learner/trainer.h"
#include "model/device.h"
#include "model/moe_transformer.h"

namespace rlpost {

struct Trainer::Impl {
  Impl(const ModelConfig& config, const RunConfig& run, const c10::Device& on)
      : device(on),
        model(Placed(MoeTransformer(config), on)),
        optimizer(model->parameters(),
                  torch::optim::AdamWOptions(run.rl_lr)
                      .betas({0.9, 0.99})
                      .weight_decay(run.weight_decay)),
        weight_decay(run.weight_decay) {}
  static MoeTransformer Placed(MoeTransformer m, const c10::Device& on) {
    m->to(on);
    return m;
  }

  // Where the policy, its optimizer state, the reference policy, the critic
  // and each micro-batch live (learner.device).
  c10::Device device;
  MoeTransformer model;
  torch::optim::AdamW optimizer;
  // The frozen reference policy of the KL term: the weights at the first
  // policy-gradient step that asks for it (after any SFT warm start).
  MoeTransformer reference{nullptr};
  // The value model of PPO with GAE, made at the first step that needs it.
  std::unique_ptr<Critic> critic;
  double weight_decay = 0.0;
  ProcessGroupHandle* group = nullptr;
  int64_t version = 0;
  int64_t steps = 0;

  // The loss of one packed micro-batch, scaled so that micro-batches and
  // ranks sum to the whole batch's loss; adds its statistics to `local`
  // (see Step).
  at::Tensor MicroBatchLoss(const PackedRow& row, const StepOptions& options,
                            const LossScale& scale, int64_t global_positions, at::Tensor& local);

  // PPO with a critic, before any update: the critic's values, GAE
  // advantages (whitened over every rank's tokens) into each row's
  // `advantages`, and the value targets. Fills `old_values` and `returns`
  // ([S, L] per row).
  absl::Status PrepareGae(std::vector<PackedRow>& rows,
                          const std::vector<std::vector<const TrainExample*>>& examples,
                          const StepOptions& options, std::vector<at::Tensor>& old_values,
                          std::vector<at::Tensor>& returns);
};

}  // namespace rlpost
