#include "model/moe_transformer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/init.h>
#include <torch/nn/functional/activation.h>
#include <torch/utils.h>

#include <cmath>
#include <cstring>
#include <map>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace rlpost {
namespace {

constexpr float kMaskedScore = -1e9f;

at::Tensor RotateHalf(const at::Tensor& x) {
  int64_t half = x.size(-1) / 2;
  at::Tensor x1 = x.narrow(-1, 0, half);
  at::Tensor x2 = x.narrow(-1, half, half);
  return at::cat({-x2, x1}, -1);
}

}  // namespace

ModelConfig ModelConfig::FromShape(const ModelShape& shape, int64_t vocab_size) {
  ModelConfig c;
  c.vocab_size = vocab_size;
  c.n_layers = shape.n_layers;
  c.d_model = shape.d_model;
  c.n_heads = shape.n_heads;
  c.n_kv_heads = shape.n_kv_heads;
  c.n_experts = shape.n_experts;
  c.top_k = shape.top_k;
  c.expert_hidden = shape.expert_hidden;
  c.max_seq_len = shape.max_seq_len;
  c.rope_theta = shape.rope_theta;
  c.init_seed = static_cast<uint64_t>(shape.init_seed);
  return c;
}

std::string ModelConfig::Describe() const {
  return absl::StrCat("rlpost-moe layers=", n_layers, " d=", d_model, " heads=", n_heads, "/",
                      n_kv_heads, " experts=", n_experts, " top", top_k,
                      " expert_hidden=", expert_hidden, " vocab=", vocab_size,
                      " ctx=", max_seq_len);
}

std::string ModelConfig::ToConfigJson() const {
  nlohmann::json j;
  j["model_type"] = "rlpost_moe";
  j["architectures"] = {"RlpostMoeForCausalLM"};
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = d_model;
  j["num_hidden_layers"] = n_layers;
  j["num_attention_heads"] = n_heads;
  j["num_key_value_heads"] = n_kv_heads;
  j["num_experts"] = n_experts;
  j["num_experts_per_tok"] = top_k;
  j["moe_intermediate_size"] = expert_hidden;
  j["max_position_embeddings"] = max_seq_len;
  j["rope_theta"] = rope_theta;
  j["rms_norm_eps"] = rms_eps;
  j["norm_topk_prob"] = norm_topk_prob;
  j["tie_word_embeddings"] = false;
  j["torch_dtype"] = "float32";
  return j.dump(2);
}

RmsNormImpl::RmsNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight_ = register_parameter("weight", at::ones({dim}));
}

at::Tensor RmsNormImpl::forward(const at::Tensor& x) {
  at::Tensor var = x.pow(2).mean(-1, /*keepdim=*/true);
  return x * at::rsqrt(var + eps_) * weight_;
}

AttentionImpl::AttentionImpl(const ModelConfig& config) : config_(config) {
  int64_t hd = config.head_dim();
  q_proj_ = register_module("q_proj", torch::nn::Linear(torch::nn::LinearOptions(
                                          config.d_model, config.n_heads * hd).bias(false)));
  k_proj_ = register_module("k_proj", torch::nn::Linear(torch::nn::LinearOptions(
                                          config.d_model, config.n_kv_heads * hd).bias(false)));
  v_proj_ = register_module("v_proj", torch::nn::Linear(torch::nn::LinearOptions(
                                          config.d_model, config.n_kv_heads * hd).bias(false)));
  o_proj_ = register_module("o_proj", torch::nn::Linear(torch::nn::LinearOptions(
                                          config.n_heads * hd, config.d_model).bias(false)));
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const at::Tensor& cos,
                                  const at::Tensor& sin, const at::Tensor& mask,
                                  KvCache* cache, int64_t layer) {
  int64_t b = x.size(0), t = x.size(1), hd = config_.head_dim();
  int64_t h = config_.n_heads, kvh = config_.n_kv_heads;
  at::Tensor q = q_proj_->forward(x).view({b, t, h, hd}).transpose(1, 2);
  at::Tensor k = k_proj_->forward(x).view({b, t, kvh, hd}).transpose(1, 2);
  at::Tensor v = v_proj_->forward(x).view({b, t, kvh, hd}).transpose(1, 2);
  at::Tensor c = cos.unsqueeze(1), s = sin.unsqueeze(1);
  q = q * c + RotateHalf(q) * s;
  k = k * c + RotateHalf(k) * s;
  if (cache != nullptr) {
    int64_t start = cache->length;
    cache->k[layer].narrow(2, start, t).copy_(k);
    cache->v[layer].narrow(2, start, t).copy_(v);
    k = cache->k[layer].narrow(2, 0, start + t);
    v = cache->v[layer].narrow(2, 0, start + t);
  }
  if (kvh != h) {
    k = k.repeat_interleave(h / kvh, 1);
    v = v.repeat_interleave(h / kvh, 1);
  }
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(hd));
  scores = scores.masked_fill(mask.logical_not(), kMaskedScore);
  at::Tensor out = at::matmul(at::softmax(scores, -1), v);
  out = out.transpose(1, 2).reshape({b, t, h * hd});
  return o_proj_->forward(out);
}

ExpertImpl::ExpertImpl(int64_t d_model, int64_t hidden) {
  gate_proj_ = register_module(
      "gate_proj", torch::nn::Linear(torch::nn::LinearOptions(d_model, hidden).bias(false)));
  up_proj_ = register_module(
      "up_proj", torch::nn::Linear(torch::nn::LinearOptions(d_model, hidden).bias(false)));
  down_proj_ = register_module(
      "down_proj", torch::nn::Linear(torch::nn::LinearOptions(hidden, d_model).bias(false)));
}

at::Tensor ExpertImpl::forward(const at::Tensor& x) {
  return down_proj_->forward(at::silu(gate_proj_->forward(x)) * up_proj_->forward(x));
}

MoeFeedForwardImpl::MoeFeedForwardImpl(const ModelConfig& config) : config_(config) {
  gate_ = register_module("gate", torch::nn::Linear(torch::nn::LinearOptions(
                                      config.d_model, config.n_experts).bias(false)));
  experts_ = register_module("experts", torch::nn::ModuleList());
  for (int64_t e = 0; e < config.n_experts; ++e) {
    experts_->push_back(Expert(config.d_model, config.expert_hidden));
  }
}

at::Tensor MoeFeedForwardImpl::forward(const at::Tensor& x, at::Tensor* aux_loss) {
  int64_t n = x.size(0), k = config_.top_k, e_count = config_.n_experts;
  at::Tensor probs = at::softmax(gate_->forward(x), -1);
  auto [top_w, top_i] = probs.topk(k, -1);
  if (config_.norm_topk_prob) top_w = top_w / top_w.sum(-1, /*keepdim=*/true);

  // Group the (token, expert) assignments by expert so that each expert runs
  // one matmul over all of its tokens.
  at::Tensor flat_expert = top_i.reshape({-1});
  at::Tensor flat_weight = top_w.reshape({-1});
  at::Tensor flat_token = at::arange(n, x.options().dtype(at::kLong)).repeat_interleave(k);
  at::Tensor order = at::argsort(flat_expert);
  at::Tensor sorted_token = flat_token.index_select(0, order);
  at::Tensor sorted_weight = flat_weight.index_select(0, order);
  at::Tensor counts = at::bincount(flat_expert, /*weights=*/{}, e_count).to(at::kCPU);
  const int64_t* count = counts.data_ptr<int64_t>();

  at::Tensor out = at::zeros_like(x);
  int64_t start = 0;
  for (int64_t e = 0; e < e_count; ++e) {
    int64_t c = count[e];
    if (c == 0) continue;
    at::Tensor tokens = sorted_token.narrow(0, start, c);
    at::Tensor y = experts_[e]->as<Expert>()->forward(x.index_select(0, tokens));
    out = out.index_add(0, tokens, y * sorted_weight.narrow(0, start, c).unsqueeze(1));
    start += c;
  }
  if (aux_loss != nullptr) {
    // Switch-style balance loss: E * sum_e (fraction routed to e) * (mean prob of e).
    at::Tensor fraction = counts.to(x.dtype()).to(x.device()) / static_cast<double>(n * k);
    *aux_loss = *aux_loss + static_cast<double>(e_count) * (fraction * probs.mean(0)).sum();
  }
  return out;
}

DecoderBlockImpl::DecoderBlockImpl(const ModelConfig& config) {
  input_layernorm_ = register_module("input_layernorm", RmsNorm(config.d_model, config.rms_eps));
  self_attn_ = register_module("self_attn", Attention(config));
  post_attention_layernorm_ =
      register_module("post_attention_layernorm", RmsNorm(config.d_model, config.rms_eps));
  mlp_ = register_module("mlp", MoeFeedForward(config));
}

at::Tensor DecoderBlockImpl::forward(const at::Tensor& x, const at::Tensor& cos,
                                     const at::Tensor& sin, const at::Tensor& mask,
                                     KvCache* cache, int64_t layer, at::Tensor* aux_loss) {
  at::Tensor h = x + self_attn_->forward(input_layernorm_->forward(x), cos, sin, mask, cache, layer);
  int64_t b = h.size(0), t = h.size(1), d = h.size(2);
  at::Tensor moe = mlp_->forward(post_attention_layernorm_->forward(h).reshape({b * t, d}), aux_loss);
  return h + moe.view({b, t, d});
}

MoeTransformerImpl::MoeTransformerImpl(const ModelConfig& config) : config_(config) {
  embed_tokens_ = register_module("embed_tokens",
                                  torch::nn::Embedding(config.vocab_size, config.d_model));
  layers_ = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.n_layers; ++i) layers_->push_back(DecoderBlock(config));
  norm_ = register_module("norm", RmsNorm(config.d_model, config.rms_eps));
  lm_head_ = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(
                                            config.d_model, config.vocab_size).bias(false)));
  int64_t hd = config.head_dim();
  inv_freq_ = at::pow(config.rope_theta,
                      -at::arange(0, hd, 2, at::kDouble) / static_cast<double>(hd))
                  .to(at::kFloat);
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
    if (name.find("layernorm") != std::string::npos || name.rfind("norm.", 0) == 0) {
      p.fill_(1.0);
    } else if (name.find("o_proj") != std::string::npos ||
               name.find("down_proj") != std::string::npos) {
      p.normal_(0.0, residual_std, gen);
    } else {
      p.normal_(0.0, 0.02, gen);
    }
  }
}

KvCache MoeTransformerImpl::NewCache(int64_t batch, int64_t capacity) const {
  KvCache cache;
  auto opts = lm_head_->weight.options();
  for (int64_t i = 0; i < config_.n_layers; ++i) {
    cache.k.push_back(at::zeros({batch, config_.n_kv_heads, capacity, config_.head_dim()}, opts));
    cache.v.push_back(at::zeros({batch, config_.n_kv_heads, capacity, config_.head_dim()}, opts));
  }
  return cache;
}

ForwardOutput MoeTransformerImpl::Forward(const at::Tensor& tokens, const at::Tensor& positions,
                                          const at::Tensor& key_mask, KvCache* cache) {
  int64_t t = tokens.size(1);
  int64_t past = cache != nullptr ? cache->length : 0;
  int64_t total = past + t;
  at::Tensor x = embed_tokens_->forward(tokens);

  at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv_freq_.to(x.device());
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  at::Tensor cos = emb.cos().to(x.dtype()), sin = emb.sin().to(x.dtype());

  // Query i (column past + i) sees key columns <= past + i that hold tokens.
  at::Tensor q_col = at::arange(past, total, tokens.options()).unsqueeze(1);
  at::Tensor k_col = at::arange(0, total, tokens.options()).unsqueeze(0);
  at::Tensor causal = k_col.le(q_col);  // [T, L]
  at::Tensor mask = causal.unsqueeze(0).unsqueeze(0).logical_and(
      key_mask.unsqueeze(1).unsqueeze(1));  // [B,1,T,L]

  at::Tensor aux = at::zeros({}, x.options());
  for (int64_t i = 0; i < config_.n_layers; ++i) {
    x = layers_[i]->as<DecoderBlock>()->forward(x, cos, sin, mask, cache, i, &aux);
  }
  if (cache != nullptr) cache->length = total;
  ForwardOutput out;
  out.logits = lm_head_->forward(norm_->forward(x));
  out.aux_loss = aux / static_cast<double>(config_.n_layers);
  return out;
}

namespace {

std::string HfName(const std::string& module_name) {
  return module_name.rfind("lm_head", 0) == 0 ? module_name : "model." + module_name;
}

}  // namespace

std::vector<RawTensor> MoeTransformerImpl::ExportWeights() const {
  std::vector<RawTensor> out;
  for (const auto& item : named_parameters(/*recurse=*/true)) {
    at::Tensor t = item.value().detach().to(at::kCPU, at::kFloat).contiguous();
    RawTensor raw;
    raw.name = HfName(item.key());
    raw.dtype = RawDType::kFloat32;
    raw.shape = t.sizes().vec();
    raw.bytes.assign(static_cast<const char*>(t.data_ptr()), t.numel() * sizeof(float));
    out.push_back(std::move(raw));
  }
  return out;
}

absl::Status MoeTransformerImpl::ImportWeights(const std::vector<RawTensor>& tensors) {
  std::map<std::string, const RawTensor*> by_name;
  for (const RawTensor& t : tensors) by_name[t.name] = &t;
  auto params = named_parameters(/*recurse=*/true);
  // Check everything before touching any parameter.
  for (const auto& item : params) {
    std::string name = HfName(item.key());
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      return absl::InvalidArgumentError(absl::StrCat("weights: tensor '", name, "' missing"));
    }
    const RawTensor& raw = *it->second;
    if (raw.shape != item.value().sizes().vec()) {
      return absl::InvalidArgumentError(
          absl::StrCat("weights: tensor '", name, "' has the wrong shape for ",
                       config_.Describe()));
    }
    if (static_cast<int64_t>(raw.bytes.size()) != raw.numel() * DTypeSize(raw.dtype)) {
      return absl::InvalidArgumentError(
          absl::StrCat("weights: tensor '", name, "' has ", raw.bytes.size(),
                       " bytes, expected ", raw.numel() * DTypeSize(raw.dtype)));
    }
  }
  if (by_name.size() != params.size()) {
    for (const RawTensor& t : tensors) {
      bool known = false;
      for (const auto& item : params) known = known || HfName(item.key()) == t.name;
      if (!known) {
        return absl::InvalidArgumentError(
            absl::StrCat("weights: unexpected tensor '", t.name, "'"));
      }
    }
  }
  torch::NoGradGuard no_grad;
  for (auto& item : params) {
    const RawTensor& raw = *by_name[HfName(item.key())];
    at::ScalarType st = raw.dtype == RawDType::kFloat32 ? at::kFloat : at::kBFloat16;
    at::Tensor src = at::from_blob(const_cast<char*>(raw.bytes.data()), raw.shape,
                                   at::TensorOptions().dtype(st));
    item.value().copy_(src);
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
