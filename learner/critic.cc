#include "learner/critic.h"

#include <torch/utils.h>

#include <map>

#include "absl/strings/str_cat.h"

namespace rlpost {
namespace {

constexpr char kScore[] = "score.weight";
constexpr char kScoreNorm[] = "score_norm.weight";

}  // namespace

Critic::Critic(const MoeTransformer& policy, double weight_decay)
    : trunk_(policy->config()) {
  torch::NoGradGuard no_grad;
  absl::Status s = trunk_->ImportWeights(policy->ExportWeights());
  TORCH_CHECK(s.ok(), "critic initialisation: ", s.ToString());
  const ModelConfig& config = policy->config();
  norm_ = RmsNorm(config.d_model, config.rms_eps);
  score_ = torch::nn::Linear(torch::nn::LinearOptions(config.d_model, 1).bias(false));
  score_->weight.zero_();
  // Beside the policy: its device (learner.device).
  const c10::Device device = policy->parameters().front().device();
  trunk_->to(device);
  norm_->to(device);
  score_->to(device);
  trunk_->train();
  optimizer_ = std::make_unique<torch::optim::AdamW>(
      parameters(), torch::optim::AdamWOptions(1e-3).betas({0.9, 0.99}).weight_decay(weight_decay));
}

at::Tensor Critic::Values(const PackedRow& row, bool checkpoint_activations) {
  ForwardOptions fo;
  fo.checkpoint_activations = checkpoint_activations;
  fo.segments = &row.segments;
  const at::Tensor none = at::zeros({0}, row.tokens.options());
  fo.logit_rows = &none;  // the language-model head is not needed
  fo.router_losses = false;
  ForwardOutput out = trunk_->Forward(row.tokens, row.positions, row.key_mask, fo);
  const at::Tensor hidden = out.hidden.reshape({-1, out.hidden.size(2)}).index_select(0, row.logit_rows);
  return score_->forward(norm_->forward(hidden)).squeeze(-1).to(at::kFloat);
}

std::vector<std::pair<std::string, at::Tensor>> Critic::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& item : trunk_->named_parameters()) {
    out.emplace_back(trunk_->HfName(item.key()), item.value());
  }
  out.emplace_back(kScoreNorm, norm_->named_parameters()["weight"]);
  out.emplace_back(kScore, score_->weight);
  return out;
}

std::vector<at::Tensor> Critic::parameters() const {
  std::vector<at::Tensor> out;
  for (auto& [name, p] : named_parameters()) out.push_back(p);
  return out;
}

std::vector<RawTensor> Critic::ExportWeights() const {
  std::vector<RawTensor> out;
  for (const auto& [name, p] : named_parameters()) out.push_back(ToRawTensor(name, p));
  return out;
}

absl::Status Critic::ImportWeights(const std::vector<RawTensor>& tensors) {
  std::map<std::string, const RawTensor*> by_name;
  for (const RawTensor& t : tensors) by_name[t.name] = &t;
  const auto params = named_parameters();
  for (const auto& [name, p] : params) {
    auto it = by_name.find(name);
    if (it == by_name.end()) return absl::InvalidArgumentError(absl::StrCat("critic: tensor '", name, "' missing"));
    if (it->second->dtype != RawDType::kFloat32 || it->second->shape != p.sizes().vec()) {
      return absl::InvalidArgumentError(
          absl::StrCat("critic: tensor '", name, "' has the wrong dtype or shape"));
    }
  }
  if (by_name.size() != params.size()) {
    return absl::InvalidArgumentError(absl::StrCat("critic: ", by_name.size(), " tensors for ",
                                                   params.size(), " parameters"));
  }
  torch::NoGradGuard no_grad;
  for (const auto& [name, p] : params) {
    const RawTensor& raw = *by_name[name];
    at::Tensor src = at::from_blob(const_cast<char*>(raw.bytes.data()), raw.shape, at::kFloat);
    at::Tensor dst = p;
    dst.copy_(src);
  }
  return absl::OkStatus();
}

std::pair<at::Tensor, at::Tensor> ClippedValueLoss(const at::Tensor& values,
                                                   const at::Tensor& old_values,
                                                   const at::Tensor& returns, double clip) {
  const at::Tensor unclipped = (values - returns).pow(2);
  if (clip <= 0) return {0.5 * unclipped, at::zeros_like(values).detach()};
  const at::Tensor clipped_v = old_values + at::clamp(values - old_values, -clip, clip);
  const at::Tensor clipped = (clipped_v - returns).pow(2);
  at::Tensor took_clipped;
  {
    torch::NoGradGuard no_grad;
    took_clipped = (clipped > unclipped).to(values.scalar_type());
  }
  return {0.5 * at::max(unclipped, clipped), took_clipped};
}

}  // namespace rlpost
