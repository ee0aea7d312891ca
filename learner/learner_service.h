#pragma once
// gRPC front end of learner rank 0, and the loop of the other ranks.
//
// Rank 0 validates each TrainBatch, broadcasts it to the other ranks over the
// process group, and all ranks apply it; rank 0 then publishes the new weight
// version (the last learner.retained_versions are kept for GetWeights). Train calls
// are serialized; GetWeights/GetInfo may run concurrently with them.

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "common/run_config.h"
#include "learner/collective.h"
#include "learner/trainer.h"
#include "model/char_tokenizer.h"
#include "rlpost/v1/learner.grpc.pb.h"

namespace rlpost {

// Converts a batch into trainer inputs (tokenizing text samples) and options.
absl::Status BuildTrainInputs(const v1::TrainBatch& batch, const RunConfig& config,
                              const CharTokenizer& tokenizer,
                              std::vector<TrainExample>* examples, StepOptions* options);

class LearnerServiceImpl final : public v1::LearnerService::Service {
 public:
  // trainer is not owned; group may be null (single rank). `resumed` is
  // where the trainer was restored from (reported by GetInfo), if anywhere.
  LearnerServiceImpl(Trainer* trainer, ProcessGroupHandle* group, const RunConfig& config,
                     const ResumePoint* resumed = nullptr);

  grpc::Status Train(grpc::ServerContext* context, const v1::TrainBatch* request,
                     v1::TrainResult* response) override;
  grpc::Status GetWeights(grpc::ServerContext* context, const v1::GetWeightsRequest* request,
                          grpc::ServerWriter<v1::WeightChunk>* writer) override;
  grpc::Status SaveCheckpoint(grpc::ServerContext* context,
                              const v1::SaveCheckpointRequest* request,
                              v1::SaveCheckpointResponse* response) override;
  grpc::Status Restore(grpc::ServerContext* context, const v1::RestoreRequest* request,
                       v1::LearnerInfo* response) override;
  grpc::Status GetInfo(grpc::ServerContext* context, const v1::GetInfoRequest* request,
                       v1::LearnerInfo* response) override;

  // Tells the other ranks to exit (call once, after the server stopped).
  void StopFollowers();

 private:
  void Publish();

  Trainer* trainer_;
  ProcessGroupHandle* group_;
  RunConfig config_;
  CharTokenizer tokenizer_;
  std::mutex train_mu_;  // serializes Train, SaveCheckpoint and group traffic
  std::mutex published_mu_;
  std::map<int64_t, std::shared_ptr<const std::vector<RawTensor>>> published_;
  int64_t steps_ = 0;
  ResumePoint resumed_;
};

// Ranks > 0: apply every batch rank 0 broadcasts until it says stop.
absl::Status RunFollower(Trainer* trainer, ProcessGroupHandle* group, const RunConfig& config);

}  // namespace rlpost
