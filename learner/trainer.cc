#include "learner/trainer.h"

#include <ATen/ATen.h>
#include <torch/types.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/utils.h>

#include "absl/strings/str_cat.h"
#include "learner/collective.h"
#include "learner/packed_batch.h"
#include "learner/packing.h"
#include "learner/policy_loss.h"
#include "learner/trainer_impl.h"
#include "model/moe_transformer.h"

namespace rlpost {

at::Tensor Trainer::Impl::MicroBatchLoss(const PackedRow& row, const StepOptions& options,
                                         const LossScale& scale, int64_t global_positions,
                                         at::Tensor& local) {
  const ModelConfig& config = model->config();
  const bool sft = options.objective == TrainObjective::kSft;
  ForwardOptions fo;
  fo.segments = &row.segments;
  fo.logit_rows = &row.logit_rows;
  if (!row.replay.empty()) {
    fo.replay_expert_ids = &row.replay;
    fo.replay_token_mask = &row.replay_rows;
  }
  ForwardOutput out = model->Forward(row.tokens, row.positions, row.key_mask, fo);
  at::Tensor logits = out.logits;  // [N, vocab]
  if (options.temperature > 0 && options.temperature != 1.0) logits = logits / options.temperature;
  const at::Tensor logp_all = at::log_softmax(logits, -1);
  const at::Tensor logp_flat = logp_all.gather(-1, row.targets.unsqueeze(-1)).squeeze(-1);
  const at::Tensor logp = ToGrid(row, logp_flat);  // [S, L]
  const at::Tensor& mask = row.mask;

  at::Tensor loss;
  if (sft) {
    at::Tensor loss_sum = -logp_flat.sum();
    local[0] += loss_sum.detach().to(at::kDouble);
    loss = loss_sum / static_cast<double>(scale.global_tokens);
  } else {
    PolicyLossTerms pg =
        PolicyGradientLoss(logp, row.old_logprobs, row.advantages, mask, options.policy);
    at::Tensor token_loss = pg.token_loss;
    if (options.nll_coef > 0) token_loss = token_loss - options.nll_coef * logp * row.positive;
    // Per-token entropy of the sampling distribution: reported, and a bonus
    // when entropy_coef > 0 (only then does it carry a gradient).
    at::Tensor entropy;
    {
      at::AutoGradMode grad_mode(options.entropy_coef > 0);
      entropy = ToGrid(row, -(at::exp(logp_all) * logp_all).sum(-1));
    }
    if (options.entropy_coef > 0) token_loss = token_loss - options.entropy_coef * entropy;
    if (options.kl_coef > 0) {
      at::Tensor ref_logp;
      {
        torch::NoGradGuard no_grad;
        ForwardOptions ro;
        ro.segments = &row.segments;
        ro.logit_rows = &row.logit_rows;
        ro.router_losses = false;
        at::Tensor ref_logits = reference->Forward(row.tokens, row.positions, row.key_mask, ro).logits;
        if (options.temperature > 0 && options.temperature != 1.0) {
          ref_logits = ref_logits / options.temperature;
        }
        ref_logp = ToGrid(
            row, at::log_softmax(ref_logits, -1).gather(-1, row.targets.unsqueeze(-1)).squeeze(-1));
      }
      // Samples come from the policy: log-ratio r = log q - log p.
      const at::Tensor r = ref_logp - logp;
      at::Tensor kl;
      switch (options.kl_estimator) {
        case KlEstimator::kK1: kl = -r; break;
        case KlEstimator::kK2: kl = 0.5 * r * r; break;
        case KlEstimator::kK3: kl = at::expm1(r) - r; break;
      }
      token_loss = token_loss + options.kl_coef * kl;
      local[5] += (kl.detach() * mask).sum().to(at::kDouble);
    }
    local[0] += (token_loss.detach() * mask).sum().to(at::kDouble);
    loss = AggregateLoss(token_loss, mask, scale);
    torch::NoGradGuard no_grad;
    at::Tensor neg = -(logp - row.old_logprobs).detach();
    local[1] += pg.clipped.sum().to(at::kDouble);
    local[2] += ((at::exp(neg) - 1.0 - neg) * mask).sum().to(at::kDouble);
    local[6] += (entropy.detach() * mask).sum().to(at::kDouble);
  }
  // Router losses: each micro-batch's is weighted by its share of the
  // global batch's token positions.
  const double share = static_cast<double>(row.tokens.numel()) / static_cast<double>(global_positions);
  if (options.aux_loss_coef > 0) loss = loss + options.aux_loss_coef * share * out.aux_loss;
  if (options.router_z_loss_coef > 0) loss = loss + options.router_z_loss_coef * share * out.z_loss;
  if (config.mtp_layers > 0 && row.mtp_rows.numel() > 0) {
    // The MTP head at column c predicts token c + 2 of the same sequence.
    at::Tensor mtp_logits = model->MtpForward(out.hidden, row.mtp_next, row.positions,
                                              row.key_mask, nullptr, /*train_shared=*/sft,
                                              &row.segments, &row.mtp_rows);
    at::Tensor mtp_sum = -at::log_softmax(mtp_logits, -1)
                              .gather(-1, row.mtp_targets.unsqueeze(-1))
                              .sum();
    local[3] += mtp_sum.detach().to(at::kDouble);
    local[4] += static_cast<double>(row.mtp_rows.numel());
    loss = loss + options.mtp_loss_coef * mtp_sum / static_cast<double>(scale.global_tokens);
  }
  return loss;
}

Trainer::Trainer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Trainer::~Trainer() = default;

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const RunConfig& config,
                                                         int64_t vocab_size,
                                                         ProcessGroupHandle* group) {
  try {
    auto impl = std::make_unique<Impl>(ModelConfig::FromShape(config.model, vocab_size), config);
    impl->group = group;
    impl->model->train();
    return std::unique_ptr<Trainer>(new Trainer(std::move(impl)));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("cannot build the policy: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<StepStats> Trainer::Step(const std::vector<TrainExample>& batch,
                                        const StepOptions& options) {
  const int rank = impl_->group != nullptr ? impl_->group->rank() : 0;
  const int world = impl_->group != nullptr ? impl_->group->world_size() : 1;
  const ModelConfig& config = impl_->model->config();
  int64_t global_tokens = 0;
  for (const TrainExample& ex : batch) {
    const int64_t index = &ex - batch.data();
    if (ex.prompt.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("sample ", index, ": empty prompt"));
    }
    if (options.objective == TrainObjective::kPolicyGradient &&
        ex.old_logprobs.size() != ex.response.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sample ", index, ": ", ex.response.size(), " response tokens but ",
          ex.old_logprobs.size(), " old logprobs"));
    }
    if (static_cast<int64_t>(ex.prompt.size() + ex.response.size()) > config.max_seq_len) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sample ", index, ": ", ex.prompt.size() + ex.response.size(),
          " tokens exceed the context of ", config.max_seq_len));
    }
    for (const std::vector<int>* part : {&ex.prompt, &ex.response}) {
      for (int id : *part) {
        if (id < 0 || id >= config.vocab_size) {
          return absl::InvalidArgumentError(absl::StrCat(
              "sample ", index, ": token id ", id, " outside the vocabulary of ",
              config.vocab_size));
        }
      }
    }
    for (float lp : ex.old_logprobs) {
      // Logprobs are <= 0; allow rounding just above.
      if (!std::isfinite(lp) || lp > 1e-4f) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sample ", index, ": old logprob ", lp, " is not a finite value <= 0"));
      }
    }
    if (!std::isfinite(ex.advantage)) {
      return absl::InvalidArgumentError(
          absl::StrCat("sample ", index, ": advantage ", ex.advantage, " is not finite"));
    }
    if (!ex.routed_experts.empty()) {
      int64_t width = 0;
      for (int64_t l = 0; l < config.n_layers; ++l) {
        if (config.IsMoeLayer(l)) width += config.top_k;
      }
      const size_t want = ex.response.size() * static_cast<size_t>(width);
      if (ex.routed_experts.size() != want) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sample ", &ex - batch.data(), ": ", ex.routed_experts.size(),
            " routed expert ids for ", ex.response.size(), " response tokens (expected ", want,
            ": top_k x MoE layers per token)"));
      }
      for (int32_t e : ex.routed_experts) {
        if (e < 0 || e >= config.n_experts) {
          return absl::InvalidArgumentError(absl::StrCat(
              "sample ", &ex - batch.data(), ": routed expert id ", e, " outside 0..",
              config.n_experts - 1));
        }
      }
    }
    global_tokens += static_cast<int64_t>(ex.response.size());
  }
  if (global_tokens == 0) return absl::InvalidArgumentError("batch has no response tokens");

  StepStats stats;
  stats.tokens = global_tokens;
  try {
    for (auto& group : impl_->optimizer.param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(options.lr);
    }
    impl_->optimizer.zero_grad();
    if (options.objective == TrainObjective::kPolicyGradient && options.kl_coef > 0 &&
        impl_->reference.is_empty()) {
      torch::NoGradGuard no_grad;
      impl_->reference = MoeTransformer(config);
      absl::Status s = impl_->reference->ImportWeights(impl_->model->ExportWeights());
      if (!s.ok()) return s;
      impl_->reference->eval();
    }
    std::vector<int64_t> lengths;
    int64_t global_positions = 0;
    for (const TrainExample& ex : batch) {
      lengths.push_back(static_cast<int64_t>(ex.prompt.size() + ex.response.size()));
      global_positions += lengths.back();
    }
    const std::vector<int64_t> mine = BalanceAcrossRanks(lengths, world)[static_cast<size_t>(rank)];
    LossScale scale;
    scale.mode = options.aggregation;
    scale.global_tokens = global_tokens;
    scale.global_sequences = static_cast<int64_t>(batch.size());
    scale.norm_length = options.norm_length;

    // [loss_sum, clipped, kl_sum, mtp_loss_sum, mtp_tokens, ref_kl_sum,
    // entropy_sum] over this rank's tokens.
    at::Tensor local = at::zeros({7}, at::kDouble);
    int64_t computed_positions = 0, real_positions = 0;
    for (const std::vector<int64_t>& micro : PlanMicroBatches(lengths, mine, options.micro_batch_tokens)) {
      std::vector<const TrainExample*> examples;
      for (int64_t i : micro) examples.push_back(&batch[static_cast<size_t>(i)]);
      const PackedRow row = PackExamples(examples, config);
      computed_positions += row.tokens.numel();
      for (int64_t n : row.segments) real_positions += n;
      at::Tensor loss = impl_->MicroBatchLoss(row, options, scale, global_positions, local);
      loss.backward();
      ++stats.micro_batches;
    }
    stats.padding_fraction =
        computed_positions > 0
            ? static_cast<double>(computed_positions - real_positions) / computed_positions
            : 0.0;

    std::vector<at::Tensor> grads;
    for (at::Tensor& p : impl_->model->parameters()) {
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
      grads.push_back(p.grad());
    }
    if (world > 1) {
      grads.push_back(local);
      absl::Status s = impl_->group->AllReduceSum(grads);
      if (!s.ok()) return s;
    }
    // The MTP block is clipped on its own so that it never rescales the
    // policy's gradient.
    std::vector<at::Tensor> policy_params, mtp_params;
    for (const auto& item : impl_->model->named_parameters()) {
      (item.key().rfind("mtp.", 0) == 0 ? mtp_params : policy_params).push_back(item.value());
    }
    double clip = options.grad_clip > 0 ? options.grad_clip : 1e30;
    stats.grad_norm = torch::nn::utils::clip_grad_norm_(policy_params, clip);
    if (!mtp_params.empty()) torch::nn::utils::clip_grad_norm_(mtp_params, clip);
    auto l = local.accessor<double, 1>();
    // NaN/Inf guard: every rank sees the same all-reduced loss and norm, so
    // every rank skips together and the weights stay identical.
    if (!std::isfinite(stats.grad_norm) || !std::isfinite(l[0])) {
      impl_->optimizer.zero_grad();
      stats.skipped = true;
      stats.skip_reason = !std::isfinite(l[0]) ? "non-finite loss" : "non-finite gradient norm";
      stats.loss = l[0] / static_cast<double>(global_tokens);
      stats.weight_version = impl_->version;
      return stats;
    }
    impl_->optimizer.step();
    stats.loss = l[0] / static_cast<double>(global_tokens);
    stats.clip_fraction = l[1] / static_cast<double>(global_tokens);
    stats.approx_kl = l[2] / static_cast<double>(global_tokens);
    stats.mtp_loss = l[4] > 0 ? l[3] / l[4] : 0.0;
    stats.ref_kl = l[5] / static_cast<double>(global_tokens);
    stats.entropy = l[6] / static_cast<double>(global_tokens);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("training step failed: ", e.what_without_backtrace()));
  }
  ++impl_->version;
  ++impl_->steps;
  stats.weight_version = impl_->version;
  return stats;
}

int64_t Trainer::weight_version() const { return impl_->version; }

std::vector<RawTensor> Trainer::ExportWeights() const { return impl_->model->ExportWeights(); }

std::string Trainer::Describe() const { return impl_->model->config().Describe(); }

}  // namespace rlpost
