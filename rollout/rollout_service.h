#pragma once
// gRPC front end of a rollout worker: Generate (one server stream per group),
// UpdateWeights (client stream of WeightChunk) and GetInfo, over a
// PolicyEngine. Thread-safe: handlers run concurrently on gRPC's threads.

#include <atomic>
#include <chrono>

#include "model/char_tokenizer.h"
#include "rlpost/v1/rollout.grpc.pb.h"
#include "rollout/engine.h"

namespace rlpost {

class RolloutServiceImpl final : public v1::RolloutService::Service {
 public:
  explicit RolloutServiceImpl(PolicyEngine* engine);  // not owned

  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override;
  grpc::Status UpdateWeights(grpc::ServerContext* context,
                             grpc::ServerReader<v1::WeightChunk>* reader,
                             v1::UpdateWeightsResponse* response) override;
  grpc::Status GetInfo(grpc::ServerContext* context, const v1::GetInfoRequest* request,
                       v1::RolloutInfo* response) override;

 private:
  PolicyEngine* engine_;
  CharTokenizer tokenizer_;
  std::chrono::steady_clock::time_point started_;
  std::atomic<int64_t> tokens_{0};
  std::atomic<int64_t> completions_{0};
  std::atomic<int64_t> decode_micros_{0};
  std::atomic<int32_t> active_{0};
};

}  // namespace rlpost
