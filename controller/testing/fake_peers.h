#pragma once
// In-process fakes of the rollout, verifier and learner services, served over
// real gRPC on 127.0.0.1:0, for testing the controller's run loop.
//
// FakeRollout answers "a+b=" prompts with deterministic completions ending in
// \boxed{...}: right or wrong depending on the sample seed (or always right in
// kAllCorrect mode), and records the versions it receives. FakeVerifier
// compares the last \boxed{} with the reference. FakeLearner bumps its version
// on every Train call and serves two tensors of that version with real
// CRC-32C checksums. All are thread-safe.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/grpc_util.h"
#include "rlpost/v1/learner.grpc.pb.h"
#include "rlpost/v1/rollout.grpc.pb.h"
#include "rlpost/v1/verifier.grpc.pb.h"

namespace rlpost::testing {

class FakeRollout final : public v1::RolloutService::Service {
 public:
  // kHang: Generate blocks until the call is cancelled.
  // kSomeTruncated: like kMixed, but a quarter of the samples stop at the
  // token budget without a boxed answer (FINISH_REASON_LENGTH).
  enum class Mode { kMixed, kAllCorrect, kFailGenerate, kHang, kSomeTruncated };
  explicit FakeRollout(Mode mode = Mode::kMixed) : mode_(mode) {}

  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override;
  grpc::Status UpdateWeights(grpc::ServerContext* context,
                             grpc::ServerReader<v1::WeightChunk>* reader,
                             v1::UpdateWeightsResponse* response) override;
  grpc::Status GetInfo(grpc::ServerContext* context, const v1::GetInfoRequest* request,
                       v1::RolloutInfo* response) override;

  int64_t version() const;
  std::vector<int64_t> received_versions() const;
  int64_t generate_calls() const;
  // From the next Generate on, every call (UpdateWeights too) fails
  // UNAVAILABLE, as a killed worker's would; `on_death` (may be null) is
  // notified at the first failure.
  void DieAtNextGenerate(absl::Notification* on_death);
  // Generate calls wait for `gate` before doing anything (null: no wait).
  void HoldGenerateUntil(absl::Notification* gate);
  // The next Generate streams every member but sample 0, which never
  // finishes (until the call is cancelled): a straggler.
  void StraggleNextGenerate();

 private:
  const Mode mode_;
  bool dying_ ABSL_GUARDED_BY(mu_) = false;
  bool straggle_next_ ABSL_GUARDED_BY(mu_) = false;
  bool dead_ ABSL_GUARDED_BY(mu_) = false;
  absl::Notification* on_death_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Notification* gate_ ABSL_GUARDED_BY(mu_) = nullptr;
  mutable absl::Mutex mu_;
  int64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<int64_t> received_ ABSL_GUARDED_BY(mu_);
  int64_t generate_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

class FakeVerifier final : public v1::VerifierService::Service {
 public:
  // The next `calls` Verify calls fail UNAVAILABLE (a restarting verifier).
  void FailNext(int calls);
  // Verify calls received.
  int64_t calls() const;

  grpc::Status Verify(grpc::ServerContext* context, const v1::VerifyRequest* request,
                      v1::VerifyResponse* response) override;
  grpc::Status GetInfo(grpc::ServerContext* context, const v1::GetInfoRequest* request,
                       v1::VerifierInfo* response) override;

 private:
  mutable absl::Mutex mu_;
  int fail_next_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t calls_ ABSL_GUARDED_BY(mu_) = 0;
};

class FakeLearner final : public v1::LearnerService::Service {
 public:
  // Called inside Train (on a gRPC thread) before the step is applied; tests
  // use it to pause or stop the run at a known step.
  using TrainHook = std::function<void(const v1::TrainBatch&)>;
  void set_train_hook(TrainHook hook);
  // Policy-gradient batches with step <= n train "only the critic": the
  // version stays and the result says critic_only (value pre-training).
  void set_critic_only_steps(int64_t n);

  grpc::Status Train(grpc::ServerContext* context, const v1::TrainBatch* request,
                     v1::TrainResult* response) override;
  grpc::Status GetWeights(grpc::ServerContext* context, const v1::GetWeightsRequest* request,
                          grpc::ServerWriter<v1::WeightChunk>* writer) override;
  grpc::Status SaveCheckpoint(grpc::ServerContext* context,
                              const v1::SaveCheckpointRequest* request,
                              v1::SaveCheckpointResponse* response) override;
  grpc::Status GetInfo(grpc::ServerContext* context, const v1::GetInfoRequest* request,
                       v1::LearnerInfo* response) override;
  // Back to the last keep-last checkpoint saved under request->directory().
  grpc::Status Restore(grpc::ServerContext* context, const v1::RestoreRequest* request,
                       v1::LearnerInfo* response) override;

  int64_t version() const;
  int64_t restores() const;
  std::vector<v1::TrainBatch> batches() const;
  std::string checkpoint_dir() const;
  // Acts as a learner restarted with --resume on its last keep-last
  // checkpoint: back to that version, reporting resumed_from and the
  // client_state saved with it. False when none was saved.
  bool RestartFromLastCheckpoint();

 private:
  void InfoLocked(v1::LearnerInfo* response) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  int64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<v1::TrainBatch> batches_ ABSL_GUARDED_BY(mu_);
  std::string checkpoint_dir_ ABSL_GUARDED_BY(mu_);
  TrainHook hook_ ABSL_GUARDED_BY(mu_);
  int64_t critic_only_steps_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t restores_ ABSL_GUARDED_BY(mu_) = 0;
  struct Saved {
    std::string dir;
    std::string client_state;
    int64_t version = 0;
  };
  Saved saved_ ABSL_GUARDED_BY(mu_);    // the last keep-last checkpoint
  Saved resumed_ ABSL_GUARDED_BY(mu_);  // what GetInfo reports as resumed from
};

// A rollout fleet, a verifier and a learner, each on its own server.
class FakeCluster {
 public:
  explicit FakeCluster(int rollouts, FakeRollout::Mode mode = FakeRollout::Mode::kMixed);
  ~FakeCluster();

  std::vector<std::string> rollout_addresses() const;
  std::string verifier_address() const { return verifier_host_->address(); }
  std::string learner_address() const { return learner_host_->address(); }

  std::vector<std::unique_ptr<FakeRollout>> rollouts;
  FakeVerifier verifier;
  FakeLearner learner;

 private:
  std::vector<std::unique_ptr<ServerHost>> rollout_hosts_;
  std::unique_ptr<ServerHost> verifier_host_;
  std::unique_ptr<ServerHost> learner_host_;
};

// The last \boxed{...} of `text`, or "" when there is none.
std::string LastBoxed(const std::string& text);

}  // namespace rlpost::testing
