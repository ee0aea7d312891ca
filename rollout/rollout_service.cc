#include "rollout/rollout_service.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"
#include "common/logging.h"
#include "common/weight_chunks.h"

namespace rlpost {

RolloutServiceImpl::RolloutServiceImpl(PolicyEngine* engine)
    : engine_(engine), started_(std::chrono::steady_clock::now()) {}

grpc::Status RolloutServiceImpl::Generate(grpc::ServerContext* context,
                                          const v1::GenerateRequest* request,
                                          grpc::ServerWriter<v1::GenerateResponse>* writer) {
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
  int n = std::max(1, request->n());
  if (n > 4096) {
    return ToGrpcStatus(absl::InvalidArgumentError("n must be at most 4096"));
  }
  const v1::SamplingParams& p = request->params();
  if (p.temperature() < 0 || p.top_p() < 0 || p.top_k() < 0 || p.max_new_tokens() < 0) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        "sampling params: temperature, top_p, top_k and max_new_tokens must not be negative"));
  }
  SamplingOptions options;
  options.temperature = p.temperature();
  options.top_p = p.top_p();
  options.top_k = p.top_k();
  options.max_new_tokens = p.max_new_tokens();
  options.stop_token_ids.assign(p.stop_token_ids().begin(), p.stop_token_ids().end());
  std::vector<std::vector<int>> prompts(static_cast<size_t>(n), prompt);
  std::vector<uint64_t> seeds;
  for (int i = 0; i < n; ++i) seeds.push_back(SampleSeed(p.seed(), i));

  active_.fetch_add(1);
  auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<std::vector<Generation>> gens =
      engine_->Generate(prompts, seeds, options, CharTokenizer::kEos);
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - t0).count();
  active_.fetch_sub(1);
  if (!gens.ok()) return ToGrpcStatus(gens.status());
  decode_micros_.fetch_add(micros);

  // Shorter completions finished first: stream them in that order.
  std::vector<int> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return (*gens)[a].tokens.size() < (*gens)[b].tokens.size();
  });
  for (int i : order) {
    if (context->IsCancelled()) return grpc::Status::CANCELLED;
    const Generation& g = (*gens)[i];
    v1::GenerateResponse resp;
    v1::Completion* c = resp.mutable_completion();
    c->set_prompt_id(request->prompt_id());
    c->set_sample_index(i);
    for (int id : prompt) c->add_prompt_token_ids(id);
    for (size_t j = 0; j < g.tokens.size(); ++j) {
      c->add_token_ids(g.tokens[j]);
      c->add_logprobs(g.logprobs[j]);
      c->add_weight_versions(g.weight_version);
    }
    c->set_finish_reason(g.finish == FinishKind::kStop ? v1::FINISH_REASON_STOP
                                                       : v1::FINISH_REASON_LENGTH);
    c->set_text(tokenizer_.Decode(g.tokens));
    c->set_seed(g.seed);
    tokens_.fetch_add(static_cast<int64_t>(g.tokens.size()));
    completions_.fetch_add(1);
    if (!writer->Write(resp)) return grpc::Status::CANCELLED;
  }
  return grpc::Status::OK;
}

grpc::Status RolloutServiceImpl::UpdateWeights(grpc::ServerContext* /*context*/,
                                               grpc::ServerReader<v1::WeightChunk>* reader,
                                               v1::UpdateWeightsResponse* response) {
  WeightAssembler assembler;
  v1::WeightChunk chunk;
  while (reader->Read(&chunk)) {
    absl::Status s = assembler.Add(chunk);
    if (!s.ok()) return ToGrpcStatus(s);
  }
  absl::StatusOr<std::vector<RawTensor>> tensors = assembler.Finish();
  if (!tensors.ok()) return ToGrpcStatus(tensors.status());
  if (assembler.version() < engine_->weight_version()) {
    return ToGrpcStatus(absl::FailedPreconditionError(
        absl::StrCat("weight version ", assembler.version(), " is older than the loaded ",
                     engine_->weight_version())));
  }
  absl::Status s = engine_->LoadWeights(assembler.version(), *tensors);
  if (!s.ok()) return ToGrpcStatus(s);
  response->set_weight_version(assembler.version());
  response->set_tensors(static_cast<int32_t>(tensors->size()));
  response->set_bytes(assembler.bytes());
  return grpc::Status::OK;
}

grpc::Status RolloutServiceImpl::GetInfo(grpc::ServerContext* /*context*/,
                                         const v1::GetInfoRequest* /*request*/,
                                         v1::RolloutInfo* response) {
  response->set_weight_version(engine_->weight_version());
  response->set_model(engine_->Describe());
  response->set_tokens_generated(tokens_.load());
  response->set_completions_generated(completions_.load());
  response->set_active_requests(active_.load());
  double seconds = static_cast<double>(decode_micros_.load()) / 1e6;
  response->set_tokens_per_second(seconds > 0 ? static_cast<double>(tokens_.load()) / seconds
                                              : 0.0);
  return grpc::Status::OK;
}

}  // namespace rlpost
