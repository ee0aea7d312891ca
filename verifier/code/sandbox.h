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
// outlives the call.
//
// Thread-safety: immutable after construction; Run() may be called from any
// number of threads at once. Every descriptor it creates is close-on-exec, so
// concurrent runs never inherit each other's pipes.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "verifier/code/code_judge.h"

namespace rlpost::code {

struct SandboxConfig {
  std::string bwrap_path;
  std::string launcher_binary;  // contents of rlpost-sandbox-exec
  std::string seccomp_filter;   // BPF bytes from BuildSandboxSeccompFilter()
  // >= 0 and running as root: exec bwrap as this uid/gid.
  int64_t host_id = -1;
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
};

class Sandbox {
 public:
  explicit Sandbox(SandboxConfig config);

  // An error only for local failures (pipes, fork); everything the sandboxed
  // program does is reported in the outcome.
  absl::StatusOr<SandboxRunOutcome> Run(const SandboxRunSpec& spec) const;

 private:
  SandboxConfig config_;
  std::vector<std::string> base_args_;  // mounts that do not depend on the run
};

}  // namespace rlpost::code
