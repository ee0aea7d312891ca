#pragma once
// One micro-batch as a packed row (LibTorch; learner internal): the tensors a
// training forward and its losses need, built from TrainExamples.
//
// Layout: sequence s (prompt P_s + response R_s tokens) sits at columns
// [o_s, o_s + P_s + R_s) of one row; positions restart at 0 in each. Column
// o_s + P_s - 1 + j predicts response token j. Per-token values for the
// losses live in an [S, L] grid (row s, column j = response token j,
// L = the longest response), which is what learner/policy_loss.h takes.

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "learner/trainer.h"
#include "model/model_config.h"

namespace rlpost {

struct PackedRow {
  at::Tensor tokens;     // [1, T] int64
  at::Tensor positions;  // [1, T] int64
  at::Tensor key_mask;   // [1, T] bool, all true
  std::vector<int64_t> segments;  // P_s + R_s per sequence
  // Columns predicting response tokens and the tokens they predict, in
  // sequence order.
  at::Tensor logit_rows;  // [N] int64
  at::Tensor targets;     // [N] int64
  at::Tensor slots;       // [N] int64: s * L + j, the token's cell in the grid
  int64_t sequences = 0;  // S
  int64_t width = 0;      // L
  at::Tensor mask;        // [S, L] float: 1 at response tokens
  at::Tensor old_logprobs;  // [S, L] float (policy gradient only, else zeros)
  at::Tensor advantages;    // [S, 1] float
  at::Tensor positive;      // [S, 1] float: 1 where reward > 0
  // Multi-token prediction: the token after each column within its sequence
  // (0 at a sequence's last column) and the columns whose token two ahead is
  // a response token, with those tokens.
  at::Tensor mtp_next;     // [1, T] int64
  at::Tensor mtp_rows;     // [M] int64
  at::Tensor mtp_targets;  // [M] int64
  // Router replay (any example with routed_experts): per layer [T, k] ids
  // (undefined for dense layers) and the [T] columns they apply to.
  std::vector<at::Tensor> replay;
  at::Tensor replay_rows;
};

// `examples` must have passed the trainer's checks.
PackedRow PackExamples(const std::vector<const TrainExample*>& examples,
                       const ModelConfig& config);

// Moves the row's tensors to `device` (PackExamples builds them on the CPU).
void MoveToDevice(PackedRow* row, const c10::Device& device);

// Places per-token values [N] (in logit_rows order) into the [S, L] grid,
// zeros elsewhere; differentiable in `values`.
at::Tensor ToGrid(const PackedRow& row, const at::Tensor& values);

}  // namespace rlpost
