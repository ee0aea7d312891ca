#pragma once
// One synchronous GRPO run, driven by the controller over gRPC:
//   connect to every process -> SFT warm start -> weight sync -> held-out eval
//   -> RL steps (generate, verify, reward, group advantages, rejection
//   sampling, train, weight sync) -> held-out eval -> checkpoint -> summary.
// docs/controller.md describes the loop, its output lines and its files.
//
// Thread-safety: Run() is called once, from one thread. Cancel() may be called
// from any other thread while Run() executes. In async mode (rl.mode=async)
// Run() starts one more thread, the producer, which does every rollout-side
// call (weight sync, joins and drains, generate, verify) while the calling
// thread trains; the two meet in Pipeline. Pause/resume/stop go through the
// RunControl (not owned; it must outlive the run).

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "common/retry.h"
#include "common/run_config.h"
#include "controller/arith_task.h"
#include "controller/lineage.h"
#include "controller/peer_clients.h"
#include "controller/problem_cursor.h"
#include "controller/rpc_canceller.h"
#include "controller/run_control.h"
#include "controller/run_report.h"
#include "reward/plugin_runner.h"
#include "reward/reward.h"

namespace rlpost {

struct TrainingRunOptions {
  // Progress lines (one per step, plus phase lines) go here; not owned.
  std::ostream* out = nullptr;  // nullptr: std::cout
  // Generate requests kept in flight on each rollout worker, so a worker that
  // batches concurrent requests can fill its batch. 0: enough groups to fill
  // rollout.max_batch (at least 1).
  int requests_per_worker = 0;
  // Sleeps between connection attempts; empty: real sleeps that end early on
  // Cancel().
  SleepFn sleep;
};

class TrainingRun {
 public:
  // Marks the run as loaded in `control` (state STARTING).
  TrainingRun(RunConfig config, PeerAddresses peers, RunControl* control,
              TrainingRunOptions options = {});
  TrainingRun(const TrainingRun&) = delete;
  TrainingRun& operator=(const TrainingRun&) = delete;

  // Runs the whole job. On success the RunControl ends FINISHED and the
  // summary is returned (and written to <output_dir>/<name>/summary.json); on
  // error it ends FAILED with the message, which names the process at fault.
  absl::StatusOr<RunSummary> Run();

  // Ends Run() as soon as possible: cancels RPCs in flight, wakes a paused
  // loop. Run() then fails with kCancelled.
  void Cancel();

  // <output_dir>/<name>
  std::string run_dir() const;

 private:
  struct EvalResult {
    int64_t correct = 0;
    int64_t total = 0;
    double accuracy() const { return total == 0 ? 0.0 : static_cast<double>(correct) / total; }
  };

  absl::Status Execute(RunSummary* summary);
  absl::Status Connect();
  // Starts a plugin host per reward.plugins entry.
  absl::Status StartRewardPlugins();
  absl::Status WarmStart();
  // The learner's weight `version` -> every live rollout worker.
  absl::Status SyncWeights(int64_t version);
  absl::StatusOr<EvalResult> Evaluate(const char* label);
  // One round of an RL step: a group per problem, verified and rewarded.
  struct ScoredGroups {
    std::vector<const Problem*> problems;
    std::vector<std::vector<v1::Completion>> groups;
    std::vector<std::vector<double>> rewards;
    std::vector<bool> uniform;  // every reward of the group equal
    std::vector<std::vector<bool>> correct_flags;  // per sample: the verifier said correct
    // Per sample, for lineage: the verdict and the reward's parts; whether it
    // went into the training batch (set by RlStep).
    std::vector<std::vector<v1::Verdict>> verdicts;
    std::vector<std::vector<SampleReward>> reward_detail;
    // Per group: a sample's reward could not be computed (a failed plugin);
    // the group is not trained on.
    std::vector<bool> reward_failed;
    int64_t samples_reward_failed = 0;
    std::vector<std::vector<bool>> used;
    int64_t round = 0;
    int64_t samples = 0, tokens = 0, correct = 0;
    double reward_sum = 0.0;
    double generate_seconds = 0.0;
    int64_t workers_lost = 0;  // rollout workers lost while generating
    std::vector<bool> dropped;  // per group: cut off at rl.group_deadline_ms
    int64_t groups_dropped = 0, samples_resampled = 0;
    // Per group: where it was issued (its lineage key: step, round, group;
    // an earlier step for a group carried over as a partial rollout) and how
    // many steps it was carried.
    struct Origin {
      int64_t step = 0, round = 0, group = 0;
    };
    std::vector<Origin> origins;
    std::vector<int64_t> carries;
    int64_t groups_carried = 0;  // groups of this round left partial for the next step
    int64_t groups_cut = 0;      // oversampled groups cancelled by the long-tail cut
  };
  // The built-in reward parts and every plugin's part, per sample of `out`.
  void ComputeRewards(ScoredGroups* out);
  // Partial rollouts (rl.partial_rollout_tokens): a group with members cut at
  // the token budget waits here, finished members and partial ones, and is
  // continued at the start of the next step's generation.
  struct CarriedGroup {
    ScoredGroups::Origin origin;
    const Problem* problem = nullptr;
    v1::GenerateRequest request;           // as issued (seed, sampling params)
    std::vector<v1::Completion> members;   // by sample_index
    int64_t carries = 0;
  };
  // Generates (new `problems`, plus the carried groups in round 0),
  // verifies and rewards every group that finished; groups with partial
  // members go back to carried_.
  absl::StatusOr<ScoredGroups> SampleAndScore(int64_t step, int64_t round,
                                              const std::vector<const Problem*>& problems);
  // carried_ as JSON for the checkpoint's client_state, and back.
  nlohmann::json CarriedToJson(const std::vector<CarriedGroup>& carried) const;
  absl::Status CarriedFromJson(const nlohmann::json& j);
  // Lineage "dropped" records for groups still partial when the run ends.
  absl::Status DropCarried(int64_t step);
  // Everything one RL step trains on: its generate rounds (the first, plus
  // dynamic-sampling refills), scored, and the data cursor after its prompts.
  struct StepRollouts {
    int64_t step = 0;
    std::vector<ScoredGroups> rounds;
    StepMetrics metrics;  // the generation-side fields
    int64_t kept_count = 0;
    int64_t samples = 0, tokens = 0, correct = 0;
    double reward_sum = 0.0;
    int64_t worker_version = 0;  // the version every token was sampled with
    ProblemCursor::Position cursor_after;
    std::vector<CarriedGroup> carried_after;  // partial groups after this step
  };
  absl::StatusOr<StepRollouts> GatherStep(int64_t step);
  // Builds the batch from `rollouts`, trains, records the samples and
  // reports the step. `sync_after`: push the new version to the workers
  // before returning (sync mode; in async mode the producer syncs).
  absl::Status TrainStep(StepRollouts rollouts, bool sync_after);
  // The RL steps after `steps_done_`, until rl.steps or a stop request.
  absl::Status RunStepsSync(double before_accuracy);
  absl::Status RunStepsAsync(double before_accuracy);
  // Producer side of async mode: gathers steps first..last, each once the
  // step rl.max_staleness + 1 before it has trained, with the version that
  // step published.
  void Produce(int64_t first, int64_t last);
  // After a step trained: rlctl checkpoint, or run.checkpoint_every.
  absl::Status MaybeCheckpoint(int64_t step, double before_accuracy,
                               const ProblemCursor::Position& cursor,
                               const std::vector<CarriedGroup>& carried);
  // Periodic checkpoint (run.checkpoint_every): the learner's state plus the
  // controller's (step, data cursor, held-out baseline, partial groups) as
  // client_state.
  absl::Status SaveRunCheckpoint(int64_t step, double before_accuracy,
                                 const ProblemCursor::Position& cursor,
                                 const std::vector<CarriedGroup>& carried);
  // run.resume: rolls the learner back to the newest run checkpoint (every
  // rank, whether or not it restarted) and restores the controller's state
  // saved with it; returns the held-out accuracy before RL.
  absl::StatusOr<double> ResumeFromLearner();
  // Membership changes asked for through the control API, applied between
  // steps: drained rollout workers leave; registered ones join (the current
  // weights first, then requests from the next step on).
  void AdmitJoiningWorkers();
  // Prints the rollout workers lost since the last call; returns how many.
  int64_t ReportLostWorkers();
  // One lineage record per sample of the step's rounds.
  // `learner_version`: the learner's version when the step trained (-1 for
  // samples generated but never trained, e.g. after a stop).
  absl::Status RecordSamples(int64_t step, const std::vector<ScoredGroups>& rounds, bool trained,
                             int64_t learner_version);
  void Print(const std::string& line);

  // Where the async producer and the training loop meet.
  struct Pipeline {
    std::mutex mu;
    std::condition_variable cv;
    // The learner's version after each trained step (and after the step the
    // run started from).
    std::map<int64_t, int64_t> version_after;
    std::map<int64_t, StepRollouts> ready;  // gathered, not yet trained
    absl::Status error;           // the producer's failure
    bool stop = false;            // the producer starts no further step
  };

  RunConfig config_;
  PeerAddresses addresses_;
  RunControl* control_;
  TrainingRunOptions options_;
  std::ostream* out_;
  RpcCanceller canceller_;
  std::unique_ptr<PeerClients> clients_;

  std::vector<Problem> train_;
  std::vector<Problem> heldout_;
  std::unique_ptr<ProblemCursor> rl_cursor_;
  int64_t version_ = 0;  // the learner's latest weight version (training thread)
  // The version every live rollout worker holds (rollout-side thread).
  int64_t worker_version_ = 0;
  // The next weight sync follows a resume: workers may hold newer weights
  // from the interrupted attempt and must take the older version.
  bool rollback_next_sync_ = false;
  std::mutex print_mu_;
  Pipeline pipeline_;
  std::vector<CarriedGroup> carried_;  // rollout-side thread
  v1::LearnerInfo learner_info_;  // as of Connect()
  int64_t sft_steps_done_ = 0;
  int64_t steps_done_ = 0;  // RL steps
  std::string metrics_path_;
  std::unique_ptr<LineageLog> lineage_;  // <run_dir>/samples/
  std::vector<std::unique_ptr<RewardPluginRunner>> reward_plugins_;  // by id
};

}  // namespace rlpost
