// TrainingRun: asynchronous mode: the producer thread and the training loop
// that meets it (docs/controller.md, "Asynchronous mode").
#include "controller/run.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "controller/run_internal.h"
#include <thread>

namespace rlpost {

using run_internal::Clock;
using run_internal::SecondsSince;

void TrainingRun::Produce(int64_t first, int64_t last) {
  const int64_t ahead = config_.rl_max_staleness;
  for (int64_t step = first; step <= last; ++step) {
    int64_t behavior_version = 0;
    {
      // Step s starts once step s - ahead - 1 has trained, and samples with
      // the version that step published: at most `ahead` versions behind the
      // one that trains on them (the learner publishes at most one version
      // per step). Fixed by the step numbers, not by timing, so an async run
      // is as reproducible as a sync one.
      std::unique_lock<std::mutex> lock(pipeline_.mu);
      const int64_t basis = std::max(first - 1, step - ahead - 1);
      pipeline_.cv.wait(lock, [&] {
        return pipeline_.stop || pipeline_.version_after.count(basis) > 0;
      });
      if (pipeline_.stop) return;
      behavior_version = pipeline_.version_after.at(basis);
    }
    absl::Status s;
    if (behavior_version != worker_version_) s = SyncWeights(behavior_version);
    if (s.ok()) AdmitJoiningWorkers();
    absl::StatusOr<StepRollouts> rollouts =
        s.ok() ? GatherStep(step) : absl::StatusOr<StepRollouts>(s);
    std::lock_guard<std::mutex> lock(pipeline_.mu);
    if (!rollouts.ok()) {
      pipeline_.error = rollouts.status();
      pipeline_.cv.notify_all();
      return;
    }
    pipeline_.ready.emplace(step, *std::move(rollouts));
    pipeline_.cv.notify_all();
  }
}

absl::Status TrainingRun::RunStepsAsync(double before_accuracy) {
  const int64_t first = steps_done_ + 1;
  {
    std::lock_guard<std::mutex> lock(pipeline_.mu);
    pipeline_.version_after.clear();
    pipeline_.version_after[steps_done_] = version_;
    pipeline_.ready.clear();
    pipeline_.error = absl::OkStatus();
    pipeline_.stop = false;
  }
  Print(absl::StrCat("async mode: rollouts run up to ", config_.rl_max_staleness,
                     " step(s) ahead of training (rl.max_staleness)"));
  std::thread producer([this, first] { Produce(first, config_.rl_steps); });
  auto stop_producer = [&] {
    {
      std::lock_guard<std::mutex> lock(pipeline_.mu);
      pipeline_.stop = true;
      pipeline_.cv.notify_all();
    }
    if (producer.joinable()) producer.join();
  };

  absl::Status status;
  for (int64_t step = first; step <= config_.rl_steps; ++step) {
    if (control_->WaitBetweenSteps(step - 1)) {
      if (canceller_.cancelled()) {
        status = absl::CancelledError("cancelled");
        break;
      }
      Print(absl::StrCat("stop requested: ending the run after step ", step - 1, " of ",
                         config_.rl_steps));
      break;
    }
    const Clock::time_point wait_start = Clock::now();
    StepRollouts rollouts;
    int64_t buffered = 0;
    {
      std::unique_lock<std::mutex> lock(pipeline_.mu);
      pipeline_.cv.wait(lock,
                        [&] { return pipeline_.ready.count(step) > 0 || !pipeline_.error.ok(); });
      if (pipeline_.ready.count(step) == 0) {
        status = pipeline_.error;
        break;
      }
      rollouts = std::move(pipeline_.ready.at(step));
      pipeline_.ready.erase(step);
      buffered = static_cast<int64_t>(pipeline_.ready.size());
    }
    rollouts.metrics.wait_seconds = SecondsSince(wait_start);
    rollouts.metrics.buffered_steps = buffered;
    // A step's wall time in async mode: waiting for its rollouts plus training.
    rollouts.metrics.step_seconds = rollouts.metrics.wait_seconds;
    const ProblemCursor::Position cursor = rollouts.cursor_after;
    const std::vector<CarriedGroup> carried = rollouts.carried_after;
    status = TrainStep(std::move(rollouts), /*sync_after=*/false);
    if (!status.ok()) break;
    {
      std::lock_guard<std::mutex> lock(pipeline_.mu);
      pipeline_.version_after[step] = version_;
      pipeline_.cv.notify_all();
    }
    // The checkpoint's data cursor is the one after the trained step's
    // prompts: steps gathered ahead are issued again after a resume.
    status = MaybeCheckpoint(step, before_accuracy, cursor, carried);
    if (!status.ok()) break;
  }
  stop_producer();
  if (!status.ok()) return status;

  // Rollouts gathered ahead of a stop are recorded, unused, so the lineage
  // accounts for every sample issued.
  for (auto& [step, rollouts] : pipeline_.ready) {
    absl::Status s = RecordSamples(step, rollouts.rounds, /*trained=*/false, -1);
    if (!s.ok()) return s;
  }
  pipeline_.ready.clear();
  if (!pipeline_.error.ok()) return pipeline_.error;
  absl::Status dropped = DropCarried(steps_done_);
  if (!dropped.ok()) return dropped;
  // The held-out eval after RL uses the final weights.
  if (worker_version_ != version_) return SyncWeights(version_);
  return absl::OkStatus();
}

}  // namespace rlpost
