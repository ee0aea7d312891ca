#include "rollout/engine.h"

#include <torch/utils.h>

#include <shared_mutex>

#include "absl/strings/str_cat.h"
#include "model/moe_transformer.h"

namespace rlpost {

struct PolicyEngine::Impl {
  explicit Impl(const ModelConfig& config) : model(config) { model->eval(); }
  mutable std::shared_mutex mu;
  MoeTransformer model;
  int64_t version = 0;
};

PolicyEngine::PolicyEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PolicyEngine::~PolicyEngine() = default;

absl::StatusOr<std::unique_ptr<PolicyEngine>> PolicyEngine::Create(const ModelShape& shape,
                                                                   int64_t vocab_size) {
  try {
    auto impl = std::make_unique<Impl>(ModelConfig::FromShape(shape, vocab_size));
    return std::unique_ptr<PolicyEngine>(new PolicyEngine(std::move(impl)));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("cannot build the policy: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<std::vector<Generation>> PolicyEngine::Generate(
    const std::vector<std::vector<int>>& prompts, const std::vector<uint64_t>& seeds,
    const SamplingOptions& options, int eos_token) {
  if (prompts.empty()) return std::vector<Generation>{};
  if (seeds.size() != prompts.size()) {
    return absl::InvalidArgumentError("one seed per prompt is required");
  }
  std::shared_lock<std::shared_mutex> lock(impl_->mu);
  const ModelConfig& config = impl_->model->config();
  int64_t longest = 0;
  for (const auto& p : prompts) {
    if (p.empty()) return absl::InvalidArgumentError("empty prompt");
    for (int id : p) {
      if (id < 0 || id >= config.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("prompt token id ", id,
                                                       " outside the vocabulary of ",
                                                       config.vocab_size));
      }
    }
    longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
  }
  if (longest >= config.max_seq_len) {
    return absl::InvalidArgumentError(absl::StrCat("prompt of ", longest,
                                                   " tokens does not fit the context of ",
                                                   config.max_seq_len));
  }
  int64_t budget = config.max_seq_len - longest;
  if (options.max_new_tokens > 0) budget = std::min<int64_t>(budget, options.max_new_tokens);

  const int64_t b = static_cast<int64_t>(prompts.size());
  std::vector<Generation> out(static_cast<size_t>(b));
  std::vector<std::mt19937_64> rngs;
  for (int64_t i = 0; i < b; ++i) {
    rngs.emplace_back(seeds[i]);
    out[i].seed = seeds[i];
    out[i].weight_version = impl_->version;
  }
  std::vector<bool> done(static_cast<size_t>(b), false);
  auto is_stop = [&](int tok) {
    if (tok == eos_token) return true;
    for (int s : options.stop_token_ids) {
      if (s == tok) return true;
    }
    return false;
  };

  try {
    torch::NoGradGuard no_grad;
    PaddedBatch batch = LeftPad(prompts);
    int64_t prompt_cols = batch.tokens.size(1);
    KvCache cache = impl_->model->NewCache(b, prompt_cols + budget);
    ForwardOptions sampling;
    sampling.cache = &cache;
    sampling.router_losses = false;
    at::Tensor mask = batch.mask;
    at::Tensor logits = impl_->model->Forward(batch.tokens, batch.positions, mask, sampling)
                            .logits.select(1, prompt_cols - 1);
    int64_t remaining = b;
    for (int64_t step = 0; step < budget && remaining > 0; ++step) {
      at::Tensor row_logits = logits.to(at::kFloat).contiguous();
      const float* data = row_logits.data_ptr<float>();
      at::Tensor next = at::zeros({b, 1}, at::kLong);
      at::Tensor pos = at::zeros({b, 1}, at::kLong);
      at::Tensor col = at::zeros({b, 1}, at::kBool);
      auto next_a = next.accessor<int64_t, 2>();
      auto pos_a = pos.accessor<int64_t, 2>();
      auto col_a = col.accessor<bool, 2>();
      for (int64_t i = 0; i < b; ++i) {
        if (done[i]) continue;
        SampledToken s = SampleToken(data + i * config.vocab_size,
                                     static_cast<int>(config.vocab_size), options, rngs[i]);
        out[i].tokens.push_back(s.token);
        out[i].logprobs.push_back(s.logprob);
        if (is_stop(s.token)) {
          out[i].finish = FinishKind::kStop;
          done[i] = true;
          --remaining;
          continue;
        }
        next_a[i][0] = s.token;
        pos_a[i][0] = batch.lengths[i] + static_cast<int64_t>(out[i].tokens.size()) - 1;
        col_a[i][0] = true;
      }
      if (remaining == 0 || step + 1 == budget) break;
      mask = at::cat({mask, col}, 1);
      logits = impl_->model->Forward(next, pos, mask, sampling).logits.select(1, 0);
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("generation failed: ", e.what_without_backtrace()));
  }
  return out;
}

absl::Status PolicyEngine::LoadWeights(int64_t version, const std::vector<RawTensor>& tensors) {
  std::unique_lock<std::shared_mutex> lock(impl_->mu);
  try {
    absl::Status s = impl_->model->ImportWeights(tensors);
    if (!s.ok()) return s;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("weight load failed: ", e.what_without_backtrace()));
  }
  impl_->version = version;
  return absl::OkStatus();
}

std::vector<RawTensor> PolicyEngine::ExportWeights() const {
  std::shared_lock<std::shared_mutex> lock(impl_->mu);
  return impl_->model->ExportWeights();
}

int64_t PolicyEngine::weight_version() const {
  std::shared_lock<std::shared_mutex> lock(impl_->mu);
  return impl_->version;
}

std::string PolicyEngine::Describe() const { return impl_->model->config().Describe(); }

int64_t PolicyEngine::max_seq_len() const { return impl_->model->config().max_seq_len; }

}  // namespace rlpost
