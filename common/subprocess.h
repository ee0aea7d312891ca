#pragma once
// Child processes of the launcher and of the multi-process tests.
//
// A child is started in its own process group and asks the kernel to send it
// SIGTERM when its parent dies (PR_SET_PDEATHSIG), so no child outlives the
// launcher even when the launcher is killed with SIGKILL. Not thread-safe: one
// owner drives each Subprocess.

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rlpost {

class Subprocess {
 public:
  Subprocess() = default;
  ~Subprocess();  // Kills the child if it still runs.
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // Starts argv[0] (a path) with `argv`. Output goes to `log_path` when not
  // empty (appended), else is inherited.
  absl::Status Start(const std::vector<std::string>& argv, const std::string& log_path = "");
  // Like Start, with stdout and stderr sent to separate files (appended); an
  // empty path leaves that stream inherited.
  absl::Status StartWithOutput(const std::vector<std::string>& argv,
                               const std::string& stdout_path, const std::string& stderr_path);

  // CPUs the next started child is pinned to (sched_setaffinity before
  // exec); empty: inherited.
  void set_cpus(std::vector<int> cpus) { cpus_ = std::move(cpus); }

  pid_t pid() const { return pid_; }
  bool running();
  // Exit code, or 128+signal; only valid once !running().
  int exit_code() const { return exit_code_; }

  // SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit code.
  int Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));
  // Waits for exit up to `timeout`; false if it still runs.
  bool Wait(std::chrono::milliseconds timeout);
  void Signal(int sig);

 private:
  pid_t pid_ = -1;
  std::vector<int> cpus_;
  bool reaped_ = false;
  int exit_code_ = -1;
};

// Waits until `path` exists and holds a port number, or the timeout passes, or
// `child` exits first (then the error says so and names `what`).
absl::StatusOr<int> WaitForPortFile(const std::string& path, Subprocess* child,
                                    const std::string& what,
                                    std::chrono::milliseconds timeout);

// A TCP port on 127.0.0.1 that was free a moment ago (for the learners'
// rendezvous, which cannot use port 0; tests also use it for a closed port).
absl::StatusOr<int> PickFreePort();

// CPUs this process may run on (its affinity mask), ascending.
std::vector<int> AllowedCpus();

// Directory of the running executable (to find sibling binaries).
std::string ExecutableDir();

}  // namespace rlpost
