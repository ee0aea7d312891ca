// TrainingRun: rollout workers and verifiers joining, draining, falling
// silent or lost between steps.
#include "controller/run.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "controller/run_internal.h"

namespace rlpost {

using run_internal::Clock;
using run_internal::SecondsSince;

namespace {

v1::WorkerStatus WorkerStatusOf(const std::string& address, const char* role, int64_t version,
                                bool healthy) {
  v1::WorkerStatus w;
  w.set_address(address);
  w.set_role(role);
  w.set_weight_version(version);
  w.set_healthy(healthy);
  return w;
}

}  // namespace

void TrainingRun::AdmitJoiningWorkers() {
  // Registered workers that stopped sending heartbeats leave before they
  // are handed requests; they rejoin by registering again.
  for (const std::string& address :
       control_->SilentRollouts(absl::Milliseconds(config_.heartbeat_timeout_ms))) {
    absl::Status s = clients_->DrainRollout(address);
    if (!s.ok()) {
      Print(absl::StrCat("rollout worker ", address, " sends no heartbeats but stays: ",
                         s.message()));
      continue;
    }
    control_->AddWorker(WorkerStatusOf(address, "rollout", worker_version_, /*healthy=*/false));
    Print(absl::StrCat("rollout worker ", address, ": no heartbeat for over ",
                       config_.heartbeat_timeout_ms, " ms; out of service until it registers "
                       "again; ", clients_->live_rollout_count(), " serving"));
  }
  for (const std::string& address : control_->TakeDrainingRollouts()) {
    absl::Status s = clients_->DrainRollout(address);
    if (!s.ok()) {
      Print(absl::StrCat("rollout worker ", address, " not drained: ", s.message()));
      continue;
    }
    control_->AddWorker(WorkerStatusOf(address, "rollout", worker_version_, /*healthy=*/false));
    Print(absl::StrCat("rollout worker drained: ", address, "; ",
                       clients_->live_rollout_count(), " serving"));
  }
  // Verifiers: registered ones join the pool; silent ones leave it.
  for (const std::string& address : control_->TakeJoiningVerifiers()) {
    absl::StatusOr<int> index = clients_->AddVerifier(address);
    if (!index.ok()) continue;
    control_->AddWorker(WorkerStatusOf(address, "verifier", 0, /*healthy=*/true));
    Print(absl::StrCat("verifier joined: ", address, "; ", clients_->live_verifier_count(),
                       " serving"));
  }
  for (const std::string& address :
       control_->SilentWorkers("verifier", absl::Milliseconds(config_.heartbeat_timeout_ms))) {
    absl::Status s = clients_->DrainVerifier(address);
    if (!s.ok()) continue;  // the last one stays; its calls are retried
    control_->AddWorker(WorkerStatusOf(address, "verifier", 0, /*healthy=*/false));
    Print(absl::StrCat("verifier ", address, ": no heartbeat for over ",
                       config_.heartbeat_timeout_ms, " ms; out of service until it registers "
                       "again"));
  }
  const std::vector<std::string> joining = control_->TakeJoiningRollouts();
  if (joining.empty()) return;
  // The version the other workers hold (in async mode the learner may have
  // published a newer one meanwhile; it reaches everyone at the next sync).
  absl::StatusOr<WeightSet> weights =
      clients_->FetchWeights(config_.learner_publish_dtype == "bfloat16", worker_version_);
  for (const std::string& address : joining) {
    absl::StatusOr<int> index = clients_->AddRollout(address);
    absl::Status s = index.ok() ? (weights.ok() ? clients_->PushWeightsToWorker(*index, *weights)
                                                : weights.status())
                                : index.status();
    if (!s.ok()) {
      clients_->TakeNewlyLost();  // reported here, with the reason
      Print(absl::StrCat("rollout worker ", address, " could not join: ", s.message()));
      continue;
    }
    control_->AddWorker(WorkerStatusOf(address, "rollout", worker_version_, /*healthy=*/true));
    Print(absl::StrCat("rollout worker joined: ", address, " (weight version ", worker_version_,
                       "); ", clients_->live_rollout_count(), " serving"));
  }
}

int64_t TrainingRun::ReportLostWorkers() {
  const std::vector<std::string> lost = clients_->TakeNewlyLost();
  for (const std::string& worker : lost) {
    RLPOST_LOG(WARNING) << "rollout worker lost: " << worker;
    control_->AddWorker(
        WorkerStatusOf(worker.substr(0, worker.find(": ")), "rollout", worker_version_, /*healthy=*/false));
    Print(absl::StrCat("rollout worker lost: ", worker, "; its requests went to the other ",
                       clients_->live_rollout_count(), " worker(s)"));
  }
  return static_cast<int64_t>(lost.size());
}

}  // namespace rlpost
