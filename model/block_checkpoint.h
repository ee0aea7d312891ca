#pragma once
// Activation checkpointing of decoder blocks (model internal): a block's
// forward keeps only its input; backward runs the block again with autograd
// on and back-propagates through that recomputation (the reentrant scheme of
// torch.utils.checkpoint). Memory per layer drops from every intermediate
// activation to one [B, T, D] input, for about one extra forward of compute.
//
// Recomputation reproduces the forward exactly: routing is deterministic, the
// same router replay applies, and the autocast state of the forward is
// restored for it. Everything `kv` and `routing` point to must outlive the
// backward pass.

#include <ATen/ATen.h>

#include <tuple>

#include "model/moe_layers.h"

namespace rlpost {

// Returns the block's output and its load-balancing and z-loss contributions
// (zero scalars when routing asks for none), each differentiable.
std::tuple<at::Tensor, at::Tensor, at::Tensor> CheckpointedBlockForward(
    const DecoderBlock& block, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
    const at::Tensor& mask, const KvAccess& kv, int64_t layer, const RoutingContext& routing);

}  // namespace rlpost
