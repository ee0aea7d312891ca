#pragma once
// The fixture and helpers of the controller tests that drive TrainingRun
// against in-process fake rollout / verifier / learner services over real
// gRPC on loopback (controller/testing/fake_peers.h).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/subprocess.h"
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "controller/run.h"
#include "controller/run_control.h"
#include "nlohmann/json.hpp"
#include "common/grpc_util.h"
#include "common/metrics_registry.h"
#include "controller/lineage.h"
#include "controller/testing/fake_peers.h"


namespace rlpost {

inline std::string MakeTempDir() {
  std::string pattern = ::testing::TempDir() + "/controller_run_XXXXXX";
  char* dir = mkdtemp(pattern.data());
  EXPECT_NE(dir, nullptr);
  return pattern;
}

inline RunConfig SmallConfig(const std::string& output_dir) {
  RunConfig c;
  c.name = "fake_run";
  c.seed = 42;
  c.output_dir = output_dir;
  c.task_train_size = 40;
  c.task_heldout_size = 10;
  c.eval_size = 10;
  c.sft_steps = 2;
  c.sft_batch_size = 4;
  c.rl_steps = 3;
  c.rl_prompts_per_step = 4;
  c.rl_group_size = 4;
  c.rpc_timeout_ms = 30000;
  c.connect_retries = 3;
  c.connect_backoff_ms = 1;
  return c;
}

inline PeerAddresses AddressesOf(const testing::FakeCluster& cluster) {
  return PeerAddresses{cluster.rollout_addresses(), cluster.verifier_address(),
                       cluster.learner_address()};
}

inline std::vector<nlohmann::json> ReadJsonLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

// One metrics.jsonl field of every step, in step order.
template <typename T>
inline std::vector<T> MetricColumn(const std::string& run_dir, const char* key) {
  std::vector<T> out;
  for (const nlohmann::json& j : ReadJsonLines(run_dir + "/metrics.jsonl")) {
    out.push_back(j[key].get<T>());
  }
  return out;
}

inline nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

class FakeRunTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure()) std::cerr << "run output:\n" << out_.str();
    std::filesystem::remove_all(dir_);
  }
  std::string dir_ = MakeTempDir();
  std::ostringstream out_;
  TrainingRunOptions Options() {
    TrainingRunOptions o;
    o.out = &out_;
    return o;
  }
  // A controller crash: runs `config` until the learner gets step `step`'s
  // batch, then cancels the run; the learner and the workers live on.
  void CrashWhileTraining(testing::FakeCluster& cluster, const RunConfig& config, int64_t step) {
    RunControl control;
    TrainingRun run(config, AddressesOf(cluster), &control, Options());
    cluster.learner.set_train_hook([&](const v1::TrainBatch& b) {
      if (b.step() == step) run.Cancel();
    });
    EXPECT_EQ(run.Run().status().code(), absl::StatusCode::kCancelled);
    cluster.learner.set_train_hook(nullptr);
  }
};


// Behaviour versions of the RL batches, in step order.
inline std::vector<int64_t> BehaviorVersions(const testing::FakeLearner& learner) {
  std::vector<int64_t> out;
  for (const v1::TrainBatch& b : learner.batches()) {
    if (b.step() > 0) out.push_back(b.behavior_version());
  }
  return out;
}

// Every "sample" record of the run's lineage.
inline std::vector<nlohmann::json> SampleRecords(const std::string& run_dir) {
  std::vector<nlohmann::json> out;
  for (const auto& entry : std::filesystem::directory_iterator(run_dir + "/samples")) {
    for (const nlohmann::json& j : ReadJsonLines(entry.path().string())) {
      if (j["type"] == "sample") out.push_back(j);
    }
  }
  return out;
}

}  // namespace rlpost
