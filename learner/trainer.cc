#include "learner/trainer.h"

#include <ATen/ATen.h>
#include <torch/types.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/utils.h>

#include "absl/strings/str_cat.h"
#include "learner/collective.h"
#include "learner/mixed_precision.h"
#include "learner/packed_batch.h"
#include "learner/packing.h"
#include "learner/policy_loss.h"
#include "learner/trainer_impl.h"
#include "model/device.h"
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
  fo.checkpoint_activations = options.checkpoint_activations;
  if (!row.replay.empty()) {
    fo.replay_expert_ids = &row.replay;
    fo.replay_token_mask = &row.replay_rows;
  }
  ForwardOutput out = model->Forward(row.tokens, row.positions, row.key_mask, fo);
  at::Tensor logits = out.logits.to(at::kFloat);  // [N, vocab]; float32 under bf16 autocast
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
            row, at::log_softmax(ref_logits.to(at::kFloat), -1).gather(-1, row.targets.unsqueeze(-1)).squeeze(-1));
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
    at::Tensor mtp_sum = -at::log_softmax(mtp_logits.to(at::kFloat), -1)
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
  // rlpost-learner makes "cuda" concrete (cuda:<local rank>) before this.
  absl::StatusOr<c10::Device> device = OpenDevice("learner.device", config.learner_device);
  if (!device.ok()) return device.status();
  try {
    auto impl = std::make_unique<Impl>(ModelConfig::FromShape(config.model, vocab_size), config,
                                       *device);
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
    const bool pg = options.objective == TrainObjective::kPolicyGradient;
    const bool with_critic = pg && options.critic.enabled;
    const bool critic_only = with_critic && options.critic.critic_only;
    if (pg && (options.kl_coef > 0 || (with_critic && options.critic.kl_in_reward_coef > 0)) &&
        impl_->reference.is_empty()) {
      torch::NoGradGuard no_grad;
      impl_->reference = Impl::Placed(MoeTransformer(config), impl_->device);
      absl::Status s = impl_->reference->ImportWeights(impl_->model->ExportWeights());
      if (!s.ok()) return s;
      impl_->reference->eval();
    }
    if (with_critic && impl_->critic == nullptr) {
      impl_->critic = std::make_unique<Critic>(impl_->model, impl_->weight_decay);
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

    std::vector<std::vector<const TrainExample*>> micro_examples;
    std::vector<PackedRow> rows;
    int64_t computed_positions = 0, real_positions = 0;
    for (const std::vector<int64_t>& micro : PlanMicroBatches(lengths, mine, options.micro_batch_tokens)) {
      std::vector<const TrainExample*> examples;
      for (int64_t i : micro) examples.push_back(&batch[static_cast<size_t>(i)]);
      rows.push_back(PackExamples(examples, config));
      MoveToDevice(&rows.back(), impl_->device);
      micro_examples.push_back(std::move(examples));
      computed_positions += rows.back().tokens.numel();
      for (int64_t n : rows.back().segments) real_positions += n;
    }
    stats.micro_batches = static_cast<int64_t>(rows.size());
    stats.padding_fraction =
        computed_positions > 0
            ? static_cast<double>(computed_positions - real_positions) / computed_positions
            : 0.0;
    // bf16 mixed precision (forwards and backwards of this step; master
    // weights, gradients and optimizer state stay float32).
    AutocastScope autocast(options.bf16, impl_->model->parameters().front().device());
    std::vector<at::Tensor> old_values, returns;
    if (with_critic) {
      impl_->critic->optimizer().zero_grad();
      absl::Status s = impl_->PrepareGae(rows, micro_examples, options, old_values, returns);
      if (!s.ok()) return s;
    }

    // [loss_sum, clipped, kl_sum, mtp_loss_sum, mtp_tokens, ref_kl_sum,
    // entropy_sum, value_loss_sum, value_sum, return_sum, value_clipped]
    // over this rank's tokens.
    at::Tensor local = at::zeros({11}, at::TensorOptions().dtype(at::kDouble).device(impl_->device));
    for (size_t i = 0; i < rows.size(); ++i) {
      const PackedRow& row = rows[i];
      if (!critic_only) {
        at::Tensor loss = impl_->MicroBatchLoss(row, options, scale, global_positions, local);
        loss.backward();
      }
      if (with_critic) {
        const at::Tensor values =
            ToGrid(row, impl_->critic->Values(row, options.checkpoint_activations));
        auto [value_loss, clipped] =
            ClippedValueLoss(values, old_values[i], returns[i], options.critic.value_clip);
        const at::Tensor sum = (value_loss * row.mask).sum();
        (sum / static_cast<double>(global_tokens)).backward();
        local[7] += sum.detach().to(at::kDouble);
        local[8] += (old_values[i] * row.mask).sum().to(at::kDouble);
        local[9] += (returns[i] * row.mask).sum().to(at::kDouble);
        local[10] += (clipped * row.mask).sum().to(at::kDouble);
      }
    }

    std::vector<at::Tensor> grads;
    std::vector<at::Tensor> critic_params;
    if (!critic_only) {
      for (at::Tensor& p : impl_->model->parameters()) {
        if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
        grads.push_back(p.grad());
      }
    }
    if (with_critic) {
      critic_params = impl_->critic->parameters();
      for (at::Tensor& p : critic_params) {
        if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
        grads.push_back(p.grad());
      }
    }
    if (world > 1) {
      grads.push_back(local);
      absl::Status s = impl_->group->AllReduceSum(grads);
      if (!s.ok()) return s;
    }
    // The MTP block is clipped on its own so that it never rescales the
    // policy's gradient; so is the critic.
    std::vector<at::Tensor> policy_params, mtp_params;
    for (const auto& item : impl_->model->named_parameters()) {
      (item.key().rfind("mtp.", 0) == 0 ? mtp_params : policy_params).push_back(item.value());
    }
    const double clip = options.grad_clip > 0 ? options.grad_clip : 1e30;
    if (!critic_only) {
      stats.grad_norm = torch::nn::utils::clip_grad_norm_(policy_params, clip);
      if (!mtp_params.empty()) torch::nn::utils::clip_grad_norm_(mtp_params, clip);
    }
    double critic_norm = 0.0;
    if (with_critic) {
      critic_norm = torch::nn::utils::clip_grad_norm_(
          critic_params, options.critic.grad_clip > 0 ? options.critic.grad_clip : 1e30);
    }
    const at::Tensor local_cpu = local.to(at::kCPU);
    auto l = local_cpu.accessor<double, 1>();
    const double tokens = static_cast<double>(global_tokens);
    stats.loss = l[0] / tokens;
    stats.value_loss = l[7] / tokens;
    // NaN/Inf guard: every rank sees the same all-reduced losses and norms,
    // so every rank skips together and the weights stay identical.
    std::string bad;
    if (!std::isfinite(l[0])) bad = "non-finite loss";
    if (!std::isfinite(stats.grad_norm)) bad = "non-finite gradient norm";
    if (!std::isfinite(l[7])) bad = "non-finite value loss";
    if (!std::isfinite(critic_norm)) bad = "non-finite critic gradient norm";
    if (!bad.empty()) {
      impl_->optimizer.zero_grad();
      if (with_critic) impl_->critic->optimizer().zero_grad();
      stats.skipped = true;
      stats.policy_updated = false;
      stats.skip_reason = bad;
      stats.weight_version = impl_->version;
      return stats;
    }
    if (with_critic) {
      for (auto& group : impl_->critic->optimizer().param_groups()) {
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(options.critic.lr);
      }
      impl_->critic->optimizer().step();
      stats.value_mean = l[8] / tokens;
      stats.return_mean = l[9] / tokens;
      stats.value_clip_fraction = l[10] / tokens;
    }
    if (critic_only) {
      stats.policy_updated = false;
      stats.weight_version = impl_->version;
      return stats;
    }
    impl_->optimizer.step();
    stats.clip_fraction = l[1] / tokens;
    stats.approx_kl = l[2] / tokens;
    stats.mtp_loss = l[4] > 0 ? l[3] / l[4] : 0.0;
    stats.ref_kl = l[5] / tokens;
    stats.entropy = l[6] / tokens;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("training step failed: ", e.what_without_backtrace()));
  }
  ++impl_->version;
  ++impl_->steps;
  stats.weight_version = impl_->version;
  return stats;
}

absl::Status Trainer::Impl::PrepareGae(std::vector<PackedRow>& rows,
                                       const std::vector<std::vector<const TrainExample*>>& examples,
                                       const StepOptions& options,
                                       std::vector<at::Tensor>& old_values,
                                       std::vector<at::Tensor>& returns) {
  torch::NoGradGuard no_grad;
  const CriticOptions& co = options.critic;
  // [sum, sum of squares, count] of the advantages of this rank's tokens.
  at::Tensor moments = at::zeros({3}, at::kDouble);
  for (size_t i = 0; i < rows.size(); ++i) {
    PackedRow& row = rows[i];
    const at::Tensor values = ToGrid(row, critic->Values(row));
    at::Tensor kl;  // [S, L] KL(rollout policy || reference) per token
    if (co.kl_in_reward_coef > 0) {
      ForwardOptions ro;
      ro.segments = &row.segments;
      ro.logit_rows = &row.logit_rows;
      ro.router_losses = false;
      at::Tensor ref_logits = reference->Forward(row.tokens, row.positions, row.key_mask, ro).logits;
      if (options.temperature > 0 && options.temperature != 1.0) ref_logits = ref_logits / options.temperature;
      const at::Tensor ref_logp = ToGrid(
          row, at::log_softmax(ref_logits.to(at::kFloat), -1).gather(-1, row.targets.unsqueeze(-1)).squeeze(-1));
      const at::Tensor r = ref_logp - row.old_logprobs;
      switch (options.kl_estimator) {
        case KlEstimator::kK1: kl = -r; break;
        case KlEstimator::kK2: kl = 0.5 * r * r; break;
        case KlEstimator::kK3: kl = at::expm1(r) - r; break;
      }
      kl = (kl * row.mask).to(at::kCPU, at::kDouble).contiguous();
    }
    const at::Tensor v64 = values.to(at::kCPU, at::kDouble).contiguous();
    auto va = v64.accessor<double, 2>();
    if (!kl.defined()) kl = at::zeros({row.sequences, row.width}, at::kDouble);
    auto ka = kl.accessor<double, 2>();
    std::vector<std::vector<double>> token_rewards, token_values;
    for (int64_t s = 0; s < row.sequences; ++s) {
      const TrainExample& ex = *examples[i][static_cast<size_t>(s)];
      const int64_t n = static_cast<int64_t>(ex.response.size());
      std::vector<double> v(static_cast<size_t>(n)), k(static_cast<size_t>(n));
      for (int64_t j = 0; j < n; ++j) {
        v[static_cast<size_t>(j)] = va[s][j];
        k[static_cast<size_t>(j)] = ka[s][j];
      }
      token_values.push_back(std::move(v));
      if (n == 0) {
        token_rewards.emplace_back();
        continue;
      }
      absl::StatusOr<std::vector<double>> r =
          TokenRewardsWithKlPenalty(ex.reward, k, co.kl_in_reward_coef);
      if (!r.ok()) return r.status();
      token_rewards.push_back(std::move(*r));
    }
    absl::StatusOr<GaeResult> gae = ComputeGae(token_rewards, token_values, co.gae);
    if (!gae.ok()) return gae.status();
    at::Tensor adv = at::zeros({row.sequences, row.width}, at::kFloat);
    at::Tensor ret = at::zeros({row.sequences, row.width}, at::kFloat);
    auto aa = adv.accessor<float, 2>();
    auto ra = ret.accessor<float, 2>();
    for (int64_t s = 0; s < row.sequences; ++s) {
      const auto& a = gae->advantages[static_cast<size_t>(s)];
      for (size_t j = 0; j < a.size(); ++j) {
        aa[s][static_cast<int64_t>(j)] = static_cast<float>(a[j]);
        ra[s][static_cast<int64_t>(j)] = static_cast<float>(gae->returns[static_cast<size_t>(s)][j]);
        moments[0] += a[j];
        moments[1] += a[j] * a[j];
        moments[2] += 1.0;
      }
    }
    row.advantages = OnDevice(adv, device);
    old_values.push_back(values.detach());
    returns.push_back(OnDevice(ret, device));
  }
  if (!co.whiten) return absl::OkStatus();
  if (group != nullptr && group->world_size() > 1) {
    std::vector<at::Tensor> t = {moments};
    absl::Status s = group->AllReduceSum(t);
    if (!s.ok()) return s;
  }
  auto m = moments.accessor<double, 1>();
  if (m[2] == 0) return absl::OkStatus();
  const double mean = m[0] / m[2];
  const double var = std::max(0.0, m[1] / m[2] - mean * mean);
  const double scale = 1.0 / (std::sqrt(var) + kStdEpsilon);
  for (PackedRow& row : rows) row.advantages = (row.advantages - mean) * scale * row.mask;
  return absl::OkStatus();
}

int64_t Trainer::weight_version() const { return impl_->version; }

std::vector<RawTensor> Trainer::ExportWeights() const { return impl_->model->ExportWeights(); }

std::string Trainer::Describe() const { return impl_->model->config().Describe(); }

}  // namespace rlpost
