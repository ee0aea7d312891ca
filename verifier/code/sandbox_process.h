#pragma once
// Internal to verifier/code/ (sandbox.cc): one started bwrap process tree.
// SandboxProcess::Start spawns bwrap with a vfork-style clone (see
// docs/verifier_code.md, "Spawn"); Supervise collects one run's output and
// the launcher's report under the wall deadline and output cap; Kill and
// Reap take the PID namespace down. Sandbox decides what bwrap runs (a
// program, or a warm launcher waiting for its job) and owns the pool.

#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "verifier/code/sandbox.h"

namespace rlpost::code::internal {

using Clock = std::chrono::steady_clock;

// Descriptor numbers as bwrap sees them.
constexpr int kReadyFd = 3;
constexpr int kJsonFd = 4;
constexpr int kSeccompFd = 5;
constexpr int kLauncherFd = 6;
constexpr int kFirstFileFd = 7;
constexpr int kControlFd = 7;  // warm sandboxes: the job socket (they get no files)
// How long to wait for the PID namespace to empty, and for pipes to drain,
// after bwrap is gone. Generous: only reached when the kernel is slow.
constexpr std::chrono::milliseconds kReapGrace(5000);

// Owns a descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// An Internal error "<what>: <strerror(errno)>".
absl::Status Errno(absl::string_view what);
// A close-on-exec memfd holding `data`, positioned at 0.
absl::StatusOr<Fd> MemFdWith(const char* name, absl::string_view data);
// Milliseconds left until `deadline` for poll(), rounded up; 0 once passed.
int MillisUntil(Clock::time_point deadline);

// One started bwrap: its pid, pidfds and the supervisor's ends of its
// descriptors. Destroying it kills and reaps whatever is still running.
// Used by one thread at a time.
struct SandboxProcess {
  pid_t pid = -1;
  Fd pidfd;       // bwrap's
  Fd init_pidfd;  // the namespace's init, once known
  Fd out, err, status, json;  // read ends, non-blocking
  Fd control;                 // warm: our end of the job socket
  std::string json_text;

  ~SandboxProcess() {
    if (pid <= 0) return;
    Kill();
    Reap();
  }

  // Spawns bwrap with `args`; its descriptors 0..4 are `stdin_fd` and the
  // write ends of new stdout, stderr, status and json pipes, then `extra`.
  static absl::StatusOr<std::unique_ptr<SandboxProcess>> Start(const std::vector<std::string>& args,
                                                         int stdin_fd,
                                                         const std::vector<int>& extra,
                                                         int64_t host_id);

  // Reads what bwrap wrote to --json-status-fd; true when not at EOF.
  bool ReadJson();
  // bwrap writes the pid of the namespace's init (in our pid namespace) to
  // --json-status-fd right after creating it, before the program runs.
  void TrackInit();
  // Neither bwrap nor the namespace's init has exited.
  bool Alive() const;
  void Kill();
  // Waits for the namespace's init (bounded) and reaps bwrap; returns its
  // wait status.
  int Reap();
  // Collects output and the launcher's report until bwrap exits, the wall
  // deadline (from `start`) passes or the output cap is hit; then kills and
  // reaps. With `may_retire`, it returns as soon as the launcher has said
  // that no process of the program is left ("D"), without reaping: the
  // caller hands the instance to the keeper thread, which waits for the
  // namespace's teardown (~3-4 ms of unmounting) off the run's critical
  // path. `*launcher_silent`: the launcher wrote nothing at all (it never
  // took the job).
  SandboxRunOutcome Supervise(const SandboxLimits& limits, Clock::time_point start,
                              bool may_retire, bool* launcher_silent);
};

}  // namespace rlpost::code::internal
