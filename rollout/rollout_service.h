#pragma once
// gRPC front end of a rollout worker over a RolloutEngine: Generate (one
// server stream per group, completions streamed as they finish), UpdateWeights
// (client stream of WeightChunk, for the policy or the draft model) and
// GetInfo. Thread-safe: handlers run concurrently on gRPC's threads; the
// engine batches the groups of all concurrent Generate calls together.

#include <atomic>

#include "model/char_tokenizer.h"
#include "rlpost/v1/rollout.grpc.pb.h"
#include "rollout/engine.h"

namespace rlpost {

class RolloutServiceImpl final : public v1::RolloutService::Service {
 public:
  explicit RolloutServiceImpl(RolloutEngine* engine);  // not owned

  // A worker joining a running job (rlpost-rollout --controller) must not
  // serve with its initial weights: until the first policy UpdateWeights,
  // Generate answers UNAVAILABLE (the controller re-queues such requests).
  void RequireWeightsBeforeServing() { awaiting_weights_.store(true); }

  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override;
  grpc::Status UpdateWeights(grpc::ServerContext* context,
                             grpc::ServerReader<v1::WeightChunk>* reader,
                             v1::UpdateWeightsResponse* response) override;
  grpc::Status GetInfo(grpc::ServerContext* context, const v1::GetInfoRequest* request,
                       v1::RolloutInfo* response) override;

 private:
  RolloutEngine* engine_;
  CharTokenizer tokenizer_;
  std::atomic<int32_t> active_{0};
  std::atomic<bool> awaiting_weights_{false};
};

}  // namespace rlpost
