#pragma once
// One bubblewrap sandbox run: the supervisor half of the code judge.
//
// Run() forks bwrap with fresh namespaces, a read-only /usr (plus the few /etc
// files that the dynamic loader and Python read), size-capped tmpfs /tmp and
// /work (or a host directory bound read-write at /work, for compiler output),
// the seccomp filter of seccomp_policy.h and rlpost-sandbox-exec as the first
// program, which sets the rlimits, runs the judged program as its child and
// reports its wait status and CPU time on a private pipe. The supervisor
// feeds stdin from a memfd, reads stdout/stderr with a byte cap, enforces a
// wall-clock deadline (poll on a steady clock) and kills the whole PID
// namespace (SIGKILL to its init through a pidfd, and to bwrap) on timeout or
// overflow. It returns only after bwrap is reaped; after a kill it also waits
// (bounded) for the namespace's init to exit, so no sandboxed process
// outlives the call. With a keeper thread (warm sandboxes on) it returns as
// soon as the launcher reports that it has killed and reaped everything the
// program left ("D"), and the keeper reaps bwrap while the kernel unmounts.
//
// Warm sandboxes (SandboxConfig::warm_sandboxes > 0): bwrap's start-up (the
// namespaces, mounts, seccomp filter and the launcher's exec, ~5-7 ms) does
// not depend on the program, so a background thread keeps that many
// sandboxes started, each with its launcher blocked on a socket for one job.
// Run() hands a poolable spec (tmpfs /work, the default scratch size, files
// directly under /work) to an idle one: argv, environment, limits, the files
// and stdin travel as memfds, the launcher writes the files into /work and
// runs the program exactly as a cold launcher would. Every warm sandbox runs
// one program and is then torn down like a cold one, so isolation is the
// same; one that died while idle is discarded and the run starts cold.
// See docs/verifier_code.md.
//
// Thread-safety: Run() may be called from any number of threads at once.
// Every descriptor it creates is close-on-exec, so concurrent runs never
// inherit each other's pipes. The destructor (no Run() in flight) kills and
// reaps the idle warm sandboxes and reaps the retired ones.

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "verifier/code/code_judge.h"

namespace rlpost::code {

namespace internal {
struct SandboxProcess;  // sandbox_process.h
}  // namespace internal

struct SandboxConfig {
  std::string bwrap_path;
  std::string launcher_binary;  // contents of rlpost-sandbox-exec
  std::string seccomp_filter;   // BPF bytes from BuildSandboxSeccompFilter()
  // >= 0 and running as root: exec bwrap as this uid/gid.
  int64_t host_id = -1;
  // Sandboxes kept started ahead of Run(); 0 starts every run cold.
  int warm_sandboxes = 0;
  // The /tmp and /work size of warm sandboxes; a run with another
  // scratch_limit_bytes starts cold.
  int64_t warm_scratch_bytes = SandboxLimits().scratch_limit_bytes;
};

// A file placed read-only into the sandbox.
struct SandboxFile {
  std::string path;  // absolute path inside the sandbox, e.g. /work/prog.py
  std::string contents;
  bool executable = false;
};

struct SandboxRunSpec {
  std::vector<std::string> argv;  // argv[0]: absolute path inside the sandbox
  std::vector<std::pair<std::string, std::string>> env;  // besides PATH/HOME/TMPDIR/LANG
  std::string stdin_text;
  std::vector<SandboxFile> files;
  // Non-empty: this host directory is bound read-write at /work instead of a
  // fresh tmpfs (it must be writable by the sandbox's host uid).
  std::string writable_host_dir;
  SandboxLimits limits;
};

struct SandboxRunOutcome {
  // False when bwrap or the launcher failed before the program started; the
  // reason is in `setup_error`. The program cannot fake this (see
  // sandbox_exec_main.cc).
  bool started = false;
  std::string setup_error;
  int exit_code = -1;  // the program's exit status; 128+N when killed by signal N
  int signal = 0;      // N when the program was killed by signal N
  // User+system CPU of the program and the children it reaped; 0 when the
  // run was cut short (wall clock, output cap) or the launcher was killed.
  double cpu_s = 0;
  double wall_s = 0;
  bool wall_timeout = false;
  bool output_limit_exceeded = false;
  std::string stdout_text;
  std::string stderr_text;
  // The run used a warm sandbox (started before the program was known).
  bool warm = false;
};

class Sandbox {
 public:
  // Starts the warm sandboxes' thread when config.warm_sandboxes > 0.
  explicit Sandbox(SandboxConfig config);
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  // An error only for local failures (pipes, fork); everything the sandboxed
  // program does is reported in the outcome.
  absl::StatusOr<SandboxRunOutcome> Run(const SandboxRunSpec& spec) const;

  // For tests: waits until the warm sandboxes' thread has nothing left to
  // start, then returns bwrap's pid for each idle warm sandbox.
  std::vector<pid_t> IdleWarmSandboxesForTest() const;

 private:
  using Instance = internal::SandboxProcess;  // one started bwrap

  std::vector<std::string> BwrapArgs(const SandboxRunSpec* spec, int64_t scratch_bytes) const;
  absl::StatusOr<std::unique_ptr<Instance>> StartWarm() const;
  bool Poolable(const SandboxRunSpec& spec) const;
  // An idle warm sandbox that is still alive, or null.
  std::unique_ptr<Instance> TakeWarm() const;
  // Hands a finished instance whose namespace is still being torn down to
  // the keeper thread, which reaps it.
  void Retire(std::unique_ptr<Instance> instance) const;
  void KeepWarm();  // the keeper thread: starts warm sandboxes, reaps retired ones

  const SandboxConfig config_;
  std::vector<std::string> base_args_;  // mounts that do not depend on the run

  mutable absl::Mutex mu_;
  mutable std::deque<std::unique_ptr<Instance>> idle_ ABSL_GUARDED_BY(mu_);
  // Sandboxes the thread may start: Run() adds one per poolable spec, so a
  // bwrap that cannot start is retried once per run, not in a loop.
  mutable int credit_ ABSL_GUARDED_BY(mu_) = 0;
  // Finished runs waiting for their namespace to be torn down.
  mutable std::vector<std::unique_ptr<Instance>> retired_ ABSL_GUARDED_BY(mu_);
  // The keeper is starting or reaping with mu_ released.
  bool keeper_busy_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Warm sandboxes are started from this long-lived thread: bwrap dies with
  // its parent through PR_SET_PDEATHSIG, which fires when the *thread* that
  // started it exits, and a warm sandbox may outlive the run that asked for it.
  std::thread keeper_;
};

}  // namespace rlpost::code
