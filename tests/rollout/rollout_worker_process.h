#pragma once
// A real rlpost-rollout worker (from $RLPOST_BIN_DIR) on 127.0.0.1:0 with a
// tiny policy, for tests that drive it over gRPC or through rlctl. One owner
// thread starts and stops it; the address may be used from any thread.

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/subprocess.h"

namespace rlpost::testing {

// The policy shape every test of the worker uses; the run-config keys are
// those of common/run_config.cc. Tests that rebuild the policy in-process
// (to send it new weights) use the same values.
inline constexpr int64_t kTinyLayers = 1;
inline constexpr int64_t kTinyDModel = 32;
inline constexpr int64_t kTinyHeads = 4;
inline constexpr int64_t kTinyKvHeads = 2;
inline constexpr int64_t kTinyExperts = 4;
inline constexpr int64_t kTinyTopK = 2;
inline constexpr int64_t kTinyExpertHidden = 32;
inline constexpr int64_t kTinyContext = 64;
inline constexpr int64_t kTinyInitSeed = 7;

inline std::vector<std::string> TinyWorkerOverrides() {
  return {absl::StrCat("model.n_layers=", kTinyLayers),
          absl::StrCat("model.d_model=", kTinyDModel),
          absl::StrCat("model.n_heads=", kTinyHeads),
          absl::StrCat("model.n_kv_heads=", kTinyKvHeads),
          absl::StrCat("model.n_experts=", kTinyExperts),
          absl::StrCat("model.top_k=", kTinyTopK),
          absl::StrCat("model.expert_hidden=", kTinyExpertHidden),
          absl::StrCat("model.max_seq_len=", kTinyContext),
          absl::StrCat("model.init_seed=", kTinyInitSeed),
          "rollout.drafter=ngram",
          "rollout.max_batch=16",
          "rollout.kv_block_size=8"};
}

class RolloutWorkerProcess {
 public:
  RolloutWorkerProcess() = default;
  RolloutWorkerProcess(const RolloutWorkerProcess&) = delete;
  RolloutWorkerProcess& operator=(const RolloutWorkerProcess&) = delete;
  ~RolloutWorkerProcess() { Stop(); }

  // Starts the worker with TinyWorkerOverrides() plus `extra` overrides and
  // waits for its port file.
  absl::Status Start(const std::vector<std::string>& extra = {}) {
    char pattern[] = "/tmp/rlpost_rollout_XXXXXX";
    if (mkdtemp(pattern) == nullptr) return absl::InternalError("mkdtemp failed");
    dir_ = pattern;
    const std::string bin_dir = std::getenv("RLPOST_BIN_DIR") ? std::getenv("RLPOST_BIN_DIR") : ".";
    const std::string port_file = dir_ + "/rollout.port";
    std::vector<std::string> argv = {bin_dir + "/rlpost-rollout", "--listen", "127.0.0.1:0",
                                     "--port-file", port_file};
    for (const std::string& o : TinyWorkerOverrides()) argv.push_back(o);
    argv.insert(argv.end(), extra.begin(), extra.end());
    if (absl::Status s = process_.Start(argv, log_path()); !s.ok()) return s;
    absl::StatusOr<int> port =
        WaitForPortFile(port_file, &process_, "rlpost-rollout", std::chrono::seconds(120));
    if (!port.ok()) {
      return absl::Status(port.status().code(),
                          absl::StrCat(port.status().message(), "\n", Log()));
    }
    addr_ = absl::StrCat("127.0.0.1:", *port);
    return absl::OkStatus();
  }

  // SIGTERM; returns the exit code (0 on a graceful shutdown).
  int Stop() {
    if (dir_.empty()) return exit_code_;
    exit_code_ = process_.Stop(std::chrono::seconds(10));
    std::filesystem::remove_all(dir_);
    dir_.clear();
    return exit_code_;
  }

  const std::string& addr() const { return addr_; }

  std::string Log() const {
    std::ifstream in(log_path());
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  std::string log_path() const { return dir_ + "/rollout.log"; }

  Subprocess process_;
  std::string dir_;
  std::string addr_;
  int exit_code_ = -1;
};

}  // namespace rlpost::testing
