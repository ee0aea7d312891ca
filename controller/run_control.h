#pragma once
// The state of the controller's run as the control API sees it, and the
// operator's levers on it (pause, resume, stop). The run loop reports its
// progress here and asks, between steps, whether to go on; the ControlService
// reads and writes it from gRPC threads.
//
// Thread-safe: every method may be called from any thread. Only
// WaitBetweenSteps() blocks (on a condition, never spinning).

#include <cstdint>
#include <deque>
#include <map>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rlpost/v1/control.pb.h"

namespace rlpost {

class RunControl {
 public:
  RunControl();
  RunControl(const RunControl&) = delete;
  RunControl& operator=(const RunControl&) = delete;

  // --- reported by the run loop ---

  // A run is loaded: state STARTING (warm start, weight sync, first eval).
  void BeginRun(const std::string& run_name, int64_t total_steps);
  // The RL steps begin: state RUNNING (or PAUSED / STOPPING if requested).
  void BeginSteps();
  // A short description of what the run does now ("sft 12/60").
  void SetActivity(const std::string& text);
  void SetWorkers(const std::vector<v1::WorkerStatus>& workers);
  // Adds `worker`, or replaces the entry with its address.
  void AddWorker(const v1::WorkerStatus& worker);
  // Every rollout worker and the learner now hold `version`.
  void SetWeightVersion(int64_t version);
  // Heartbeats of registered workers. Heartbeat records the time and says
  // whether the worker counts as serving (listed and healthy, or queued to
  // join). SilentRollouts: healthy rollout workers whose last heartbeat is
  // older than `timeout` (workers that never sent one are not judged).
  bool Heartbeat(const std::string& address, const std::string& role);
  std::vector<std::string> SilentRollouts(absl::Duration timeout) const {
    return SilentWorkers("rollout", timeout);
  }
  std::vector<std::string> SilentWorkers(const std::string& role, absl::Duration timeout) const;
  // The clock heartbeats are judged by (tests advance a fake one).
  void SetClockForTesting(std::function<absl::Time()> now);

  // A run submitted through the control API (SubmitRun), for the
  // controller's main loop: accepted when no run is loaded or the last one
  // ended, and no other submitted run waits (FAILED_PRECONDITION otherwise).
  // The run shows as `run_name`, STARTING, from then on.
  absl::Status Submit(v1::SubmitRunRequest request, const std::string& run_name,
                      int64_t total_steps);
  std::optional<v1::SubmitRunRequest> TakeSubmitted();

  // One metrics.jsonl line per step, for GetMetrics (the newest 10,000).
  void AppendMetricsLine(std::string json_line);
  std::vector<std::string> MetricsLines(int last) const;
  void RecordStep(int64_t step, double reward_mean, double accuracy);
  void SetHeldoutAccuracy(bool after_rl, double accuracy);
  void Finish();
  void Fail(const std::string& message);

  // Called by the loop before each RL step, once `completed_steps` are done.
  // Blocks while the run is paused; returns true when the loop should stop
  // (Stop was requested or the run was aborted) and false to go on.
  bool WaitBetweenSteps(int64_t completed_steps);
  // True once Stop() or Abort() has been called.
  bool StopRequested() const;
  // True once per RequestCheckpoint() (the loop saves one, then asks again).
  bool TakeCheckpointRequest();

  // --- operator actions (the control API) ---
  // Errors are kFailedPrecondition when no run is loaded or it has ended.
  absl::StatusOr<v1::RunStatus> Pause();
  absl::StatusOr<v1::RunStatus> Resume();
  absl::StatusOr<v1::RunStatus> Stop();
  // Asks for a checkpoint after the current step (the loop takes it with
  // TakeCheckpointRequest).
  absl::StatusOr<v1::RunStatus> RequestCheckpoint();
  // Queues a rollout worker to join before the next RL step.
  absl::StatusOr<v1::RunStatus> RegisterRollout(const std::string& address);
  // Queues a verifier to join the run's verifiers before the next RL step.
  absl::StatusOr<v1::RunStatus> RegisterVerifier(const std::string& address);
  std::vector<std::string> TakeJoiningVerifiers();
  // The addresses queued since the last call (the run loop takes them).
  std::vector<std::string> TakeJoiningRollouts();
  // Queues a rollout worker to be drained before the next RL step.
  absl::StatusOr<v1::RunStatus> DrainRollout(const std::string& address);
  std::vector<std::string> TakeDrainingRollouts();
  // Blocks until a worker is queued to join or `timeout` passes; returns
  // whether one is. For tests and tools.
  bool WaitForJoining(absl::Duration timeout) const;
  // The run's resolved config as YAML (empty before the host sets it).
  void SetConfigYaml(std::string yaml);
  std::string ConfigYaml() const;
  v1::RunStatus Status() const;

  // --- the hosting process ---
  // Ends the run as soon as possible (shutdown signal): wakes a paused loop
  // and makes StopRequested() true.
  void Abort();

  // Blocks until the loop is parked in WaitBetweenSteps() because of a pause,
  // or `timeout` passes; returns whether it is parked. For tests and tools.
  bool WaitUntilParked(absl::Duration timeout) const;

 private:
  bool IsLoaded() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool IsEnded() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::RunStatus StatusLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Membership requests (joining_, draining_): queued while a run is active,
  // taken by the run loop between steps.
  absl::StatusOr<v1::RunStatus> QueueRollout(std::vector<std::string>* queue,
                                             const std::string& address, const char* rpc,
                                             const char* action);
  std::vector<std::string> TakeQueue(std::vector<std::string>* queue);
  absl::Status CheckActive(const char* action) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  // `status_.state()` holds the loop's phase (IDLE, STARTING, RUNNING,
  // FINISHED, FAILED); PAUSED and STOPPING are derived from the flags below.
  v1::RunStatus status_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> metrics_lines_ ABSL_GUARDED_BY(mu_);
  std::optional<v1::SubmitRunRequest> submitted_ ABSL_GUARDED_BY(mu_);
  // "role/address" -> last heartbeat.
  std::map<std::string, absl::Time> last_heartbeat_ ABSL_GUARDED_BY(mu_);
  std::function<absl::Time()> now_ ABSL_GUARDED_BY(mu_) = [] { return absl::Now(); };
  std::string activity_ ABSL_GUARDED_BY(mu_);
  bool pause_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool aborted_ ABSL_GUARDED_BY(mu_) = false;
  bool parked_ ABSL_GUARDED_BY(mu_) = false;
  bool checkpoint_requested_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> joining_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> draining_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> joining_verifiers_ ABSL_GUARDED_BY(mu_);
  std::string config_yaml_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rlpost
