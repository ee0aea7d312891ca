#include "rollout/rollout_service.h"

#include <condition_variable>
#include <deque>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"
#include "common/logging.h"
#include "common/weight_chunks.h"
#include "model/model_config.h"

namespace rlpost {
namespace {

v1::FinishReason ToProto(FinishKind kind) {
  switch (kind) {
    case FinishKind::kStop: return v1::FINISH_REASON_STOP;
    case FinishKind::kLength: return v1::FINISH_REASON_LENGTH;
    case FinishKind::kAbort: return v1::FINISH_REASON_ABORT;
    case FinishKind::kPartial: return v1::FINISH_REASON_PARTIAL;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

// A Completion to continue, back into engine form.
absl::StatusOr<SampleOutput> FromProto(const v1::Completion& c) {
  if (c.finish_reason() != v1::FINISH_REASON_PARTIAL) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resume: completion ", c.sample_index(), " is not partial (finish_reason ",
        v1::FinishReason_Name(c.finish_reason()), ")"));
  }
  SampleOutput s;
  s.sample_index = c.sample_index();
  s.seed = c.seed();
  s.tokens.assign(c.token_ids().begin(), c.token_ids().end());
  s.logprobs.assign(c.logprobs().begin(), c.logprobs().end());
  s.raw_logprobs.assign(c.raw_logprobs().begin(), c.raw_logprobs().end());
  s.weight_versions.assign(c.weight_versions().begin(), c.weight_versions().end());
  s.routed_experts.assign(c.routed_experts().begin(), c.routed_experts().end());
  s.finish = FinishKind::kPartial;
  return s;
}

int32_t ExpertsPerToken(const ModelConfig& config) {
  int32_t n = 0;
  for (int64_t l = 0; l < config.n_layers; ++l) {
    if (config.IsMoeLayer(l)) n += static_cast<int32_t>(config.top_k);
  }
  return n;
}

}  // namespace

RolloutServiceImpl::RolloutServiceImpl(RolloutEngine* engine) : engine_(engine) {}

grpc::Status RolloutServiceImpl::Generate(grpc::ServerContext* context,
                                          const v1::GenerateRequest* request,
                                          grpc::ServerWriter<v1::GenerateResponse>* writer) {
  if (awaiting_weights_.load()) {
    return ToGrpcStatus(absl::UnavailableError(
        "joining: waiting for the controller to send the current weights"));
  }
  std::vector<int> prompt = {CharTokenizer::kBos};
  if (request->prompt_token_ids_size() > 0) {
    prompt.insert(prompt.end(), request->prompt_token_ids().begin(),
                  request->prompt_token_ids().end());
  } else {
    absl::StatusOr<std::vector<int>> ids = tokenizer_.Encode(request->prompt());
    if (!ids.ok()) {
      return ToGrpcStatus(absl::InvalidArgumentError(
          absl::StrCat("prompt '", request->prompt_id(), "': ", ids.status().message())));
    }
    prompt.insert(prompt.end(), ids->begin(), ids->end());
  }
  const v1::SamplingParams& p = request->params();
  GenerationRequest req;
  req.prompt = prompt;
  req.n = std::max(1, request->n());
  req.sampling.temperature = p.temperature();
  req.sampling.top_p = p.top_p();
  req.sampling.top_k = p.top_k();
  req.sampling.max_new_tokens = p.max_new_tokens();
  req.sampling.stop_token_ids.assign(p.stop_token_ids().begin(), p.stop_token_ids().end());
  req.sampling.stop_strings.assign(p.stop_strings().begin(), p.stop_strings().end());
  req.seed = p.seed();
  req.token_budget = request->token_budget();
  req.raw_logprobs = request->return_raw_logprobs();
  req.routed_experts = request->return_routed_experts();
  req.eos_token = CharTokenizer::kEos;
  req.detokenize = [this](const std::vector<int>& ids) { return tokenizer_.Decode(ids); };
  for (const v1::Completion& c : request->resume()) {
    absl::StatusOr<SampleOutput> s = FromProto(c);
    if (!s.ok()) return ToGrpcStatus(s.status());
    req.resume.push_back(*std::move(s));
  }
  const size_t expected = req.resume.empty() ? static_cast<size_t>(req.n) : req.resume.size();

  // Completions arrive on the engine's thread; this handler writes them.
  struct Inbox {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<SampleOutput> ready;
  };
  auto inbox = std::make_shared<Inbox>();
  absl::StatusOr<int64_t> id = engine_->Submit(std::move(req), [inbox](const SampleOutput& s) {
    std::lock_guard<std::mutex> lock(inbox->mu);
    inbox->ready.push_back(s);
    inbox->cv.notify_all();
  });
  if (!id.ok()) {
    return ToGrpcStatus(absl::Status(id.status().code(),
                                     absl::StrCat("prompt '", request->prompt_id(),
                                                  "': ", id.status().message())));
  }
  active_.fetch_add(1);
  const int32_t experts_per_token = ExpertsPerToken(engine_->config());
  size_t written = 0;
  bool cancelled = false;
  while (written < expected) {
    SampleOutput s;
    {
      std::unique_lock<std::mutex> lock(inbox->mu);
      // Wake up now and then to notice a cancelled call.
      if (!inbox->cv.wait_for(lock, std::chrono::milliseconds(100),
                              [&] { return !inbox->ready.empty(); })) {
        if (!cancelled && context->IsCancelled()) {
          cancelled = true;
          engine_->Cancel(*id);
        }
        continue;
      }
      s = std::move(inbox->ready.front());
      inbox->ready.pop_front();
    }
    ++written;
    if (cancelled) continue;  // drain the aborted samples
    v1::GenerateResponse resp;
    v1::Completion* c = resp.mutable_completion();
    c->set_prompt_id(request->prompt_id());
    c->set_sample_index(s.sample_index);
    for (int t : prompt) c->add_prompt_token_ids(t);
    c->mutable_token_ids()->Add(s.tokens.begin(), s.tokens.end());
    c->mutable_logprobs()->Add(s.logprobs.begin(), s.logprobs.end());
    c->mutable_weight_versions()->Add(s.weight_versions.begin(), s.weight_versions.end());
    c->mutable_raw_logprobs()->Add(s.raw_logprobs.begin(), s.raw_logprobs.end());
    c->mutable_routed_experts()->Add(s.routed_experts.begin(), s.routed_experts.end());
    if (!s.routed_experts.empty()) c->set_experts_per_token(experts_per_token);
    c->set_finish_reason(ToProto(s.finish));
    c->set_text(tokenizer_.Decode(s.tokens));
    c->set_seed(s.seed);
    c->set_drafted_tokens(s.drafted_tokens);
    c->set_accepted_tokens(s.accepted_tokens);
    if (!writer->Write(resp)) {
      cancelled = true;
      engine_->Cancel(*id);
    }
  }
  active_.fetch_sub(1);
  return cancelled ? grpc::Status::CANCELLED : grpc::Status::OK;
}

grpc::Status RolloutServiceImpl::UpdateWeights(grpc::ServerContext* /*context*/,
                                               grpc::ServerReader<v1::WeightChunk>* reader,
                                               v1::UpdateWeightsResponse* response) {
  WeightAssembler assembler;
  v1::WeightChunk chunk;
  std::string target, config_json;
  bool rollback = false;
  while (reader->Read(&chunk)) {
    rollback = rollback || chunk.rollback();
    if (!chunk.target().empty()) target = chunk.target();
    if (!chunk.model_config_json().empty()) config_json = chunk.model_config_json();
    absl::Status s = assembler.Add(chunk);
    if (!s.ok()) return ToGrpcStatus(s);
  }
  absl::StatusOr<std::vector<RawTensor>> tensors = assembler.Finish();
  if (!tensors.ok()) return ToGrpcStatus(tensors.status());
  absl::Status s;
  if (target.empty() || target == "policy") {
    if (assembler.version() < engine_->weight_version() && !rollback) {
      return ToGrpcStatus(absl::FailedPreconditionError(
          absl::StrCat("weight version ", assembler.version(), " is older than the loaded ",
                       engine_->weight_version(), " (and not marked as a rollback)")));
    }
    s = engine_->UpdateWeights(assembler.version(), *tensors);
    if (s.ok()) awaiting_weights_.store(false);
  } else if (target == "draft") {
    if (config_json.empty()) {
      return ToGrpcStatus(absl::InvalidArgumentError(
          "draft model weights need model_config_json (its config.json) on a chunk"));
    }
    absl::StatusOr<ModelConfig> config = ParseConfigJson(config_json);
    if (!config.ok()) {
      return ToGrpcStatus(absl::InvalidArgumentError(
          absl::StrCat("draft model config.json: ", config.status().message())));
    }
    s = engine_->LoadDraftModel(*config, *tensors, assembler.version());
  } else {
    return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "weight target '", target, "' is neither 'policy' nor 'draft'")));
  }
  if (!s.ok()) return ToGrpcStatus(s);
  response->set_weight_version(assembler.version());
  response->set_tensors(static_cast<int32_t>(tensors->size()));
  response->set_bytes(assembler.bytes());
  return grpc::Status::OK;
}

grpc::Status RolloutServiceImpl::GetInfo(grpc::ServerContext* /*context*/,
                                         const v1::GetInfoRequest* /*request*/,
                                         v1::RolloutInfo* response) {
  const EngineStats st = engine_->Stats();
  response->set_weight_version(st.weight_version);
  response->set_model(engine_->Describe());
  response->set_tokens_generated(st.tokens_generated);
  response->set_completions_generated(st.samples_finished);
  response->set_active_requests(active_.load());
  response->set_tokens_per_second(
      st.step_seconds > 0 ? static_cast<double>(st.tokens_generated) / st.step_seconds : 0.0);
  response->set_queued_completions(st.waiting);
  response->set_drafter(st.drafter);
  response->set_drafted_tokens(st.drafted_tokens);
  response->set_accepted_tokens(st.accepted_tokens);
  response->set_acceptance_rate(st.drafted_tokens > 0 ? static_cast<double>(st.accepted_tokens) /
                                                            static_cast<double>(st.drafted_tokens)
                                                      : 0.0);
  response->set_mean_draft_length(st.mean_draft_length);
  response->set_draft_model_version(st.draft_model_version);
  response->set_kv_blocks_total(st.kv_blocks_total);
  response->set_kv_blocks_free(st.kv_blocks_free);
  response->set_preemptions(st.preemptions);
  response->set_steps(st.steps);
  return grpc::Status::OK;
}

}  // namespace rlpost
