#pragma once
// The shape of a Mixture-of-Experts policy, and its Hugging Face config.json.
// No LibTorch: the controller and tools read configs without linking it.
//
// One ModelConfig describes every supported family. The Hugging Face
// `model_type` decides the defaults, which optional pieces exist and the
// parameter names (see docs/checkpoints.md):
//   qwen3_moe   per-head q/k RMSNorm, optional attention bias
//   qwen2_moe   q/k/v bias, shared expert with a sigmoid gate
//   mixtral     block_sparse_moe.experts.E.w1/w2/w3, top-k always renormalised
//   olmoe       q/k RMSNorm over the whole projection
//   rlpost_moe  our own: any combination of the above plus DeepSeek-style
//               leading dense layers, ungated shared experts and a
//               multi-token-prediction (MTP) block.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/run_config.h"

namespace rlpost {

enum class QkNorm { kNone, kPerHead, kFull };

struct ModelConfig {
  std::string model_type = "qwen3_moe";
  int64_t vocab_size = 99;
  int64_t n_layers = 2;
  int64_t d_model = 96;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 2;
  int64_t explicit_head_dim = 0;  // 0: d_model / n_heads
  int64_t max_seq_len = 96;
  double rope_theta = 10000.0;
  double rms_eps = 1e-6;
  QkNorm qk_norm = QkNorm::kPerHead;
  bool qkv_bias = false;
  bool o_bias = false;
  bool tie_word_embeddings = false;

  // Feed-forward. A layer is MoE when n_experts > 0, it is not listed in
  // mlp_only_layers, it is at or past first_k_dense and (i + 1) is a multiple
  // of decoder_sparse_step; other layers are dense SwiGLU of width
  // intermediate_size.
  int64_t n_experts = 4;
  int64_t top_k = 2;
  int64_t expert_hidden = 128;     // moe_intermediate_size
  int64_t intermediate_size = 256; // dense layers
  bool norm_topk_prob = true;
  int64_t decoder_sparse_step = 1;
  int64_t first_k_dense = 0;
  std::vector<int64_t> mlp_only_layers;
  int64_t shared_expert_hidden = 0;  // 0: no shared expert
  bool shared_expert_gate = false;   // Qwen2-MoE's sigmoid gate
  double router_aux_loss_coef = 0.001;

  // Multi-token prediction: 0 or 1 extra block predicting token t+2.
  int64_t mtp_layers = 0;

  uint64_t init_seed = 7;
  // Fields of the config.json this came from that we do not interpret
  // (token ids, initializer_range, ...), kept verbatim for writing back.
  std::string passthrough_json = "{}";

  absl::Status ValidateFamily() const;

  static ModelConfig FromShape(const ModelShape& shape, int64_t vocab_size);
  int64_t head_dim() const {
    return explicit_head_dim > 0 ? explicit_head_dim : d_model / n_heads;
  }
  bool IsMoeLayer(int64_t layer) const;
  // OK when the combination is usable, otherwise says what to fix.
  // Includes the family rules: e.g. qwen3_moe always has per-head q/k norm,
  // mixtral has no dense layers.
  absl::Status Validate() const;
  std::string Describe() const;
  // Hugging Face config.json text; `torch_dtype` names the stored dtype.
  std::string ToConfigJson(const std::string& torch_dtype = "float32") const;
};

// The model_type values ParseConfigJson accepts.
const std::vector<std::string>& SupportedModelTypes();

// Parses a Hugging Face config.json. Unknown model_type, missing required
// fields, wrong field types and unsupported features (rope scaling, sliding
// windows, qkv clipping) give InvalidArgument naming the field.
absl::StatusOr<ModelConfig> ParseConfigJson(const std::string& text);

// Reads the file at `path` and parses it as above; errors start with the path
// (NotFound when it cannot be opened).
absl::StatusOr<ModelConfig> ReadConfigJsonFile(const std::string& path);

}  // namespace rlpost
