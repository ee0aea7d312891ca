#include "learner/trainer.h"

#include <ATen/ATen.h>
#include <torch/types.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/utils.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "learner/collective.h"
#include "learner/policy_loss.h"
#include "model/checkpoint.h"
#include "model/moe_transformer.h"

namespace rlpost {

struct Trainer::Impl {
  Impl(const ModelConfig& config, const RunConfig& run)
      : model(config),
        optimizer(model->parameters(),
                  torch::optim::AdamWOptions(run.rl_lr)
                      .betas({0.9, 0.99})
                      .weight_decay(run.weight_decay)) {}
  MoeTransformer model;
  torch::optim::AdamW optimizer;
  // The frozen reference policy of the KL term: the weights at the first
  // policy-gradient step that asks for it (after any SFT warm start).
  MoeTransformer reference{nullptr};
  ProcessGroupHandle* group = nullptr;
  int64_t version = 0;
  int64_t steps = 0;
};

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
    std::vector<const TrainExample*> mine;
    for (size_t i = rank; i < batch.size(); i += static_cast<size_t>(world)) mine.push_back(&batch[i]);

    // [loss_sum, clipped, kl_sum, mtp_loss_sum, mtp_tokens, ref_kl_sum,
    // entropy_sum] over this rank's tokens.
    at::Tensor local = at::zeros({7}, at::kDouble);
    if (!mine.empty()) {
      std::vector<std::vector<int>> seqs;
      for (const TrainExample* ex : mine) {
        std::vector<int> s = ex->prompt;
        s.insert(s.end(), ex->response.begin(), ex->response.end());
        seqs.push_back(std::move(s));
      }
      PaddedBatch pb = LeftPad(seqs);
      int64_t b = pb.tokens.size(0), t = pb.tokens.size(1);
      // Router replay: response positions use the experts the rollout
      // recorded; prompt positions (not recorded) route as usual.
      std::vector<at::Tensor> replay;
      at::Tensor replay_rows;
      bool any_replay = false;
      for (const TrainExample* ex : mine) any_replay |= !ex->routed_experts.empty();
      ForwardOptions fo;
      if (any_replay) {
        const int64_t k = config.top_k;
        replay_rows = at::zeros({b * t}, at::kBool);
        bool* rows = replay_rows.data_ptr<bool>();
        replay.resize(static_cast<size_t>(config.n_layers));
        int64_t offset = 0;  // of this layer's ids within a token's record
        for (int64_t l = 0; l < config.n_layers; ++l) {
          if (!config.IsMoeLayer(l)) continue;
          at::Tensor ids = at::zeros({b * t, k}, at::kLong);
          int64_t* d = ids.data_ptr<int64_t>();
          for (int64_t i = 0; i < b; ++i) {
            const TrainExample& ex = *mine[i];
            if (ex.routed_experts.empty()) continue;
            const int64_t pad = t - static_cast<int64_t>(seqs[i].size());
            const int64_t width = static_cast<int64_t>(ex.routed_experts.size()) /
                                  static_cast<int64_t>(ex.response.size());
            for (size_t j = 0; j < ex.response.size(); ++j) {
              const int64_t row =
                  i * t + pad + static_cast<int64_t>(ex.prompt.size()) - 1 + static_cast<int64_t>(j);
              rows[row] = true;
              for (int64_t e = 0; e < k; ++e) {
                d[row * k + e] = ex.routed_experts[j * width + offset + e];
              }
            }
          }
          replay[l] = ids;
          offset += k;
        }
        fo.replay_expert_ids = &replay;
        fo.replay_token_mask = &replay_rows;
      }
      ForwardOutput out = impl_->model->Forward(pb.tokens, pb.positions, pb.mask, fo);
      at::Tensor logits = out.logits.narrow(1, 0, t - 1);
      if (options.temperature > 0 && options.temperature != 1.0) logits = logits / options.temperature;
      at::Tensor logp_all = at::log_softmax(logits, -1);
      at::Tensor target = pb.tokens.narrow(1, 1, t - 1);
      at::Tensor logp = logp_all.gather(-1, target.unsqueeze(-1)).squeeze(-1);  // [B, T-1]

      at::Tensor resp_mask = at::zeros({b, t - 1}, at::kFloat);
      at::Tensor old = at::zeros({b, t - 1}, at::kFloat);
      at::Tensor adv = at::zeros({b, 1}, at::kFloat);
      auto m = resp_mask.accessor<float, 2>();
      auto o = old.accessor<float, 2>();
      auto a = adv.accessor<float, 2>();
      for (int64_t i = 0; i < b; ++i) {
        const TrainExample& ex = *mine[i];
        int64_t pad = t - static_cast<int64_t>(seqs[i].size());
        int64_t first = pad + static_cast<int64_t>(ex.prompt.size()) - 1;  // predicts response[0]
        for (size_t j = 0; j < ex.response.size(); ++j) {
          m[i][first + j] = 1.0f;
          if (options.objective == TrainObjective::kPolicyGradient) o[i][first + j] = ex.old_logprobs[j];
        }
        a[i][0] = ex.advantage;
      }
      at::Tensor loss;
      if (options.objective == TrainObjective::kSft) {
        at::Tensor loss_sum = (-logp * resp_mask).sum();
        local[0] = loss_sum.detach().to(at::kDouble);
        loss = loss_sum / static_cast<double>(global_tokens);
      } else {
        PolicyLossTerms pg = PolicyGradientLoss(logp, old, adv, resp_mask, options.policy);
        at::Tensor token_loss = pg.token_loss;
        at::Tensor positive = at::zeros({b, 1}, at::kFloat);
        auto pos = positive.accessor<float, 2>();
        for (int64_t i = 0; i < b; ++i) pos[i][0] = mine[i]->reward > 0 ? 1.0f : 0.0f;
        if (options.nll_coef > 0) token_loss = token_loss - options.nll_coef * logp * positive;
        // Per-token entropy of the sampling distribution: reported, and a
        // bonus when entropy_coef > 0.
        const at::Tensor entropy = -(at::exp(logp_all) * logp_all).sum(-1);
        if (options.entropy_coef > 0) token_loss = token_loss - options.entropy_coef * entropy;
        if (options.kl_coef > 0) {
          at::Tensor ref_logp;
          {
            torch::NoGradGuard no_grad;
            at::Tensor ref_logits =
                impl_->reference->Forward(pb.tokens, pb.positions, pb.mask, nullptr)
                    .logits.narrow(1, 0, t - 1);
            if (options.temperature > 0 && options.temperature != 1.0) {
              ref_logits = ref_logits / options.temperature;
            }
            ref_logp = at::log_softmax(ref_logits, -1).gather(-1, target.unsqueeze(-1)).squeeze(-1);
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
          local[5] = (kl.detach() * resp_mask).sum().to(at::kDouble);
        }
        at::Tensor loss_sum = (token_loss * resp_mask).sum();
        local[0] = loss_sum.detach().to(at::kDouble);
        LossScale scale;
        scale.mode = options.aggregation;
        scale.global_tokens = global_tokens;
        scale.global_sequences = static_cast<int64_t>(batch.size());
        scale.norm_length = options.norm_length;
        loss = AggregateLoss(token_loss, resp_mask, scale);
        torch::NoGradGuard no_grad;
        at::Tensor neg = -(logp - old).detach();
        at::Tensor k3 = (at::exp(neg) - 1.0 - neg) * resp_mask;
        local[1] = pg.clipped.sum().to(at::kDouble);
        local[2] = k3.sum().to(at::kDouble);
        local[6] = (entropy.detach() * resp_mask).sum().to(at::kDouble);
      }
      loss = loss + options.aux_loss_coef * out.aux_loss / static_cast<double>(world);
      if (config.mtp_layers > 0 && t > 2) {
        // Column i predicts token i+2; it counts where token i+2 is a response token.
        bool sft = options.objective == TrainObjective::kSft;
        at::Tensor mtp_logits = impl_->model->MtpForward(
            out.hidden.narrow(1, 0, t - 2), pb.tokens.narrow(1, 1, t - 2),
            pb.positions.narrow(1, 0, t - 2), pb.mask.narrow(1, 0, t - 2), nullptr,
            /*train_shared=*/sft);
        at::Tensor mtp_target = pb.tokens.narrow(1, 2, t - 2);
        at::Tensor mtp_ce = -at::log_softmax(mtp_logits, -1)
                                 .gather(-1, mtp_target.unsqueeze(-1))
                                 .squeeze(-1);
        at::Tensor mtp_mask = resp_mask.narrow(1, 1, t - 2);
        at::Tensor mtp_sum = (mtp_ce * mtp_mask).sum();
        local[3] = mtp_sum.detach().to(at::kDouble);
        local[4] = mtp_mask.sum().to(at::kDouble);
        loss = loss + options.mtp_loss_coef * mtp_sum / static_cast<double>(global_tokens);
      }
      loss.backward();
    }

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

absl::Status Trainer::SaveCheckpoint(const std::string& dir_arg) const {
  std::string dir = dir_arg;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  // Atomic: everything goes into a sibling temporary directory, which then
  // replaces `dir` by rename; a crash leaves either the old checkpoint or
  // the new one, never a mix (and at worst a stale temporary directory).
  namespace fs = std::filesystem;
  const std::string tmp = absl::StrCat(dir, ".tmp");
  const std::string old = absl::StrCat(dir, ".old");
  std::error_code ec;
  fs::remove_all(tmp, ec);
  absl::Status s = rlpost::SaveCheckpoint(*impl_->model, tmp);
  if (!s.ok()) return s;
  nlohmann::json state = {{"weight_version", impl_->version}, {"optimizer_steps", impl_->steps}};
  {
    std::ofstream out(tmp + "/trainer_state.json");
    out << state.dump(2) << "\n";
    out.flush();
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp, "/trainer_state.json"));
  }
  fs::remove_all(old, ec);
  if (fs::exists(dir)) {
    fs::rename(dir, old, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot move ", dir, " aside: ", ec.message()));
  }
  fs::rename(tmp, dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", dir, ": ", ec.message()));
  fs::remove_all(old, ec);
  return absl::OkStatus();
}

}  // namespace rlpost
