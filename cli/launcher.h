#pragma once
// The local launcher behind `rlpost train`: starts a verifier, the learner
// ranks and the rollout workers on loopback (free ports, port files), then the
// controller with their addresses; passes the controller's progress lines
// through; and stops every child at the end, on error and on SIGINT/SIGTERM.
// Children die with the launcher even if it is killed (PR_SET_PDEATHSIG).
//
// Not thread-safe: one Launcher drives one job from the main thread. It polls
// ShutdownRequested() (common/grpc_util.h), so main must call
// InstallShutdownSignals() first.

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/run_config.h"
#include "common/subprocess.h"

namespace rlpost {

// Exit statuses of `rlpost train` besides the controller's own.
inline constexpr int kLaunchFailed = 1;   // a process could not start
inline constexpr int kLaunchUsage = 2;    // bad arguments or config; nothing started
inline constexpr int kLaunchInterrupted = 130;

class Launcher {
 public:
  // `bin_dir` holds rlpost-controller, rlpost-rollout, rlpost-verifier and
  // rlpost-learner. Messages go to `out` (progress) and `err` (errors).
  Launcher(std::string bin_dir, std::ostream* out, std::ostream* err);
  ~Launcher();  // stops any child still running

  // Runs `rlpost train --config <config_path> <overrides...>` and returns its
  // exit status: the controller's (0 when the run finished), kLaunchUsage for
  // a bad config, kLaunchFailed when a process could not start,
  // kLaunchInterrupted after SIGINT/SIGTERM.
  int Train(const std::string& config_path, const std::vector<std::string>& overrides);

 private:
  struct Child {
    std::string name;      // "verifier", "learner[0]", "rollout[1]", "controller"
    std::string log_path;
    std::string port_file;  // empty: the child serves no gRPC
    int port = 0;
    std::string metrics_port_file;  // its Prometheus endpoint's port
    std::unique_ptr<Subprocess> process;
    // How it was started, to start it again the same way (same port).
    std::vector<std::string> argv;
    bool log_stdout = true;
    std::vector<int> cpus;
    int restarts = 0;
  };

  absl::Status StartChild(const std::string& name, const std::string& binary,
                          std::vector<std::string> args, bool serves, bool log_stdout,
                          std::vector<int> cpus = {});
  // Starts `child` again on its port, with `flags` after the program name
  // and `overrides` at the end; `replace` swaps flag values ("--master-port"
  // -> new value). The log is appended to.
  absl::Status RestartChild(Child* child, const std::vector<std::string>& flags,
                            const std::vector<std::string>& overrides,
                            const std::vector<std::pair<std::string, std::string>>& replace = {});
  // Supervision while the controller runs: a verifier or rollout worker that
  // exits is started again (up to run.restart_limit times each; a rollout
  // worker re-registers with the controller).
  void RestartLostServices(const RunConfig& config, int controller_port);
  // The controller exited with `code`: when it was killed (a signal other
  // than SIGTERM) or a learner rank died, and checkpoints are on, starts the
  // learner ranks (if any died) and the controller again with run.resume.
  // True when it did.
  bool RestartRun(const RunConfig& config, int code);
  bool LearnerRankDied();
  // The child's metrics port, once it has written it (0 before).
  int MetricsPort(const Child& child) const;
  // Waits until every child with a port file has written it.
  absl::Status WaitForPorts(std::chrono::milliseconds timeout);
  // SIGTERM to every child, a grace period, then SIGKILL.
  void StopAll();
  std::string Tail(const std::string& path, int lines) const;

  std::string bin_dir_;
  std::ostream* out_;
  std::ostream* err_;
  std::string logs_dir_;
  std::string ports_dir_;
  std::vector<std::string> child_args_;  // --config FILE key=value ...
  std::vector<Child> children_;
};

}  // namespace rlpost
