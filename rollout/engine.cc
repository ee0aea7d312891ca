#include "rollout/engine.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "rollout/engine_impl.h"
#include "rollout/sampler.h"

namespace rlpost {

using rollout_internal::Group;
using rollout_internal::Sequence;

absl::StatusOr<DrafterKind> ParseDrafterKind(const std::string& name) {
  if (name == "none" || name.empty()) return DrafterKind::kNone;
  if (name == "ngram") return DrafterKind::kNgram;
  if (name == "mtp") return DrafterKind::kMtp;
  if (name == "draft") return DrafterKind::kDraftModel;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown drafter '", name, "' (expected none, ngram, mtp or draft)"));
}

std::string DrafterName(DrafterKind kind) {
  switch (kind) {
    case DrafterKind::kNone: return "none";
    case DrafterKind::kNgram: return "ngram";
    case DrafterKind::kMtp: return "mtp";
    case DrafterKind::kDraftModel: return "draft";
  }
  return "none";
}

RolloutEngine::RolloutEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

RolloutEngine::~RolloutEngine() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->loop.joinable()) impl_->loop.join();
  // Unfinished samples end with kAbort.
  std::lock_guard<std::mutex> step(impl_->step_mu);
  impl_->TakeInbox();
  std::vector<Sequence*> finished;
  for (auto& [id, g] : impl_->groups) {
    for (std::unique_ptr<Sequence>& s : g->samples) {
      if (!s->done) impl_->Finish(s.get(), FinishKind::kAbort, &finished);
    }
  }
  impl_->Report(finished);
}

absl::StatusOr<std::unique_ptr<RolloutEngine>> RolloutEngine::Create(
    const ModelConfig& config, const EngineOptions& options) {
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  if (options.max_batch < 1) return absl::InvalidArgumentError("max_batch must be >= 1");
  if (options.kv_block_size < 1) return absl::InvalidArgumentError("kv_block_size must be >= 1");
  if (options.max_prefill_tokens < 1) {
    return absl::InvalidArgumentError("max_prefill_tokens must be >= 1");
  }
  const SpeculationOptions& spec = options.speculation;
  if (spec.max_draft_tokens < 0 || spec.max_draft_tokens > 16) {
    return absl::InvalidArgumentError("max_draft_tokens must be in [0, 16]");
  }
  if (spec.drafter == DrafterKind::kMtp && config.mtp_layers < 1) {
    return absl::InvalidArgumentError(
        "the mtp drafter needs a policy with a multi-token-prediction block (model.mtp_layers=1)");
  }
  if (spec.drafter == DrafterKind::kNgram &&
      (spec.ngram_min < 1 || spec.ngram_max < spec.ngram_min)) {
    return absl::InvalidArgumentError("n-gram drafter needs 1 <= ngram_min <= ngram_max");
  }
  absl::StatusOr<c10::Device> device = OpenDevice("rollout.device", options.device);
  if (!device.ok()) return device.status();
  try {
    auto impl = std::make_unique<Impl>(config, options);
    impl->dtype = options.float64 ? at::kDouble : at::kFloat;
    impl->device = *device;
    impl->model->to(impl->device, impl->dtype);
    impl->model->eval();
    int64_t layers = config.n_layers;
    if (spec.drafter == DrafterKind::kMtp) impl->mtp_kv_layer = layers++;
    const int64_t per_seq = (config.max_seq_len + options.kv_block_size - 1) /
                            options.kv_block_size + 1;
    const int64_t blocks = options.kv_blocks > 0 ? options.kv_blocks : options.max_batch * per_seq;
    impl->pool = std::make_unique<KvBlockPool>(layers, config.n_kv_heads, config.head_dim(),
                                               options.kv_block_size, blocks,
                                               at::TensorOptions().dtype(impl->dtype).device(impl->device));
    for (int64_t l = 0; l < config.n_layers; ++l) {
      if (config.IsMoeLayer(l)) impl->experts_width += config.top_k;
    }
    impl->PublishStats();
    std::unique_ptr<RolloutEngine> engine(new RolloutEngine(std::move(impl)));
    if (options.background_thread) {
      Impl* raw = engine->impl_.get();
      raw->loop = std::thread([raw] {
        while (true) {
          {
            std::unique_lock<std::mutex> lock(raw->mu);
            raw->cv.wait(lock, [raw] {
              return raw->stopping ||
                     (raw->exclusive_waiting == 0 &&
                      (!raw->inbox.empty() || !raw->cancels.empty() || raw->stats.running > 0 ||
                       raw->stats.waiting > 0));
            });
            if (raw->stopping) return;
          }
          std::lock_guard<std::mutex> step(raw->step_mu);
          raw->StepOnce();
        }
      });
    }
    return engine;
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("cannot build the policy: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<int64_t> RolloutEngine::Submit(GenerationRequest request,
                                              SampleCallback on_sample) {
  const ModelConfig& config = impl_->model->config();
  if (request.prompt.empty()) return absl::InvalidArgumentError("empty prompt");
  for (int id : request.prompt) {
    if (id < 0 || id >= config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prompt token id ", id, " outside the vocabulary of ", config.vocab_size));
    }
  }
  if (static_cast<int64_t>(request.prompt.size()) >= config.max_seq_len) {
    return absl::InvalidArgumentError(absl::StrCat("prompt of ", request.prompt.size(),
                                                   " tokens does not fit the context of ",
                                                   config.max_seq_len, " tokens"));
  }
  if (absl::Status s = ValidateSamplingOptions(request.sampling, config.vocab_size); !s.ok()) {
    return s;
  }
  if (request.token_budget < 0) {
    return absl::InvalidArgumentError("token_budget must be >= 0 (0 = no limit)");
  }
  if (!request.sampling.stop_strings.empty() && !request.detokenize) {
    return absl::InvalidArgumentError("stop_strings need a detokenizer");
  }
  if (request.resume.empty() && (request.n < 1 || request.n > 4096)) {
    return absl::InvalidArgumentError(absl::StrCat("n must be in [1, 4096], got ", request.n));
  }
  auto group = std::make_unique<Group>();
  const int64_t prompt_len = static_cast<int64_t>(request.prompt.size());
  if (!request.resume.empty()) {
    for (const SampleOutput& r : request.resume) {
      const size_t n = r.tokens.size();
      if (r.logprobs.size() != n || r.weight_versions.size() != n ||
          (!r.raw_logprobs.empty() && r.raw_logprobs.size() != n)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "resume of sample ", r.sample_index,
            ": tokens, logprobs and weight_versions must have the same length"));
      }
      if (r.finish != FinishKind::kPartial) {
        return absl::InvalidArgumentError(
            absl::StrCat("resume of sample ", r.sample_index, ": it is already finished"));
      }
      if (prompt_len + static_cast<int64_t>(n) >= config.max_seq_len) {
        return absl::InvalidArgumentError(absl::StrCat(
            "resume of sample ", r.sample_index, ": ", prompt_len + static_cast<int64_t>(n),
            " tokens leave no room in the context of ", config.max_seq_len));
      }
      for (int id : r.tokens) {
        if (id < 0 || id >= config.vocab_size) {
          return absl::InvalidArgumentError(absl::StrCat("resume of sample ", r.sample_index,
                                                         ": token id ", id,
                                                         " outside the vocabulary"));
        }
      }
      auto s = std::make_unique<Sequence>();
      s->out = r;
      s->out.drafted_tokens = 0;
      s->out.accepted_tokens = 0;
      if (!request.raw_logprobs) s->out.raw_logprobs.clear();
      if (!request.routed_experts) s->out.routed_experts.clear();
      s->tokens = request.prompt;
      s->tokens.insert(s->tokens.end(), r.tokens.begin(), r.tokens.end());
      s->prompt_len = prompt_len;
      group->samples.push_back(std::move(s));
    }
  } else {
    for (int i = 0; i < request.n; ++i) {
      auto s = std::make_unique<Sequence>();
      s->out.sample_index = i;
      s->out.seed = SampleSeed(request.seed, i);
      s->tokens = request.prompt;
      s->prompt_len = prompt_len;
      group->samples.push_back(std::move(s));
    }
  }
  group->unreported = static_cast<int64_t>(group->samples.size());
  group->request = std::move(request);
  group->callback = std::move(on_sample);
  int64_t id;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    id = impl_->next_request_id++;
    group->id = id;
    impl_->stats.waiting += group->unreported;
    impl_->inbox.push_back(std::move(group));
  }
  impl_->cv.notify_all();
  return id;
}

void RolloutEngine::Cancel(int64_t request_id) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->cancels.push_back(request_id);
  }
  impl_->cv.notify_all();
}

absl::StatusOr<std::vector<SampleOutput>> RolloutEngine::Generate(GenerationRequest request) {
  struct Collector {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<SampleOutput> out;
    size_t expected = 0;
  };
  auto c = std::make_shared<Collector>();
  c->expected = request.resume.empty() ? static_cast<size_t>(std::max(request.n, 0))
                                       : request.resume.size();
  absl::StatusOr<int64_t> id = Submit(std::move(request), [c](const SampleOutput& s) {
    std::lock_guard<std::mutex> lock(c->mu);
    c->out.push_back(s);
    c->cv.notify_all();
  });
  if (!id.ok()) return id.status();
  if (!impl_->options.background_thread) {
    while (true) {
      {
        std::lock_guard<std::mutex> lock(c->mu);
        if (c->out.size() >= c->expected) break;
      }
      if (!Step()) break;
    }
  }
  std::unique_lock<std::mutex> lock(c->mu);
  c->cv.wait(lock, [&] { return c->out.size() >= c->expected; });
  std::vector<SampleOutput> out = std::move(c->out);
  std::sort(out.begin(), out.end(), [](const SampleOutput& a, const SampleOutput& b) {
    return a.sample_index < b.sample_index;
  });
  return out;
}

bool RolloutEngine::Step() {
  std::lock_guard<std::mutex> step(impl_->step_mu);
  try {
    return impl_->StepOnce();
  } catch (const c10::Error& e) {
    // A forward failed (out of memory, a bug): abort what is in flight
    // rather than leave callers waiting.
    std::vector<Sequence*> finished;
    for (auto& [id, g] : impl_->groups) {
      for (std::unique_ptr<Sequence>& s : g->samples) {
        if (!s->done) impl_->Finish(s.get(), FinishKind::kAbort, &finished);
      }
    }
    impl_->Report(finished);
    return false;
  }
}

void RolloutEngine::RunUntilIdle() {
  while (Step()) {
  }
}

absl::Status RolloutEngine::UpdateWeights(int64_t version,
                                          const std::vector<RawTensor>& tensors) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    ++impl_->exclusive_waiting;
  }
  absl::Status status;
  {
    std::lock_guard<std::mutex> step(impl_->step_mu);
    try {
      torch::NoGradGuard no_grad;
      status = impl_->model->ImportWeights(tensors);
    } catch (const c10::Error& e) {
      status = absl::InternalError(absl::StrCat("weight load failed: ", e.what_without_backtrace()));
    }
    if (status.ok()) {
      impl_->version = version;
      impl_->probe_interval = SpecTuner::kRefreshFar;
      // Keys/values of the old weights are recomputed under the new ones.
      for (Sequence* s : impl_->running) impl_->DropKv(s);
      for (auto& [id, g] : impl_->groups) impl_->DropPrefix(g.get());
      impl_->PublishStats();
    }
  }
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    --impl_->exclusive_waiting;
  }
  impl_->cv.notify_all();
  return status;
}

absl::Status RolloutEngine::LoadDraftModel(const ModelConfig& config,
                                           const std::vector<RawTensor>& tensors,
                                           int64_t version) {
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  if (config.vocab_size != impl_->model->config().vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "draft model vocabulary ", config.vocab_size, " differs from the policy's ",
        impl_->model->config().vocab_size));
  }
  if (config.max_seq_len < impl_->model->config().max_seq_len) {
    return absl::InvalidArgumentError(absl::StrCat(
        "draft model context ", config.max_seq_len, " is shorter than the policy's ",
        impl_->model->config().max_seq_len));
  }
  MoeTransformer draft{nullptr};
  try {
    torch::NoGradGuard no_grad;
    draft = MoeTransformer(config);
    draft->to(impl_->device, impl_->dtype);
    draft->eval();
    if (!tensors.empty()) {
      if (absl::Status s = draft->ImportWeights(tensors); !s.ok()) return s;
    }
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot build the draft model: ", e.what_without_backtrace()));
  }
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    ++impl_->exclusive_waiting;
  }
  {
    std::lock_guard<std::mutex> step(impl_->step_mu);
    for (Sequence* s : impl_->running) {
      if (impl_->draft_pool) impl_->draft_pool->ReleaseAll(&s->draft_blocks);
      s->draft_cached = 0;
    }
    const EngineOptions& o = impl_->options;
    const int64_t per_seq = (config.max_seq_len + o.kv_block_size - 1) / o.kv_block_size + 1;
    impl_->draft_pool = std::make_unique<KvBlockPool>(
        config.n_layers, config.n_kv_heads, config.head_dim(), o.kv_block_size,
        o.max_batch * per_seq, at::TensorOptions().dtype(impl_->dtype).device(impl_->device));
    impl_->draft_model = draft;
    impl_->draft_version = version;
    impl_->PublishStats();
  }
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    --impl_->exclusive_waiting;
  }
  impl_->cv.notify_all();
  return absl::OkStatus();
}

std::vector<RawTensor> RolloutEngine::ExportWeights() const {
  std::lock_guard<std::mutex> step(impl_->step_mu);
  return impl_->model->ExportWeights();
}

EngineStats RolloutEngine::Stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

const ModelConfig& RolloutEngine::config() const { return impl_->model->config(); }

std::string RolloutEngine::DescribeSpeculation() const { return impl_->tuner.Describe(); }

std::string RolloutEngine::Describe() const { return impl_->model->config().Describe(); }

int64_t RolloutEngine::weight_version() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats.weight_version;
}

}  // namespace rlpost
