#include "model/moe_layers.h"

#include <cmath>

#include "model/moe_transformer.h"
#include "model/paged_kv.h"

namespace rlpost {
namespace {

constexpr double kMaskedScore = -1e9;

at::Tensor RotateHalf(const at::Tensor& x) {
  int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

torch::nn::Linear MakeLinear(int64_t in, int64_t out, bool bias) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
}

}  // namespace

RmsNormImpl::RmsNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight_ = register_parameter("weight", at::ones({dim}));
}

at::Tensor RmsNormImpl::forward(const at::Tensor& x) {
  at::Tensor var = x.pow(2).mean(-1, /*keepdim=*/true);
  return weight_ * (x * at::rsqrt(var + eps_));
}

AttentionImpl::AttentionImpl(const ModelConfig& config) : config_(config) {
  int64_t hd = config.head_dim(), d = config.d_model;
  int64_t q_width = config.n_heads * hd, kv_width = config.n_kv_heads * hd;
  q_proj_ = register_module("q_proj", MakeLinear(d, q_width, config.qkv_bias));
  k_proj_ = register_module("k_proj", MakeLinear(d, kv_width, config.qkv_bias));
  v_proj_ = register_module("v_proj", MakeLinear(d, kv_width, config.qkv_bias));
  o_proj_ = register_module("o_proj", MakeLinear(q_width, d, config.o_bias));
  if (config.qk_norm == QkNorm::kPerHead) {
    q_norm_ = register_module("q_norm", RmsNorm(hd, config.rms_eps));
    k_norm_ = register_module("k_norm", RmsNorm(hd, config.rms_eps));
  } else if (config.qk_norm == QkNorm::kFull) {
    q_norm_ = register_module("q_norm", RmsNorm(q_width, config.rms_eps));
    k_norm_ = register_module("k_norm", RmsNorm(kv_width, config.rms_eps));
  }
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const at::Tensor& cos,
                                  const at::Tensor& sin, const at::Tensor& mask,
                                  const KvAccess& kv, int64_t layer) {
  int64_t b = x.size(0), t = x.size(1), hd = config_.head_dim();
  int64_t h = config_.n_heads, kvh = config_.n_kv_heads;
  at::Tensor q = q_proj_->forward(x), k = k_proj_->forward(x);
  at::Tensor v = v_proj_->forward(x);
  if (config_.qk_norm == QkNorm::kFull) {
    q = q_norm_->forward(q);
    k = k_norm_->forward(k);
  }
  q = q.view({b, t, h, hd});
  k = k.view({b, t, kvh, hd});
  if (config_.qk_norm == QkNorm::kPerHead) {
    q = q_norm_->forward(q);
    k = k_norm_->forward(k);
  }
  q = q.transpose(1, 2);
  k = k.transpose(1, 2);
  v = v.view({b, t, kvh, hd}).transpose(1, 2);
  at::Tensor c = cos.unsqueeze(1), s = sin.unsqueeze(1);
  q = q * c + RotateHalf(q) * s;
  k = k * c + RotateHalf(k) * s;
  if (KvCache* cache = kv.cache; cache != nullptr) {
    int64_t start = cache->length;
    cache->k[layer].narrow(2, start, t).copy_(k);
    cache->v[layer].narrow(2, start, t).copy_(v);
    k = cache->k[layer].narrow(2, 0, start + t);
    v = cache->v[layer].narrow(2, 0, start + t);
  } else if (kv.paged != nullptr) {
    std::tie(k, v) = kv.paged->Update(layer, k, v);
  }
  at::Tensor out;
  if (kv.segments == nullptr) {
    out = Attend(q, k, v, mask);
  } else {
    // Packed row: each sequence attends only to itself, so no FLOPs go to
    // pairs of tokens from different sequences.
    TORCH_CHECK(b == 1, "packed attention takes one row, got ", b);
    std::vector<at::Tensor> parts;
    int64_t offset = 0;
    for (int64_t n : *kv.segments) {
      parts.push_back(Attend(q.narrow(2, offset, n), k.narrow(2, offset, n),
                             v.narrow(2, offset, n), mask.narrow(2, 0, n).narrow(3, 0, n)));
      offset += n;
    }
    TORCH_CHECK(offset == t, "packed segments cover ", offset, " of ", t, " columns");
    out = parts.size() == 1 ? parts[0] : at::cat(parts, 2);
  }
  return o_proj_->forward(out.transpose(1, 2).reshape({b, t, h * hd}));
}

at::Tensor AttentionImpl::Attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const at::Tensor& mask) const {
  // Grouped-query attention without copying keys/values: the g = h / kvh
  // query heads that share a key/value head are stacked along the time axis.
  const int64_t b = q.size(0), h = q.size(1), t = q.size(2), hd = q.size(3);
  const int64_t kvh = k.size(1), g = h / kvh, l = k.size(2);
  at::Tensor qg = q.reshape({b, kvh, g * t, hd});
  at::Tensor scores = at::matmul(qg, k.transpose(-2, -1)).view({b, h, t, l}) /
                      std::sqrt(static_cast<double>(hd));
  scores = scores.masked_fill(mask.logical_not(), kMaskedScore);
  at::Tensor probs = at::softmax(scores, -1).view({b, kvh, g * t, l});
  return at::matmul(probs, v).view({b, h, t, hd});
}

SwiGluImpl::SwiGluImpl(int64_t d_model, int64_t hidden) {
  gate_proj_ = register_module("gate_proj", MakeLinear(d_model, hidden, false));
  up_proj_ = register_module("up_proj", MakeLinear(d_model, hidden, false));
  down_proj_ = register_module("down_proj", MakeLinear(hidden, d_model, false));
}

at::Tensor SwiGluImpl::forward(const at::Tensor& x) {
  return down_proj_->forward(at::silu(gate_proj_->forward(x)) * up_proj_->forward(x));
}

MoeFeedForwardImpl::MoeFeedForwardImpl(const ModelConfig& config) : config_(config) {
  gate_ = register_module("gate", MakeLinear(config.d_model, config.n_experts, false));
  experts_ = register_module("experts", torch::nn::ModuleList());
  for (int64_t e = 0; e < config.n_experts; ++e) {
    experts_->push_back(SwiGlu(config.d_model, config.expert_hidden));
  }
  if (config.shared_expert_hidden > 0) {
    shared_expert_ =
        register_module("shared_expert", SwiGlu(config.d_model, config.shared_expert_hidden));
    if (config.shared_expert_gate) {
      shared_expert_gate_ = register_module("shared_expert_gate", MakeLinear(config.d_model, 1, false));
    }
  }
}

at::Tensor MoeFeedForwardImpl::forward(const at::Tensor& x, const RoutingContext& routing) {
  int64_t n = x.size(0), k = config_.top_k, e_count = config_.n_experts;
  at::Tensor logits = gate_->forward(x);
  // Routing probabilities in at least fp32, as the reference implementations do.
  at::ScalarType route_type = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor probs = at::softmax(logits.to(route_type), -1);
  at::Tensor top_w, top_i;
  if (routing.replay != nullptr) {
    top_i = *routing.replay;
    TORCH_CHECK(top_i.dim() == 2 && top_i.size(0) == n && top_i.size(1) == k,
                "router replay: expected expert ids of shape [", n, ", ", k, "], got ",
                top_i.sizes());
    TORCH_CHECK(n == 0 || (top_i.min().item<int64_t>() >= 0 &&
                           top_i.max().item<int64_t>() < e_count),
                "router replay: expert id out of range 0..", e_count - 1);
    top_i = top_i.to(at::kLong);
    if (routing.replay_rows != nullptr) {
      // Rows without recorded experts route as usual.
      at::Tensor own = std::get<1>(probs.topk(k, -1));
      top_i = at::where(routing.replay_rows->unsqueeze(1), top_i, own);
    }
    top_w = probs.gather(1, top_i);
  } else {
    std::tie(top_w, top_i) = probs.topk(k, -1);
  }
  if (config_.norm_topk_prob) top_w = top_w / top_w.sum(-1, /*keepdim=*/true);
  top_w = top_w.to(x.scalar_type());

  // Permute: sort the N*k (token, expert) assignments by expert.
  at::Tensor flat_expert = top_i.reshape({-1});
  at::Tensor order = std::get<1>(
      at::sort(flat_expert, c10::optional<bool>(true), /*dim=*/0, /*descending=*/false));
  at::Tensor sorted_token = order.div(k, "floor");
  at::Tensor sorted_weight = top_w.reshape({-1}).index_select(0, order);
  at::Tensor counts = at::bincount(flat_expert, /*weights=*/{}, e_count).to(at::kCPU);
  const int64_t* count = counts.data_ptr<int64_t>();
  at::Tensor x_sorted = x.index_select(0, sorted_token);

  // Grouped work: one SwiGLU matmul chain per expert over its contiguous rows.
  std::vector<at::Tensor> parts;
  parts.reserve(e_count);
  int64_t start = 0;
  for (int64_t e = 0; e < e_count; ++e) {
    if (count[e] == 0) continue;
    parts.push_back(experts_[e]->as<SwiGlu>()->forward(x_sorted.narrow(0, start, count[e])));
    start += count[e];
  }
  at::Tensor out = at::zeros_like(x);
  if (!parts.empty()) {
    at::Tensor y = at::cat(parts, 0) * sorted_weight.unsqueeze(1);
    out = out.index_add(0, sorted_token, y);  // un-permute and combine
  }
  if (!shared_expert_.is_empty()) {
    at::Tensor shared = shared_expert_->forward(x);
    if (!shared_expert_gate_.is_empty()) {
      shared = at::sigmoid(shared_expert_gate_->forward(x)) * shared;
    }
    out = out + shared;
  }

  if (routing.aux_loss != nullptr || routing.z_loss != nullptr) {
    // Losses over real tokens only (pads carry no signal).
    at::Tensor m = routing.token_mask.defined() ? routing.token_mask.to(route_type)
                                                : at::ones({n}, probs.options());
    at::Tensor real = m.sum().clamp_min(1.0);
    if (routing.aux_loss != nullptr) {
      // Switch Transformer balance loss: E * sum_e f_e * P_e, with f_e the
      // share of the N*k assignments routed to e and P_e the mean router
      // probability of e; 1.0 when perfectly balanced.
      at::Tensor assigned = at::zeros({n, e_count}, probs.options())
                                .scatter_add(1, top_i, m.unsqueeze(1).expand({n, k}).contiguous());
      at::Tensor f = assigned.sum(0) / (real * static_cast<double>(k));
      at::Tensor p = (probs * m.unsqueeze(1)).sum(0) / real;
      *routing.aux_loss = *routing.aux_loss + static_cast<double>(e_count) * (f * p).sum();
    }
    if (routing.z_loss != nullptr) {
      at::Tensor lse = at::logsumexp(logits.to(route_type), -1);
      *routing.z_loss = *routing.z_loss + (lse.pow(2) * m).sum() / real;
    }
  }
  if (routing.record != nullptr) {
    routing.record->logits = logits;
    routing.record->expert_ids = top_i;
    routing.record->weights = top_w;
  }
  return out;
}

DecoderBlockImpl::DecoderBlockImpl(const ModelConfig& config, bool moe) {
  input_layernorm_ = register_module("input_layernorm", RmsNorm(config.d_model, config.rms_eps));
  self_attn_ = register_module("self_attn", Attention(config));
  post_attention_layernorm_ =
      register_module("post_attention_layernorm", RmsNorm(config.d_model, config.rms_eps));
  if (moe) {
    moe_ = register_module("mlp", MoeFeedForward(config));
  } else {
    dense_ = register_module("mlp", SwiGlu(config.d_model, config.intermediate_size));
  }
}

at::Tensor DecoderBlockImpl::forward(const at::Tensor& x, const at::Tensor& cos,
                                     const at::Tensor& sin, const at::Tensor& mask,
                                     const KvAccess& kv, int64_t layer,
                                     const RoutingContext& routing) {
  at::Tensor h = x + self_attn_->forward(input_layernorm_->forward(x), cos, sin, mask, kv, layer);
  int64_t b = h.size(0), t = h.size(1), d = h.size(2);
  at::Tensor normed = post_attention_layernorm_->forward(h).reshape({b * t, d});
  at::Tensor ff = moe_.is_empty() ? dense_->forward(normed) : moe_->forward(normed, routing);
  return h + ff.view({b, t, d});
}

}  // namespace rlpost
