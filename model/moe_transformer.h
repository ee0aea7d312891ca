#pragma once
// A decoder-only Mixture-of-Experts transformer in LibTorch covering the
// Qwen3-MoE, Qwen2-MoE, Mixtral and OLMoE families and our own rlpost_moe
// (see model_config.h): RMSNorm, rotary embeddings, grouped-query attention
// with a KV cache, optional q/k norm, MoE feed-forwards with softmax top-k
// routing over SwiGLU experts run as grouped work, optional shared expert,
// dense layers where the config says so, tied or untied embeddings and an
// optional multi-token-prediction (MTP) block. The rollout engine samples
// from it and the learner trains it, so both share exactly this code.
//
// Thread-safety: Forward()/MtpForward() under torch::NoGradGuard may run
// concurrently from several threads (they read parameters only); training
// and ImportWeights must be exclusive.

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
#include "model/model_config.h"
#include "model/moe_layers.h"
#include "model/raw_tensor.h"

namespace rlpost {

// Keys and values of every layer for a batch decoded together. Rows are left
// padded so that all rows append at the same column.
struct KvCache {
  std::vector<at::Tensor> k;  // per layer [B, n_kv_heads, capacity, head_dim]
  std::vector<at::Tensor> v;
  int64_t length = 0;         // columns filled so far
};

struct PagedForward;

struct ForwardOptions {
  KvCache* cache = nullptr;
  // Paged keys/values (rollout engine; paged_kv.h). When set, `cache` must be
  // null and Forward's positions and key_mask arguments are ignored (pass
  // undefined tensors): the PagedForward carries both.
  const PagedForward* paged = nullptr;
  // Router replay: per layer (indexed by layer number; undefined for dense
  // layers) the [B*T, k] expert ids to use instead of routing.
  const std::vector<at::Tensor>* replay_expert_ids = nullptr;
  // [B*T] bool: the tokens replay applies to (null = all); the others route
  // as usual, e.g. prompt tokens whose routing the rollout did not record.
  const at::Tensor* replay_token_mask = nullptr;
  // Packed training rows (learner): tokens is one row [1,T] holding
  // sequences of these lengths back to back; positions restart at 0 in each,
  // key_mask is all true, and attention stays within each sequence. No cache.
  const std::vector<int64_t>* segments = nullptr;
  // [N] int64 indices into the B*T flattened columns: logits are computed
  // only there and come back as [N, vocab] (the learner needs them only
  // where a response token is predicted). Null: every column, [B,T,vocab].
  const at::Tensor* logit_rows = nullptr;
  // Activation checkpointing (training; model/block_checkpoint.h): blocks
  // keep only their inputs and recompute during backward. Ignored without
  // autograd or with a KV cache.
  bool checkpoint_activations = false;
  bool record_routing = false;  // fill ForwardOutput::routing
  // aux_loss and z_loss; sampling has no use for them, so it turns them off.
  bool router_losses = true;
};

struct ForwardOutput {
  at::Tensor logits;    // [B, T, vocab], or [N, vocab] with logit_rows
  at::Tensor hidden;    // [B, T, D] last layer's output before the final norm (MTP input)
  // Scalars, zero when ForwardOptions::router_losses is off.
  at::Tensor aux_loss;  // load-balancing loss, mean over MoE layers (1.0 = balanced)
  at::Tensor z_loss;    // router z-loss, mean over MoE layers
  // Per layer when record_routing (empty records for dense layers); rows are
  // the B*T tokens in row-major order.
  std::vector<RouterRecord> routing;
};

// DeepSeek-V3 style MTP block: combines the main model's hidden state at i
// with the embedding of token i+1 and predicts token i+2 through the shared
// output head.
class MtpBlockImpl : public torch::nn::Module {
 public:
  explicit MtpBlockImpl(const ModelConfig& config);

 private:
  friend class MoeTransformerImpl;
  RmsNorm enorm_{nullptr}, hnorm_{nullptr}, head_norm_{nullptr};
  torch::nn::Linear eh_proj_{nullptr};
  DecoderBlock block_{nullptr};
};
TORCH_MODULE(MtpBlock);

class MoeTransformerImpl : public torch::nn::Module {
 public:
  // `config` must pass Validate().
  explicit MoeTransformerImpl(const ModelConfig& config);

  const ModelConfig& config() const { return config_; }

  // tokens, positions: [B,T] int64. key_mask: [B, cache_len + T] bool, true
  // where a column holds a real (non-pad) token. With a cache, the new keys
  // and values are written at columns [cache->length, cache->length + T) and
  // cache->length advances by T. Token ids outside [0, vocab_size) throw
  // c10::Error naming the id (see CheckTokenIds for a Status).
  ForwardOutput Forward(const at::Tensor& tokens, const at::Tensor& positions,
                        const at::Tensor& key_mask, const ForwardOptions& options);
  ForwardOutput Forward(const at::Tensor& tokens, const at::Tensor& positions,
                        const at::Tensor& key_mask, KvCache* cache) {
    ForwardOptions o;
    o.cache = cache;
    return Forward(tokens, positions, key_mask, o);
  }

  // MTP head (config().mtp_layers == 1). hidden [B,T,D] from Forward at
  // columns i, next_tokens [B,T] the tokens at i+1, positions those of i.
  // key_mask [B, cache_len + T] as for Forward. Returns logits [B,T,vocab]
  // for the tokens at i+2. `cache` comes from NewMtpCache. With
  // `train_shared` false, gradients stop at `hidden` and at the shared
  // embedding and output head, so a loss on these logits trains the MTP
  // block alone (a drafter trained during RL without moving the policy).
  // `segments` and `logit_rows` as in ForwardOptions (packed rows, logits at
  // chosen columns only).
  at::Tensor MtpForward(const at::Tensor& hidden, const at::Tensor& next_tokens,
                        const at::Tensor& positions, const at::Tensor& key_mask, KvCache* cache,
                        bool train_shared = true,
                        const std::vector<int64_t>* segments = nullptr,
                        const at::Tensor* logit_rows = nullptr);
  // The same over paged keys/values (sampling only), kept in layer
  // `kv_layer` of the paged pool (the rollout engine gives the MTP block the
  // layer after the main model's, so it shares the sequences' block tables).
  // Returns {logits, hidden}: the block's output before its head norm can be
  // fed back as `hidden` to draft further tokens.
  std::pair<at::Tensor, at::Tensor> MtpForwardPaged(const at::Tensor& hidden,
                                                    const at::Tensor& next_tokens,
                                                    const PagedForward& paged,
                                                    int64_t kv_layer = 0);

  absl::Status CheckTokenIds(const at::Tensor& tokens) const;

  // Total number of parameter elements (MTP block included).
  int64_t ParameterCount() const;

  KvCache NewCache(int64_t batch, int64_t capacity) const;
  KvCache NewMtpCache(int64_t batch, int64_t capacity) const;

  // Parameters under their Hugging Face names, converted to `dtype`.
  std::vector<RawTensor> ExportWeights(RawDType dtype = RawDType::kFloat32) const;
  // Copies weights in (float32 or bfloat16). Every parameter must be present
  // with its shape; a missing, unexpected or mis-shaped tensor is an error
  // naming it and nothing changes unless all checks pass. With tied
  // embeddings an lm_head.weight in the input is ignored.
  absl::Status ImportWeights(const std::vector<RawTensor>& tensors);

  // Our module name ("layers.0.mlp.experts.1.up_proj.weight") as the
  // Hugging Face name of this model family.
  std::string HfName(const std::string& module_name) const;

 private:
  void InitWeights();
  at::Tensor OutputHead(const at::Tensor& normed_hidden, bool detach_weight = false);
  std::pair<at::Tensor, at::Tensor> Rotary(const at::Tensor& positions, at::ScalarType type) const;
  static at::Tensor AttentionMask(const at::Tensor& key_mask, int64_t past, int64_t t);
  // Causal [1,1,M,M] mask for the longest of packed `segments` (checked to
  // cover the t columns of one row).
  static at::Tensor PackedMask(const std::vector<int64_t>& segments, int64_t b, int64_t t,
                               const at::Device& device);

  ModelConfig config_;
  torch::nn::Embedding embed_tokens_{nullptr};
  torch::nn::ModuleList layers_;
  RmsNorm norm_{nullptr};
  torch::nn::Linear lm_head_{nullptr};
  MtpBlock mtp_{nullptr};
  at::Tensor inv_freq_;
};
TORCH_MODULE(MoeTransformer);

// A tensor's values as a RawTensor named `name`, converted to `dtype`
// (float32 or bfloat16).
RawTensor ToRawTensor(const std::string& name, const at::Tensor& tensor,
                      RawDType dtype = RawDType::kFloat32);

// Left-padded batch of token sequences, ready for Forward().
struct PaddedBatch {
  at::Tensor tokens;     // [B,T] int64 (pad = 0)
  at::Tensor positions;  // [B,T] int64
  at::Tensor mask;       // [B,T] bool
  std::vector<int64_t> lengths;
};
PaddedBatch LeftPad(const std::vector<std::vector<int>>& sequences);

}  // namespace rlpost
