#include "controller/run_control.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace rlpost {

RunControl::RunControl() {
  absl::MutexLock lock(&mu_);
  status_.set_state(v1::RUN_STATE_IDLE);
  activity_ = "idle: no run loaded";
}

void RunControl::BeginRun(const std::string& run_name, int64_t total_steps) {
  absl::MutexLock lock(&mu_);
  status_.Clear();
  status_.set_run_name(run_name);
  status_.set_total_steps(total_steps);
  status_.set_state(v1::RUN_STATE_STARTING);
  activity_ = "starting";
  pause_requested_ = stop_requested_ = aborted_ = parked_ = checkpoint_requested_ = false;
  metrics_lines_.clear();
}

absl::Status RunControl::Submit(v1::SubmitRunRequest request, const std::string& run_name,
                                int64_t total_steps) {
  absl::MutexLock lock(&mu_);
  const v1::RunState state = status_.state();
  if (submitted_.has_value()) {
    return absl::FailedPreconditionError("another submitted run is waiting to start");
  }
  if (state != v1::RUN_STATE_UNSPECIFIED && state != v1::RUN_STATE_IDLE &&
      state != v1::RUN_STATE_FINISHED && state != v1::RUN_STATE_FAILED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "run '", status_.run_name(), "' is ", v1::RunState_Name(state),
        "; submit once it has ended (or stop it: rlctl stop)"));
  }
  submitted_ = std::move(request);
  // Shown at once, so no one mistakes the previous run's end for this one's.
  status_.Clear();
  status_.set_run_name(run_name);
  status_.set_total_steps(total_steps);
  status_.set_state(v1::RUN_STATE_STARTING);
  activity_ = "submitted";
  metrics_lines_.clear();
  return absl::OkStatus();
}

std::optional<v1::SubmitRunRequest> RunControl::TakeSubmitted() {
  absl::MutexLock lock(&mu_);
  std::optional<v1::SubmitRunRequest> out = std::move(submitted_);
  submitted_.reset();
  return out;
}

void RunControl::BeginSteps() {
  absl::MutexLock lock(&mu_);
  status_.set_state(v1::RUN_STATE_RUNNING);
}

void RunControl::SetActivity(const std::string& text) {
  absl::MutexLock lock(&mu_);
  activity_ = text;
}

void RunControl::SetWorkers(const std::vector<v1::WorkerStatus>& workers) {
  absl::MutexLock lock(&mu_);
  status_.clear_workers();
  for (const v1::WorkerStatus& w : workers) *status_.add_workers() = w;
}

void RunControl::SetWeightVersion(int64_t version) {
  absl::MutexLock lock(&mu_);
  status_.set_weight_version(version);
  for (v1::WorkerStatus& w : *status_.mutable_workers()) {
    if (w.role() == "rollout" || w.role() == "learner") w.set_weight_version(version);
  }
}

void RunControl::AppendMetricsLine(std::string json_line) {
  absl::MutexLock lock(&mu_);
  metrics_lines_.push_back(std::move(json_line));
  while (metrics_lines_.size() > 10000) metrics_lines_.pop_front();
}

std::vector<std::string> RunControl::MetricsLines(int last) const {
  absl::MutexLock lock(&mu_);
  const size_t n = last <= 0 ? metrics_lines_.size()
                             : std::min(metrics_lines_.size(), static_cast<size_t>(last));
  return std::vector<std::string>(metrics_lines_.end() - static_cast<std::ptrdiff_t>(n),
                                  metrics_lines_.end());
}

void RunControl::RecordStep(int64_t step, double reward_mean, double accuracy) {
  absl::MutexLock lock(&mu_);
  status_.set_step(step);
  status_.set_reward_mean(reward_mean);
  status_.set_accuracy(accuracy);
}

void RunControl::SetHeldoutAccuracy(bool after_rl, double accuracy) {
  absl::MutexLock lock(&mu_);
  if (after_rl) {
    status_.set_heldout_accuracy_after(accuracy);
  } else {
    status_.set_heldout_accuracy_before(accuracy);
  }
}

void RunControl::Finish() {
  absl::MutexLock lock(&mu_);
  status_.set_state(v1::RUN_STATE_FINISHED);
  activity_ = stop_requested_ ? absl::StrCat("stopped by operator after step ", status_.step())
                              : "finished";
  parked_ = false;
}

void RunControl::Fail(const std::string& message) {
  absl::MutexLock lock(&mu_);
  status_.set_state(v1::RUN_STATE_FAILED);
  activity_ = message;
  parked_ = false;
}

bool RunControl::WaitBetweenSteps(int64_t completed_steps) {
  absl::MutexLock lock(&mu_);
  auto may_go_on = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !pause_requested_ || stop_requested_ || aborted_;
  };
  if (!may_go_on()) {
    parked_ = true;
    activity_ = completed_steps == 0 ? std::string("paused before step 1")
                                     : absl::StrCat("paused after step ", completed_steps);
    mu_.Await(absl::Condition(&may_go_on));
    parked_ = false;
  }
  return stop_requested_ || aborted_;
}

bool RunControl::StopRequested() const {
  absl::MutexLock lock(&mu_);
  return stop_requested_ || aborted_;
}

bool RunControl::IsLoaded() const { return status_.state() != v1::RUN_STATE_IDLE; }

bool RunControl::IsEnded() const {
  return status_.state() == v1::RUN_STATE_FINISHED || status_.state() == v1::RUN_STATE_FAILED;
}

absl::Status RunControl::CheckActive(const char* action) const {
  if (!IsLoaded()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot ", action, ": no run is loaded (the controller is idle)"));
  }
  if (IsEnded()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot ", action, ": run '", status_.run_name(), "' has already ",
        status_.state() == v1::RUN_STATE_FAILED ? "failed" : "finished"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::RunStatus> RunControl::Pause() {
  absl::MutexLock lock(&mu_);
  absl::Status s = CheckActive("pause");
  if (!s.ok()) return s;
  if (stop_requested_ || aborted_) {
    return absl::FailedPreconditionError("cannot pause: the run is stopping");
  }
  pause_requested_ = true;
  return StatusLocked();
}

absl::StatusOr<v1::RunStatus> RunControl::Resume() {
  absl::MutexLock lock(&mu_);
  absl::Status s = CheckActive("resume");
  if (!s.ok()) return s;
  pause_requested_ = false;
  if (parked_) activity_ = "resuming";
  return StatusLocked();
}

absl::StatusOr<v1::RunStatus> RunControl::Stop() {
  absl::MutexLock lock(&mu_);
  absl::Status s = CheckActive("stop");
  if (!s.ok()) return s;
  stop_requested_ = true;
  return StatusLocked();
}

absl::StatusOr<v1::RunStatus> RunControl::RequestCheckpoint() {
  absl::MutexLock lock(&mu_);
  absl::Status s = CheckActive("checkpoint");
  if (!s.ok()) return s;
  checkpoint_requested_ = true;
  return StatusLocked();
}

bool RunControl::TakeCheckpointRequest() {
  absl::MutexLock lock(&mu_);
  const bool requested = checkpoint_requested_;
  checkpoint_requested_ = false;
  return requested;
}

void RunControl::AddWorker(const v1::WorkerStatus& worker) {
  absl::MutexLock lock(&mu_);
  for (v1::WorkerStatus& w : *status_.mutable_workers()) {
    if (w.address() == worker.address() && w.role() == worker.role()) {
      w = worker;
      return;
    }
  }
  *status_.add_workers() = worker;
}

absl::StatusOr<v1::RunStatus> RunControl::QueueRollout(std::vector<std::string>* queue,
                                                       const std::string& address,
                                                       const char* rpc, const char* action) {
  if (address.empty()) return absl::InvalidArgumentError(absl::StrCat(rpc, " needs an address"));
  absl::MutexLock lock(&mu_);
  absl::Status s = CheckActive(action);
  if (!s.ok()) return s;
  queue->push_back(address);
  return StatusLocked();
}

std::vector<std::string> RunControl::TakeQueue(std::vector<std::string>* queue) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  out.swap(*queue);
  return out;
}

absl::StatusOr<v1::RunStatus> RunControl::RegisterRollout(const std::string& address) {
  return QueueRollout(&joining_, address, "RegisterWorker", "register a worker");
}

std::vector<std::string> RunControl::TakeJoiningRollouts() { return TakeQueue(&joining_); }

absl::StatusOr<v1::RunStatus> RunControl::RegisterVerifier(const std::string& address) {
  return QueueRollout(&joining_verifiers_, address, "RegisterWorker", "register a worker");
}

std::vector<std::string> RunControl::TakeJoiningVerifiers() {
  return TakeQueue(&joining_verifiers_);
}

absl::StatusOr<v1::RunStatus> RunControl::DrainRollout(const std::string& address) {
  return QueueRollout(&draining_, address, "DrainWorker", "drain a worker");
}

std::vector<std::string> RunControl::TakeDrainingRollouts() { return TakeQueue(&draining_); }

bool RunControl::Heartbeat(const std::string& address, const std::string& role) {
  absl::MutexLock lock(&mu_);
  last_heartbeat_[role + "/" + address] = now_();
  for (const std::string& j : role == "verifier" ? joining_verifiers_ : joining_) {
    if (j == address) return true;
  }
  for (const v1::WorkerStatus& w : status_.workers()) {
    if (w.address() == address && w.role() == role) return w.healthy();
  }
  return false;
}

std::vector<std::string> RunControl::SilentWorkers(const std::string& role,
                                                   absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  const absl::Time now = now_();
  std::vector<std::string> silent;
  for (const v1::WorkerStatus& w : status_.workers()) {
    if (w.role() != role || !w.healthy()) continue;
    auto it = last_heartbeat_.find(role + "/" + w.address());
    if (it != last_heartbeat_.end() && now - it->second > timeout) silent.push_back(w.address());
  }
  return silent;
}

void RunControl::SetClockForTesting(std::function<absl::Time()> now) {
  absl::MutexLock lock(&mu_);
  now_ = std::move(now);
}

bool RunControl::WaitForJoining(absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto queued = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !joining_.empty(); };
  return mu_.AwaitWithTimeout(absl::Condition(&queued), timeout);
}

void RunControl::SetConfigYaml(std::string yaml) {
  absl::MutexLock lock(&mu_);
  config_yaml_ = std::move(yaml);
}

std::string RunControl::ConfigYaml() const {
  absl::MutexLock lock(&mu_);
  return config_yaml_;
}

void RunControl::Abort() {
  absl::MutexLock lock(&mu_);
  aborted_ = true;
}

v1::RunStatus RunControl::Status() const {
  absl::MutexLock lock(&mu_);
  return StatusLocked();
}

v1::RunStatus RunControl::StatusLocked() const {
  v1::RunStatus out = status_;
  if (!IsEnded() && IsLoaded()) {
    if (stop_requested_ || aborted_) {
      out.set_state(v1::RUN_STATE_STOPPING);
    } else if (pause_requested_ && status_.state() == v1::RUN_STATE_RUNNING) {
      out.set_state(v1::RUN_STATE_PAUSED);
    }
  }
  std::string message = activity_;
  if (out.state() == v1::RUN_STATE_PAUSED && !parked_) {
    message = absl::StrCat("pausing: finishing step ", status_.step() + 1);
  } else if (pause_requested_ && out.state() == v1::RUN_STATE_STARTING) {
    message = absl::StrCat(activity_, " (pause requested: the run will wait before step 1)");
  } else if (out.state() == v1::RUN_STATE_STOPPING && status_.state() == v1::RUN_STATE_RUNNING) {
    message = absl::StrCat("stopping after the current step; ", activity_);
  }
  out.set_message(message);
  return out;
}

bool RunControl::WaitUntilParked(absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&parked_), timeout);
}

}  // namespace rlpost
