#pragma once
// A small decoder-only Mixture-of-Experts transformer in LibTorch: RMSNorm,
// rotary embeddings, grouped-query attention with a KV cache, and MoE
// feed-forward layers with softmax top-k routing over SwiGLU experts. The
// rollout engine samples from it and the learner trains it, so both share
// exactly this code. Parameter names follow Hugging Face's MoE models
// (model.layers.N.mlp.experts.E.gate_proj.weight, ...).
//
// Thread-safety: Forward() under torch::NoGradGuard may run concurrently from
// several threads (it reads parameters only); training and weight loads must
// be exclusive.

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/run_config.h"
#include "model/raw_tensor.h"

namespace rlpost {

struct ModelConfig {
  int64_t vocab_size = 99;
  int64_t n_layers = 2;
  int64_t d_model = 96;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 2;
  int64_t n_experts = 4;
  int64_t top_k = 2;
  int64_t expert_hidden = 128;
  int64_t max_seq_len = 96;
  double rope_theta = 10000.0;
  double rms_eps = 1e-6;
  bool norm_topk_prob = true;
  uint64_t init_seed = 7;

  static ModelConfig FromShape(const ModelShape& shape, int64_t vocab_size);
  int64_t head_dim() const { return d_model / n_heads; }
  std::string Describe() const;
  // Hugging Face style config.json text.
  std::string ToConfigJson() const;
};

// Keys and values of every layer for a batch decoded together. Rows are left
// padded so that all rows append at the same column.
struct KvCache {
  std::vector<at::Tensor> k;  // per layer [B, n_kv_heads, capacity, head_dim]
  std::vector<at::Tensor> v;
  int64_t length = 0;         // columns filled so far
};

struct ForwardOutput {
  at::Tensor logits;    // [B, T, vocab]
  at::Tensor aux_loss;  // scalar: MoE load-balancing loss, mean over layers
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
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     const at::Tensor& mask, KvCache* cache, int64_t layer);

 private:
  ModelConfig config_;
  torch::nn::Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, o_proj_{nullptr};
};
TORCH_MODULE(Attention);

class ExpertImpl : public torch::nn::Module {
 public:
  ExpertImpl(int64_t d_model, int64_t hidden);
  at::Tensor forward(const at::Tensor& x);

 private:
  torch::nn::Linear gate_proj_{nullptr}, up_proj_{nullptr}, down_proj_{nullptr};
};
TORCH_MODULE(Expert);

class MoeFeedForwardImpl : public torch::nn::Module {
 public:
  explicit MoeFeedForwardImpl(const ModelConfig& config);
  // x [N,D] -> [N,D]; adds this layer's load-balancing loss to *aux_loss.
  at::Tensor forward(const at::Tensor& x, at::Tensor* aux_loss);

 private:
  ModelConfig config_;
  torch::nn::Linear gate_{nullptr};
  torch::nn::ModuleList experts_;
};
TORCH_MODULE(MoeFeedForward);

class DecoderBlockImpl : public torch::nn::Module {
 public:
  explicit DecoderBlockImpl(const ModelConfig& config);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     const at::Tensor& mask, KvCache* cache, int64_t layer,
                     at::Tensor* aux_loss);

 private:
  RmsNorm input_layernorm_{nullptr}, post_attention_layernorm_{nullptr};
  Attention self_attn_{nullptr};
  MoeFeedForward mlp_{nullptr};
};
TORCH_MODULE(DecoderBlock);

class MoeTransformerImpl : public torch::nn::Module {
 public:
  explicit MoeTransformerImpl(const ModelConfig& config);

  const ModelConfig& config() const { return config_; }

  // tokens, positions: [B,T] int64. key_mask: [B, cache_len + T] bool, true
  // where a column holds a real (non-pad) token. With a cache, the new keys
  // and values are written at columns [cache->length, cache->length + T) and
  // cache->length advances by T.
  ForwardOutput Forward(const at::Tensor& tokens, const at::Tensor& positions,
                        const at::Tensor& key_mask, KvCache* cache);

  KvCache NewCache(int64_t batch, int64_t capacity) const;

  // Parameters under their Hugging Face names, as float32 bytes.
  std::vector<RawTensor> ExportWeights() const;
  // Copies weights in; every parameter must be present with its shape.
  // Nothing changes unless all checks pass.
  absl::Status ImportWeights(const std::vector<RawTensor>& tensors);

 private:
  void InitWeights();

  ModelConfig config_;
  torch::nn::Embedding embed_tokens_{nullptr};
  torch::nn::ModuleList layers_;
  RmsNorm norm_{nullptr};
  torch::nn::Linear lm_head_{nullptr};
  at::Tensor inv_freq_;
};
TORCH_MODULE(MoeTransformer);

// Left-padded batch of token sequences, ready for Forward().
struct PaddedBatch {
  at::Tensor tokens;     // [B,T] int64 (pad = 0)
  at::Tensor positions;  // [B,T] int64
  at::Tensor mask;       // [B,T] bool
  std::vector<int64_t> lengths;
};
PaddedBatch LeftPad(const std::vector<std::vector<int>>& sequences);

}  // namespace rlpost
