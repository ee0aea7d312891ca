#pragma once
// The building blocks of MoeTransformer (internal to model/): RMSNorm,
// attention, dense and MoE SwiGLU feed-forwards and the decoder block.
// Module names follow the Qwen MoE layout; moe_transformer.cc maps them to
// each family's Hugging Face names.

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <vector>

#include "model/model_config.h"

namespace rlpost {

struct KvCache;
struct PagedForward;

// Where attention keeps keys/values across forward calls: nowhere (training,
// scoring), a column-aligned KvCache, or paged blocks (the rollout engine).
// `segments` (training on packed rows): the batch is one row holding several
// sequences of these lengths back to back; attention stays within each of
// them and no cache is used.
struct KvAccess {
  KvCache* cache = nullptr;
  const PagedForward* paged = nullptr;
  const std::vector<int64_t>* segments = nullptr;
};

// What one MoE layer did: inputs for the learner's router losses and for
// router replay.
struct RouterRecord {
  at::Tensor logits;      // [N, E] router logits (before softmax)
  at::Tensor expert_ids;  // [N, k] int64 chosen experts
  at::Tensor weights;     // [N, k] combine weights
};

// Per-forward routing context shared by all MoE layers.
struct RoutingContext {
  at::Tensor token_mask;           // [N] bool: which rows are real tokens (losses)
  const at::Tensor* replay = nullptr;  // [N, k] expert ids to use instead of routing
  // [N] bool: the rows `replay` applies to (others route as usual); null =
  // every row.
  const at::Tensor* replay_rows = nullptr;
  RouterRecord* record = nullptr;  // filled when non-null
  at::Tensor* aux_loss = nullptr;  // accumulated load-balancing loss
  at::Tensor* z_loss = nullptr;    // accumulated router z-loss
};

class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x);

 private:
  at::Tensor weight_;
  double eps_;
};
TORCH_MODULE(RmsNorm);

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const ModelConfig& config);
  // x [B,T,D]; cos/sin [B,T,head_dim]; mask [B,1,T,L] bool (true = attend).
  // With packed segments, mask is a causal [1,1,M,M] for the longest one and
  // each segment attends through its top-left corner. With a cache, keys/values are written at its current length for `layer`;
  // with paged access, at the rows' slots (see paged_kv.h).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     const at::Tensor& mask, const KvAccess& kv, int64_t layer);

 private:
  // q [B,h,T,hd], k/v [B,kvh,L,hd], mask [B,1,T,L] -> [B,h,T,hd].
  at::Tensor Attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const at::Tensor& mask) const;

  ModelConfig config_;
  torch::nn::Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, o_proj_{nullptr};
  RmsNorm q_norm_{nullptr}, k_norm_{nullptr};
};
TORCH_MODULE(Attention);

// gate_proj / up_proj / down_proj SwiGLU: a dense layer, one expert or a
// shared expert.
class SwiGluImpl : public torch::nn::Module {
 public:
  SwiGluImpl(int64_t d_model, int64_t hidden);
  at::Tensor forward(const at::Tensor& x);

 private:
  torch::nn::Linear gate_proj_{nullptr}, up_proj_{nullptr}, down_proj_{nullptr};
};
TORCH_MODULE(SwiGlu);

// Softmax top-k routing over SwiGLU experts, optionally plus a shared expert.
// Tokens are permuted so that each expert's rows are contiguous, each expert
// runs one matmul chain over all of its rows, and results are scattered back.
class MoeFeedForwardImpl : public torch::nn::Module {
 public:
  explicit MoeFeedForwardImpl(const ModelConfig& config);
  // x [N,D] -> [N,D].
  at::Tensor forward(const at::Tensor& x, const RoutingContext& routing);

 private:
  ModelConfig config_;
  torch::nn::Linear gate_{nullptr};
  torch::nn::ModuleList experts_;
  SwiGlu shared_expert_{nullptr};
  torch::nn::Linear shared_expert_gate_{nullptr};
};
TORCH_MODULE(MoeFeedForward);

class DecoderBlockImpl : public torch::nn::Module {
 public:
  DecoderBlockImpl(const ModelConfig& config, bool moe);
  bool is_moe() const { return !moe_.is_empty(); }
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     const at::Tensor& mask, const KvAccess& kv, int64_t layer,
                     const RoutingContext& routing);

 private:
  RmsNorm input_layernorm_{nullptr}, post_attention_layernorm_{nullptr};
  Attention self_attn_{nullptr};
  MoeFeedForward moe_{nullptr};
  SwiGlu dense_{nullptr};
};
TORCH_MODULE(DecoderBlock);

}  // namespace rlpost
