#pragma once
// The controller's side of every RPC to the processes a run drives: N rollout
// workers, one verifier and learner rank 0. Each call carries a deadline, can
// be cancelled through the RpcCanceller, and turns failures into absl::Status
// errors that name the process and its address.
//
// Thread-safe (gRPC stubs are); the fan-out calls start their own threads.

#include <chrono>
#include <cstdint>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/retry.h"
#include "controller/rpc_canceller.h"
#include "rlpost/v1/control.pb.h"
#include "rlpost/v1/learner.grpc.pb.h"
#include "rlpost/v1/rollout.grpc.pb.h"
#include "rlpost/v1/verifier.grpc.pb.h"

namespace rlpost {

// Whether an RPC error means the worker process is gone or broken (so its
// work can go elsewhere) rather than that the request itself is bad:
// UNAVAILABLE, DEADLINE_EXCEEDED, UNKNOWN, INTERNAL, ABORTED, DATA_LOSS,
// RESOURCE_EXHAUSTED and CANCELLED (when the run itself was not cancelled).
bool IsWorkerFailure(const absl::Status& status);

struct PeerAddresses {
  std::vector<std::string> rollouts;  // HOST:PORT of each rollout worker
  std::string verifier;
  std::string learner;  // rank 0
};

// Every tensor of one weight version, held in memory between fetching it from
// the learner and pushing it to the workers.
struct WeightSet {
  int64_t version = 0;
  // The first chunk carries `rollback`: workers take this version even when
  // they hold a newer one (after a resume from an older checkpoint).
  std::vector<v1::WeightChunk> chunks;
  int64_t bytes = 0;
};

struct PeerTimeouts {
  std::chrono::milliseconds rpc{120000};      // every RPC
  std::chrono::milliseconds connect{10000};   // one GetInfo attempt
  int verifier_deadline_ms = 5000;            // sent in VerifyRequest
};

class PeerClients {
 public:
  // `canceller` is not owned and must outlive this object.
  PeerClients(const PeerAddresses& addresses, const PeerTimeouts& timeouts,
              RpcCanceller* canceller);

  // GetInfo on every process, each retried with back-off; the first process
  // that stays unreachable fails the call ("rollout HOST:PORT unreachable
  // after 8 attempts: ..."). On success `workers` describes every process.
  absl::Status Connect(const RetryPolicy& policy, const SleepFn& sleep,
                       std::vector<v1::WorkerStatus>* workers, v1::LearnerInfo* learner_info);

  absl::StatusOr<v1::TrainResult> Train(const v1::TrainBatch& batch);
  // keep_last > 0: `directory` is a root of versioned checkpoints (see
  // SaveCheckpointRequest); client_state is stored with the checkpoint.
  absl::StatusOr<v1::SaveCheckpointResponse> SaveCheckpoint(const std::string& directory,
                                                            int keep_last = 0,
                                                            const std::string& client_state = "");
  // Rolls every learner rank back to the checkpoint at `directory` (or the
  // newest under a keep-last root); the learner's info after it.
  absl::StatusOr<v1::LearnerInfo> Restore(const std::string& directory);
  // Every chunk of weight `version` (0: the learner's latest), in bfloat16
  // on the wire when `bf16`.
  absl::StatusOr<WeightSet> FetchWeights(bool bf16 = false, int64_t version = 0);
  // Streams `weights` to every live rollout worker concurrently (one thread
  // each) and checks that each reports the version as loaded. A worker that
  // fails like a dead process (see IsWorkerFailure) is marked lost and left
  // out from then on; the call fails only when no worker is left, or on any
  // other error.
  absl::Status PushWeights(const WeightSet& weights);

  // Stragglers: a group whose Generate call has not finished after
  // group_deadline (0 = no deadline) is cut; its finished members are kept
  // and, with `resample`, the missing ones are asked for once more under a
  // new seed (anywhere); without it, or when the second try is late too, the
  // group is dropped.
  // Long-tail cut (oversampling): with finish_after = K > 0, once K groups
  // are complete the calls still running are cancelled and queued ones never
  // start; those groups come back dropped and `cut`.
  struct StragglerPolicy {
    std::chrono::milliseconds group_deadline{0};
    bool resample = true;
    int finish_after = 0;
  };
  struct GroupResult {
    std::vector<v1::Completion> completions;  // sorted by sample_index; empty when dropped
    bool dropped = false;
    bool cut = false;   // dropped by the long-tail cut (not a deadline)
    int resampled = 0;  // members that came from the second try
  };
  absl::StatusOr<std::vector<GroupResult>> GenerateGroups(
      const std::vector<v1::GenerateRequest>& requests, int per_worker,
      const StragglerPolicy& policy);

  // Runs every request on the live rollout workers, which pull from one
  // queue with up to `per_worker` requests in flight each. When a worker
  // fails like a dead process, it is marked lost and its requests go back to
  // the queue for the others; the same request (same seed) gives the same
  // samples, so nothing is lost or doubled. Fails when no worker is left, or
  // at once on a request error (INVALID_ARGUMENT, ...). Result i holds request
  // i's completions sorted by sample_index, checked to be complete and
  // consistent.
  absl::StatusOr<std::vector<std::vector<v1::Completion>>> GenerateAll(
      const std::vector<v1::GenerateRequest>& requests, int per_worker);

  // Adds a rollout worker at `address` (or takes one at that address back:
  // lost, or restarted before its loss was noticed) and returns its index.
  // Not while a GenerateGroups/PushWeights call runs (the run loop calls it
  // between steps).
  absl::StatusOr<int> AddRollout(const std::string& address);
  // Takes the live worker at `address` out of service (as if lost, without
  // a failure). NOT_FOUND for an address that is not serving;
  // FAILED_PRECONDITION when it is the last one.
  absl::Status DrainRollout(const std::string& address);
  // Streams `weights` to worker `index` only; marks it lost on failure.
  absl::Status PushWeightsToWorker(int index, const WeightSet& weights);

  // Workers marked lost since the last call, as "HOST:PORT: reason".
  std::vector<std::string> TakeNewlyLost();
  int live_rollout_count() const;
  // Verify batches retried since the last call.
  int64_t TakeVerifierRetries() { return verifier_retries_.exchange(0); }

  // Verifiers that registered with the controller join the one it was
  // started with; batches go round the serving ones. AddVerifier takes one
  // (back) into service; DrainVerifier takes one out (NOT_FOUND when not
  // serving, FAILED_PRECONDITION for the last one). Between steps only.
  absl::StatusOr<int> AddVerifier(const std::string& address);
  absl::Status DrainVerifier(const std::string& address);
  int live_verifier_count() const;

  // Verifies `items` in batches, round the serving verifiers; verdicts come
  // back in item order. A batch that fails UNAVAILABLE or DEADLINE_EXCEEDED
  // is retried (on the next verifier) with the backoff policy given to
  // Connect.
  absl::StatusOr<std::vector<v1::Verdict>> VerifyAll(const std::vector<v1::VerifyItem>& items);

  int rollout_count() const { return static_cast<int>(rollouts_.size()); }
  const std::string& rollout_address(int i) const { return rollouts_[i].address; }
  const std::string& learner_address() const { return learner_address_; }

 private:
  struct Rollout {
    std::string address;
    std::unique_ptr<v1::RolloutService::Stub> stub;
    bool lost = false;  // guarded by lost_mu_
  };

  // Marks worker `w` lost (once) with `why`.
  void MarkLost(size_t w, const absl::Status& why);
  bool IsLost(size_t w) const;

  // One Generate call. With a deadline (> 0) that passes, returns
  // DEADLINE_EXCEEDED and leaves the members that did finish in `partial`.
  // `track` (may be empty) gets the call's context with `true` before the
  // call starts and with `false` once it has finished (while the context
  // still exists), so the caller can cancel it meanwhile.
  absl::StatusOr<std::vector<v1::Completion>> Generate(
      const Rollout& rollout, const v1::GenerateRequest& request,
      std::chrono::milliseconds deadline = std::chrono::milliseconds(0),
      std::vector<v1::Completion>* partial = nullptr,
      const std::function<void(grpc::ClientContext*, bool)>& track = {});
  absl::Status PushWeightsTo(const Rollout& rollout, const WeightSet& weights);

  PeerTimeouts timeouts_;
  RetryPolicy retry_policy_;
  SleepFn sleep_;
  std::atomic<int64_t> verifier_retries_{0};
  RpcCanceller* canceller_;
  std::vector<Rollout> rollouts_;
  mutable std::mutex lost_mu_;
  std::vector<std::string> newly_lost_;  // guarded by lost_mu_
  std::vector<std::string> lost_reasons_;  // every loss, for the final error
  struct Verifier {
    std::string address;
    std::unique_ptr<v1::VerifierService::Stub> stub;
    bool out = false;  // guarded by lost_mu_
  };
  // The next serving verifier, round robin.
  const Verifier& NextVerifier();

  std::string verifier_address_;  // the one the run was started with
  std::vector<Verifier> verifiers_;
  size_t next_verifier_ = 0;  // guarded by lost_mu_
  std::string learner_address_;
  std::unique_ptr<v1::LearnerService::Stub> learner_;
};

}  // namespace rlpost
