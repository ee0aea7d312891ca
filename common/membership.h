#pragma once
// A worker's membership in a running job, for processes started with
// --controller/--advertise (rlpost-rollout, rlpost-verifier): registers with
// the controller (retried with back-off), then sends Heartbeat every period
// on its own thread; when the controller answers that it does not count the
// worker as serving (it restarted, or took the worker out), registers again.
//
// Thread-safety: Join and Stop from one owner; the heartbeat thread only
// calls the controller and the `weight_version` callback.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/retry.h"
#include "common/run_config.h"

namespace rlpost {

class ControllerMembership {
 public:
  struct Options {
    std::string controller;  // HOST:PORT
    std::string advertise;   // HOST:PORT the controller reaches this worker at
    std::string role;        // "rollout" or "verifier"
    std::string token;       // bearer token, or empty
    RetryPolicy policy;      // for the first registration
    std::chrono::milliseconds heartbeat{2000};
    std::function<int64_t()> weight_version;  // may be empty

    // The fields above from the flags and the run config's net.* keys
    // (connect retries and back-off, heartbeat period).
    static Options For(const std::string& controller, const std::string& advertise,
                       const std::string& role, const std::string& token,
                       const RunConfig& config);
  };
  // Registers, then starts heartbeating. The error names the controller.
  static absl::StatusOr<std::unique_ptr<ControllerMembership>> Join(Options options);
  ~ControllerMembership();
  void Stop();

 private:
  explicit ControllerMembership(Options options);
  absl::Status RegisterOnce();
  void Beat();

  Options options_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace rlpost
