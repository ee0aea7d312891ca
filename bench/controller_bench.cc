#include "bench/controller_bench.h"

#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bench/bench_flags.h"
#include "common/subprocess.h"
#include "controller/run.h"
#include "controller/run_control.h"
#include "controller/testing/fake_peers.h"

namespace rlpost::bench {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const char* what) {
  std::string pattern = (fs::temp_directory_path() / absl::StrCat("rlpost_bench_", what, "_XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) return "";
  return pattern;
}

struct ThroughputResult {
  int64_t samples = 0;
  double rl_seconds = 0.0;
  double samples_per_sec() const { return rl_seconds > 0 ? samples / rl_seconds : 0.0; }
};

// The controller's loop against fakes that answer at once: what is measured
// is gRPC, protobuf, verification batching, advantages, the training batch
// and the lineage records.
absl::StatusOr<ThroughputResult> MeasureThroughput(const std::string& dir, const std::string& mode,
                                                   int64_t steps) {
  testing::FakeCluster cluster(4, testing::FakeRollout::Mode::kMixed);
  RunConfig config;
  config.name = absl::StrCat("throughput_", mode);
  config.output_dir = dir;
  config.task_train_size = 4096;
  config.task_heldout_size = 16;
  config.eval_size = 16;
  config.sft_steps = 0;
  config.rl_steps = steps;
  config.rl_prompts_per_step = 128;
  config.rl_group_size = 16;
  config.rl_mode = mode;
  config.rl_max_staleness = mode == "async" ? 1 : 0;
  config.rpc_timeout_ms = 60000;
  config.connect_backoff_ms = 1;
  RunControl control;
  std::ostringstream out;
  TrainingRunOptions options;
  options.out = &out;
  options.requests_per_worker = 8;
  TrainingRun run(config, PeerAddresses{cluster.rollout_addresses(), cluster.verifier_address(),
                                        cluster.learner_address()},
                  &control, options);
  absl::StatusOr<RunSummary> summary = run.Run();
  if (!summary.ok()) return summary.status();
  ThroughputResult r;
  r.samples = steps * config.rl_prompts_per_step * config.rl_group_size;
  r.rl_seconds = summary->rl_seconds;
  return r;
}

struct TrainResult {
  double rl_seconds = 0.0;
  double steps_per_hour = 0.0;
  double accuracy_before = 0.0;
  double accuracy_after = 0.0;
};

// `rlpost train` on the built-in task in `mode`, generation pinned to one
// CPU and training to another (as on separate GPU pools) when two are free.
absl::StatusOr<TrainResult> RunBuiltInTask(const std::string& dir, const std::string& mode,
                                           int64_t steps, const std::vector<int>& cpus) {
  const std::string name = absl::StrCat("builtin_", mode);
  std::vector<std::string> argv = {
      (fs::path(ExecutableDir()) / "rlpost").string(),
      "train",
      "--config",
      (fs::path(RLPOST_BENCH_SOURCE_DIR) / "configs" / "arith_grpo.yaml").string(),
      absl::StrCat("run.name=", name),
      absl::StrCat("run.output_dir=", dir),
      absl::StrCat("rl.mode=", mode),
      absl::StrCat("rl.steps=", steps),
      "rollout.workers=1",
  };
  if (cpus.size() >= 2) {
    // Generation and training each get a CPU of their own; the controller
    // and the verifier float (pinning them beside the rollout worker makes
    // generation the bottleneck: measured 1.33 instead of 1.5).
    argv.push_back(absl::StrCat("rollout.cpus=", cpus[0]));
    argv.push_back(absl::StrCat("learner.cpus=", cpus[1]));
  }
  const std::string log = (fs::path(dir) / (name + ".log")).string();
  Subprocess child;
  absl::Status s = child.Start(argv, log);
  if (!s.ok()) return s;
  child.Wait(std::chrono::hours(2));
  if (child.exit_code() != 0) {
    return absl::InternalError(absl::StrCat("rlpost train (", mode, ") exited with status ",
                                            child.exit_code(), "; see ", log));
  }
  std::ifstream in(fs::path(dir) / name / "summary.json");
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::DataLossError(absl::StrCat("no summary.json for ", name));
  TrainResult r;
  r.rl_seconds = j.value("rl_seconds", 0.0);
  r.steps_per_hour = j.value("steps_per_hour", 0.0);
  r.accuracy_before = j.value("heldout_accuracy_before", 0.0);
  r.accuracy_after = j.value("heldout_accuracy_after", 0.0);
  return r;
}

}  // namespace

int RunControllerBench(const std::vector<std::string>& args) {
  bool json_out = false, quick = false;
  if (!ParseJsonQuickFlags(args, "controller", &json_out, &quick)) return 2;
  const std::string dir = TempDir("controller");
  if (dir.empty()) {
    std::fprintf(stderr, "rlpost-bench controller: cannot create a temporary directory\n");
    return 1;
  }
  auto fail = [&](const absl::Status& s) {
    std::fprintf(stderr, "rlpost-bench controller: %s\n", s.ToString().c_str());
    return 1;
  };

  // 1. Throughput with fakes, sync and async.
  const int64_t throughput_steps = quick ? 4 : 16;
  absl::StatusOr<ThroughputResult> sync_tp = MeasureThroughput(dir, "sync", throughput_steps);
  if (!sync_tp.ok()) return fail(sync_tp.status());
  absl::StatusOr<ThroughputResult> async_tp = MeasureThroughput(dir, "async", throughput_steps);
  if (!async_tp.ok()) return fail(async_tp.status());

  // 2. The built-in task, sync then async.
  const int64_t steps = quick ? 20 : 80;
  const std::vector<int> cpus = AllowedCpus();
  if (!json_out) {
    std::printf("built-in task: %ld RL steps per mode, %s\n", static_cast<long>(steps),
                cpus.size() >= 2 ? absl::StrCat("rollout worker pinned to CPU ", cpus[0],
                                                ", learner to CPU ", cpus[1]).c_str()
                                 : "one CPU: unpinned");
    std::fflush(stdout);
  }
  absl::StatusOr<TrainResult> sync_run = RunBuiltInTask(dir, "sync", steps, cpus);
  if (!sync_run.ok()) return fail(sync_run.status());
  absl::StatusOr<TrainResult> async_run = RunBuiltInTask(dir, "async", steps, cpus);
  if (!async_run.ok()) return fail(async_run.status());
  const double speedup =
      async_run->rl_seconds > 0 ? sync_run->rl_seconds / async_run->rl_seconds : 0.0;
  const double gap = 100.0 * (async_run->accuracy_after - sync_run->accuracy_after);

  nlohmann::ordered_json report;
  report["controller_samples_per_sec"] = sync_tp->samples_per_sec();
  report["controller_samples_per_sec_async"] = async_tp->samples_per_sec();
  report["throughput_samples"] = sync_tp->samples;
  report["builtin_steps"] = steps;
  report["pinned"] = cpus.size() >= 2;
  report["sync_steps_per_hour"] = sync_run->steps_per_hour;
  report["async_steps_per_hour"] = async_run->steps_per_hour;
  report["async_speedup"] = speedup;
  report["sync_heldout_accuracy"] = sync_run->accuracy_after;
  report["async_heldout_accuracy"] = async_run->accuracy_after;
  report["accuracy_gap_points"] = gap;
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (json_out) {
    std::printf("%s\n", report.dump().c_str());
    return 0;
  }
  std::printf("controller_samples_per_sec   %.0f  (sync; async %.0f; fake rollout/verifier/learner, "
              "%ld samples; target >= 10000)\n",
              sync_tp->samples_per_sec(), async_tp->samples_per_sec(),
              static_cast<long>(sync_tp->samples));
  std::printf("steps_per_hour               sync %.0f, async %.0f\n", sync_run->steps_per_hour,
              async_run->steps_per_hour);
  std::printf("async_speedup                %.2f  (target >= 1.5)\n", speedup);
  std::printf("heldout accuracy             sync %.1f%%, async %.1f%% (%+.1f pts; target within 2; "
              "both from %.1f%%)\n",
              100.0 * sync_run->accuracy_after, 100.0 * async_run->accuracy_after, gap,
              100.0 * sync_run->accuracy_before);
  return 0;
}

}  // namespace rlpost::bench
