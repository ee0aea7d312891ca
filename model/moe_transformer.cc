#include "model/moe_transformer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/match.h"
#include "model/block_checkpoint.h"
#include "model/paged_kv.h"

namespace rlpost {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return absl::EndsWith(s, suffix);
}

}  // namespace

MtpBlockImpl::MtpBlockImpl(const ModelConfig& config) {
  enorm_ = register_module("enorm", RmsNorm(config.d_model, config.rms_eps));
  hnorm_ = register_module("hnorm", RmsNorm(config.d_model, config.rms_eps));
  eh_proj_ = register_module("eh_proj", torch::nn::Linear(torch::nn::LinearOptions(
                                            2 * config.d_model, config.d_model).bias(false)));
  // The block is MoE when the model has experts at all (as in DeepSeek-V3).
  block_ = register_module("block", DecoderBlock(config, config.n_experts > 0));
  auto head = std::make_shared<torch::nn::Module>();
  head_norm_ = head->register_module("norm", RmsNorm(config.d_model, config.rms_eps));
  register_module("shared_head", head);
}

MoeTransformerImpl::MoeTransformerImpl(const ModelConfig& config) : config_(config) {
  embed_tokens_ = register_module("embed_tokens",
                                  torch::nn::Embedding(config.vocab_size, config.d_model));
  layers_ = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.n_layers; ++i) {
    layers_->push_back(DecoderBlock(config, config.IsMoeLayer(i)));
  }
  norm_ = register_module("norm", RmsNorm(config.d_model, config.rms_eps));
  if (!config.tie_word_embeddings) {
    lm_head_ = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(
                                              config.d_model, config.vocab_size).bias(false)));
  }
  if (config.mtp_layers > 0) mtp_ = register_module("mtp", MtpBlock(config));
  // As Hugging Face computes it: float32 exponent arithmetic. A buffer, so
  // that it moves with the module (no host-to-device copy per forward).
  int64_t hd = config.head_dim();
  inv_freq_ = register_buffer(
      "inv_freq",
      1.0 / at::pow(config.rope_theta,
                    at::arange(0, hd, 2, at::kLong).to(at::kFloat) / static_cast<float>(hd)));
  InitWeights();
}

void MoeTransformerImpl::InitWeights() {
  // Our own generator: the same seed gives the same weights whatever else
  // used the global RNG before.
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(config_.init_seed);
  torch::NoGradGuard no_grad;
  double residual_std = 0.02 / std::sqrt(2.0 * static_cast<double>(config_.n_layers));
  for (auto& item : named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    at::Tensor& p = item.value();
    if (EndsWith(name, "norm.weight")) {
      p.fill_(1.0);
    } else if (EndsWith(name, ".bias")) {
      p.zero_();
    } else if (absl::StrContains(name, "o_proj") || absl::StrContains(name, "down_proj")) {
      p.normal_(0.0, residual_std, gen);
    } else {
      p.normal_(0.0, 0.02, gen);
    }
  }
}

KvCache MoeTransformerImpl::NewCache(int64_t batch, int64_t capacity) const {
  KvCache cache;
  auto opts = embed_tokens_->weight.options();
  for (int64_t i = 0; i < config_.n_layers; ++i) {
    cache.k.push_back(at::zeros({batch, config_.n_kv_heads, capacity, config_.head_dim()}, opts));
    cache.v.push_back(at::zeros({batch, config_.n_kv_heads, capacity, config_.head_dim()}, opts));
  }
  return cache;
}

KvCache MoeTransformerImpl::NewMtpCache(int64_t batch, int64_t capacity) const {
  KvCache cache;
  auto opts = embed_tokens_->weight.options();
  cache.k.push_back(at::zeros({batch, config_.n_kv_heads, capacity, config_.head_dim()}, opts));
  cache.v.push_back(at::zeros({batch, config_.n_kv_heads, capacity, config_.head_dim()}, opts));
  return cache;
}

absl::Status MoeTransformerImpl::CheckTokenIds(const at::Tensor& tokens) const {
  if (tokens.numel() == 0) return absl::OkStatus();
  int64_t lo = tokens.min().item<int64_t>(), hi = tokens.max().item<int64_t>();
  if (lo < 0 || hi >= config_.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("token id ", lo < 0 ? lo : hi,
                                                   " is out of range: vocab_size is ",
                                                   config_.vocab_size));
  }
  return absl::OkStatus();
}

int64_t MoeTransformerImpl::ParameterCount() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

std::pair<at::Tensor, at::Tensor> MoeTransformerImpl::Rotary(const at::Tensor& positions,
                                                             at::ScalarType type) const {
  at::ScalarType freq_type = type == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor inv = inv_freq_.to(positions.device(), freq_type);
  if (freq_type == at::kDouble) {
    int64_t hd = config_.head_dim();
    inv = 1.0 / at::pow(config_.rope_theta,
                        at::arange(0, hd, 2, at::TensorOptions().dtype(at::kDouble).device(positions.device())) /
                            static_cast<double>(hd));
  }
  at::Tensor freqs = positions.to(freq_type).unsqueeze(-1) * inv;
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  return {emb.cos().to(type), emb.sin().to(type)};
}

at::Tensor MoeTransformerImpl::AttentionMask(const at::Tensor& key_mask, int64_t past, int64_t t) {
  // Query i (column past + i) sees key columns <= past + i that hold tokens.
  auto opts = at::TensorOptions().dtype(at::kLong).device(key_mask.device());
  at::Tensor q_col = at::arange(past, past + t, opts).unsqueeze(1);
  at::Tensor k_col = at::arange(0, past + t, opts).unsqueeze(0);
  return k_col.le(q_col).unsqueeze(0).unsqueeze(0).logical_and(
      key_mask.unsqueeze(1).unsqueeze(1));  // [B,1,T,L]
}

at::Tensor MoeTransformerImpl::PackedMask(const std::vector<int64_t>& segments, int64_t b,
                                          int64_t t, const at::Device& device) {
  TORCH_CHECK(b == 1, "a packed forward takes one row, got ", b);
  int64_t total = 0, longest = 0;
  for (int64_t n : segments) {
    TORCH_CHECK(n > 0, "packed segment of length ", n);
    total += n;
    longest = std::max(longest, n);
  }
  TORCH_CHECK(total == t, "packed segments cover ", total, " of ", t, " columns");
  return at::ones({longest, longest}, at::TensorOptions().dtype(at::kBool).device(device))
      .tril()
      .view({1, 1, longest, longest});
}

at::Tensor MoeTransformerImpl::OutputHead(const at::Tensor& normed_hidden, bool detach_weight) {
  at::Tensor w = config_.tie_word_embeddings ? embed_tokens_->weight : lm_head_->weight;
  return at::linear(normed_hidden, detach_weight ? w.detach() : w);
}

ForwardOutput MoeTransformerImpl::Forward(const at::Tensor& tokens, const at::Tensor& positions,
                                          const at::Tensor& key_mask,
                                          const ForwardOptions& options) {
  if (absl::Status s = CheckTokenIds(tokens); !s.ok()) TORCH_CHECK(false, s.message());
  KvCache* cache = options.cache;
  const PagedForward* paged = options.paged;
  TORCH_CHECK(cache == nullptr || paged == nullptr, "Forward: both a KV cache and paged KV");
  int64_t b = tokens.size(0), t = tokens.size(1);
  int64_t past = cache != nullptr ? cache->length : 0;
  at::Tensor x = embed_tokens_->forward(tokens);
  auto [cos, sin] = Rotary(paged != nullptr ? paged->positions : positions, x.scalar_type());
  const std::vector<int64_t>* segments = options.segments;
  TORCH_CHECK(segments == nullptr || (cache == nullptr && paged == nullptr),
              "Forward: packed segments with a KV cache");
  at::Tensor mask = paged != nullptr      ? paged->attn_mask
                    : segments != nullptr ? PackedMask(*segments, b, t, tokens.device())
                                          : AttentionMask(key_mask, past, t);
  KvAccess kv;
  kv.cache = cache;
  kv.paged = paged;
  kv.segments = segments;

  ForwardOutput out;
  at::Tensor aux = at::zeros({}, x.options()), z = at::zeros({}, x.options());
  RoutingContext routing;
  routing.token_mask =
      paged != nullptr ? paged->token_mask : key_mask.narrow(1, past, t).reshape({b * t});
  if (options.router_losses) {
    routing.aux_loss = &aux;
    routing.z_loss = &z;
  }
  if (options.record_routing) out.routing.resize(config_.n_layers);
  int64_t moe_layers = 0;
  for (int64_t i = 0; i < config_.n_layers; ++i) {
    auto block = layers_[i]->as<DecoderBlock>();
    routing.record = options.record_routing ? &out.routing[i] : nullptr;
    routing.replay = nullptr;
    if (options.replay_expert_ids != nullptr && block->is_moe()) {
      TORCH_CHECK(static_cast<int64_t>(options.replay_expert_ids->size()) == config_.n_layers &&
                      (*options.replay_expert_ids)[i].defined(),
                  "router replay: no expert ids for layer ", i);
      routing.replay = &(*options.replay_expert_ids)[i];
      routing.replay_rows = options.replay_token_mask;
    }
    moe_layers += block->is_moe() ? 1 : 0;
    if (options.checkpoint_activations && at::GradMode::is_enabled() && cache == nullptr &&
        paged == nullptr && !options.record_routing) {
      auto [y, block_aux, block_z] =
          CheckpointedBlockForward(DecoderBlock(layers_->ptr<DecoderBlockImpl>(i)), x, cos, sin,
                                   mask, kv, i, routing);
      x = y;
      if (routing.aux_loss != nullptr) aux = aux + block_aux.to(aux.scalar_type());
      if (routing.z_loss != nullptr) z = z + block_z.to(z.scalar_type());
    } else {
      x = block->forward(x, cos, sin, mask, kv, i, routing);
    }
  }
  if (cache != nullptr) cache->length = past + t;
  out.hidden = x;
  if (options.logit_rows != nullptr) {
    at::Tensor rows = x.reshape({b * t, x.size(2)}).index_select(0, *options.logit_rows);
    out.logits = OutputHead(norm_->forward(rows));
  } else {
    out.logits = OutputHead(norm_->forward(x));
  }
  double denom = static_cast<double>(std::max<int64_t>(moe_layers, 1));
  out.aux_loss = aux.to(x.scalar_type()) / denom;
  out.z_loss = z.to(x.scalar_type()) / denom;
  return out;
}

at::Tensor MoeTransformerImpl::MtpForward(const at::Tensor& hidden, const at::Tensor& next_tokens,
                                          const at::Tensor& positions, const at::Tensor& key_mask,
                                          KvCache* cache, bool train_shared,
                                          const std::vector<int64_t>* segments,
                                          const at::Tensor* logit_rows) {
  TORCH_CHECK(!mtp_.is_empty(), "this model has no multi-token-prediction block");
  if (absl::Status s = CheckTokenIds(next_tokens); !s.ok()) TORCH_CHECK(false, s.message());
  int64_t b = hidden.size(0), t = hidden.size(1);
  int64_t past = cache != nullptr ? cache->length : 0;
  at::Tensor embed = embed_tokens_->weight;
  at::Tensor e = mtp_->enorm_->forward(
      at::embedding(train_shared ? embed : embed.detach(), next_tokens));
  at::Tensor h = mtp_->hnorm_->forward(train_shared ? hidden : hidden.detach());
  at::Tensor x = mtp_->eh_proj_->forward(at::cat({e, h}, -1));
  auto [cos, sin] = Rotary(positions, x.scalar_type());
  RoutingContext routing;
  routing.token_mask = key_mask.narrow(1, past, t).reshape({b * t});
  TORCH_CHECK(segments == nullptr || cache == nullptr, "MtpForward: packed segments with a KV cache");
  KvAccess kv;
  kv.cache = cache;
  kv.segments = segments;
  at::Tensor mask = segments != nullptr ? PackedMask(*segments, b, t, hidden.device())
                                        : AttentionMask(key_mask, past, t);
  x = mtp_->block_->forward(x, cos, sin, mask, kv, 0, routing);
  if (cache != nullptr) cache->length = past + t;
  if (logit_rows != nullptr) x = x.reshape({b * t, x.size(2)}).index_select(0, *logit_rows);
  return OutputHead(mtp_->head_norm_->forward(x), /*detach_weight=*/!train_shared);
}

std::pair<at::Tensor, at::Tensor> MoeTransformerImpl::MtpForwardPaged(
    const at::Tensor& hidden, const at::Tensor& next_tokens, const PagedForward& paged,
    int64_t kv_layer) {
  TORCH_CHECK(!mtp_.is_empty(), "this model has no multi-token-prediction block");
  if (absl::Status s = CheckTokenIds(next_tokens); !s.ok()) TORCH_CHECK(false, s.message());
  at::Tensor e = mtp_->enorm_->forward(embed_tokens_->forward(next_tokens));
  at::Tensor h = mtp_->hnorm_->forward(hidden);
  at::Tensor x = mtp_->eh_proj_->forward(at::cat({e, h}, -1));
  auto [cos, sin] = Rotary(paged.positions, x.scalar_type());
  RoutingContext routing;
  routing.token_mask = paged.token_mask;
  KvAccess kv;
  kv.paged = &paged;
  x = mtp_->block_->forward(x, cos, sin, paged.attn_mask, kv, kv_layer, routing);
  return {OutputHead(mtp_->head_norm_->forward(x)), x};
}

std::string MoeTransformerImpl::HfName(const std::string& module_name) const {
  if (absl::StartsWith(module_name, "lm_head")) return module_name;
  std::string name;
  if (absl::StartsWith(module_name, "mtp.")) {
    // DeepSeek-V3 layout: the MTP block is layer n_layers.
    std::string rest = module_name.substr(4);
    if (absl::StartsWith(rest, "block.")) rest = rest.substr(6);
    name = absl::StrCat("model.layers.", config_.n_layers, ".", rest);
  } else {
    name = "model." + module_name;
  }
  if (config_.model_type == "mixtral" && absl::StrContains(name, ".mlp.")) {
    name = absl::StrReplaceAll(name, {{".mlp.", ".block_sparse_moe."},
                                      {".gate_proj.", ".w1."},
                                      {".down_proj.", ".w2."},
                                      {".up_proj.", ".w3."}});
  }
  return name;
}

RawTensor ToRawTensor(const std::string& name, const at::Tensor& tensor, RawDType dtype) {
  const at::ScalarType st = dtype == RawDType::kBFloat16 ? at::kBFloat16 : at::kFloat;
  const at::Tensor t = tensor.detach().to(at::kCPU, st).contiguous();
  RawTensor raw;
  raw.name = name;
  raw.dtype = dtype;
  raw.shape = t.sizes().vec();
  raw.bytes.assign(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  return raw;
}

std::vector<RawTensor> MoeTransformerImpl::ExportWeights(RawDType dtype) const {
  std::vector<RawTensor> out;
  for (const auto& item : named_parameters(/*recurse=*/true)) {
    out.push_back(ToRawTensor(HfName(item.key()), item.value(), dtype));
  }
  return out;
}

absl::Status MoeTransformerImpl::ImportWeights(const std::vector<RawTensor>& tensors) {
  std::map<std::string, const RawTensor*> by_name;
  for (const RawTensor& t : tensors) {
    if (!by_name.emplace(t.name, &t).second) {
      return absl::InvalidArgumentError(absl::StrCat("weights: tensor '", t.name, "' given twice"));
    }
  }
  if (config_.tie_word_embeddings) by_name.erase("lm_head.weight");
  auto params = named_parameters(/*recurse=*/true);
  std::map<std::string, at::Tensor> targets;
  for (const auto& item : params) targets[HfName(item.key())] = item.value();
  // Check everything before touching any parameter.
  for (const auto& [name, param] : targets) {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      return absl::InvalidArgumentError(absl::StrCat("weights: tensor '", name, "' missing for ",
                                                     config_.Describe()));
    }
    const RawTensor& raw = *it->second;
    if (raw.shape != param.sizes().vec()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weights: tensor '", name, "' has shape [", absl::StrJoin(raw.shape, ","),
          "], expected [", absl::StrJoin(param.sizes().vec(), ","), "] for ", config_.Describe()));
    }
    if (static_cast<int64_t>(raw.bytes.size()) != raw.numel() * DTypeSize(raw.dtype)) {
      return absl::InvalidArgumentError(
          absl::StrCat("weights: tensor '", name, "' has ", raw.bytes.size(),
                       " bytes, expected ", raw.numel() * DTypeSize(raw.dtype)));
    }
  }
  for (const auto& [name, raw] : by_name) {
    if (targets.count(name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("weights: unexpected tensor '", name,
                                                     "' for ", config_.Describe()));
    }
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, param] : targets) {
    const RawTensor& raw = *by_name[name];
    at::ScalarType st = raw.dtype == RawDType::kFloat32    ? at::kFloat
                        : raw.dtype == RawDType::kBFloat16 ? at::kBFloat16
                                                           : at::kHalf;
    at::Tensor src = at::from_blob(const_cast<char*>(raw.bytes.data()), raw.shape,
                                   at::TensorOptions().dtype(st));
    param.copy_(src);
  }
  return absl::OkStatus();
}

PaddedBatch LeftPad(const std::vector<std::vector<int>>& sequences) {
  PaddedBatch out;
  int64_t b = static_cast<int64_t>(sequences.size());
  int64_t t = 0;
  for (const auto& s : sequences) t = std::max<int64_t>(t, static_cast<int64_t>(s.size()));
  out.tokens = at::zeros({b, t}, at::kLong);
  out.positions = at::zeros({b, t}, at::kLong);
  out.mask = at::zeros({b, t}, at::kBool);
  auto tok = out.tokens.accessor<int64_t, 2>();
  auto pos = out.positions.accessor<int64_t, 2>();
  auto msk = out.mask.accessor<bool, 2>();
  for (int64_t i = 0; i < b; ++i) {
    int64_t len = static_cast<int64_t>(sequences[i].size());
    int64_t pad = t - len;
    for (int64_t j = 0; j < len; ++j) {
      tok[i][pad + j] = sequences[i][j];
      pos[i][pad + j] = j;
      msk[i][pad + j] = true;
    }
    out.lengths.push_back(len);
  }
  return out;
}

}  // namespace rlpost
