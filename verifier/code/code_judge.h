#pragma once
// The code judge: runs a model's program (Python or C++) against stdin/stdout
// test cases or an appended test program (HumanEval `check`) inside a
// bubblewrap sandbox and returns a verdict per test. See docs/verifier_code.md.
//
// Each run gets fresh namespaces (user, pid, net, ipc, uts, mount), a
// read-only view of /usr and a few /etc files, size-capped tmpfs /tmp and
// /work, rlimits (CPU, address space, processes, file size, open files, no
// core dumps) and a seccomp filter that denies kernel-attack-surface syscalls
// (mount, ptrace, bpf, unshare, ...) and sockets other than AF_UNIX. When the
// judge runs as root, the sandbox is started as uid/gid 65534 on the host.
//
// Thread-safety: a CodeJudge is immutable after Create(); Judge() may be
// called concurrently from any number of threads. Each call runs in its own
// sandboxes (started for it, or warm ones started ahead for a single use)
// and owns their temporary directories. Judge() never throws. Destroying a
// CodeJudge (no Judge() in flight) kills its idle warm sandboxes.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rlpost::code {

class Sandbox;

// Recorded with every verdict for lineage; bump when a change could flip a
// verdict.
inline constexpr char kCodeVerifierVersion[] = "rlpost-code/0.1.0";

struct SandboxLimits {
  double time_limit_s = 2.0;             // CPU seconds per test run (RLIMIT_CPU + accounting)
  int64_t memory_limit_mb = 256;         // address space (RLIMIT_AS)
  int64_t output_limit_bytes = 1 << 20;  // stdout+stderr captured; more = output_limit
  int max_processes = 16;  // RLIMIT_NPROC in the sandbox (its init and launcher count too)
  double wall_limit_s = 0.0;             // 0: 2 * time_limit_s + 1
  int64_t file_size_limit_bytes = 16 << 20;  // RLIMIT_FSIZE
  int max_open_files = 64;                   // RLIMIT_NOFILE
  // Size of each of the sandbox's in-memory /tmp and /work file systems.
  int64_t scratch_limit_bytes = 64 << 20;

  // The wall-clock deadline actually applied.
  double EffectiveWallLimit() const {
    return wall_limit_s > 0 ? wall_limit_s : 2 * time_limit_s + 1;
  }
};

// Limits for compiling C++ (g++ runs in the same kind of sandbox).
SandboxLimits DefaultCompileLimits();

struct CodeTest {
  std::string stdin_text;
  std::string expected_stdout;
};

enum class CodeVerdict {
  kAccepted,
  kWrongAnswer,
  kTimeLimit,
  kMemoryLimit,
  kOutputLimit,
  kRuntimeError,
  kCompileError,
  kSandboxError,  // the sandbox itself failed (not the program's fault)
};

// "accepted", "wrong_answer", "time_limit", "memory_limit", "output_limit",
// "runtime_error", "compile_error", "sandbox_error".
const char* CodeVerdictName(CodeVerdict v);

struct CodeTask {
  std::string language;  // "python" or "cpp"
  std::string code;
  std::vector<CodeTest> tests;  // stdin/stdout cases, or
  std::string compare = "trim";  // exact | trim | tokens | float:<tol>
  std::string test_code;    // appended program (HumanEval `check`, asserts)
  std::string entry_point;  // HumanEval: test_code's check(entry_point) is called
  SandboxLimits limits;
  // C++ only: limits for the compile step.
  SandboxLimits compile_limits = DefaultCompileLimits();
  bool stop_at_first_failure = true;
};

struct CodeTestResult {
  CodeVerdict verdict = CodeVerdict::kSandboxError;
  double cpu_s = 0;
  std::string detail;
};

struct CodeResult {
  CodeVerdict verdict = CodeVerdict::kSandboxError;  // first failing test's verdict, or kAccepted
  double score = 0;                    // fraction of tests passed
  std::vector<CodeTestResult> tests;   // one per test run (fewer when stopped early)
  std::string detail;                  // short human-readable reason
};

struct CodeJudgeOptions {
  std::string bwrap_path = "/usr/bin/bwrap";
  std::string python_path = "/usr/bin/python3";
  std::string cxx_path = "/usr/bin/g++";
  std::string work_root = "";  // default: $TMPDIR or /tmp
  // The rlpost-sandbox-exec launcher (applies rlimits inside the sandbox).
  // Empty: $RLPOST_SANDBOX_EXEC, else next to the running executable.
  std::string launcher_path = "";
  // When the judge runs as root, start bwrap as this host uid/gid so that the
  // sandboxed program owns nothing on the host. -1 keeps the caller's ids.
  int64_t unprivileged_host_id = 65534;
  // Sandboxes kept started ahead of the runs that will use them, so that
  // bwrap's start-up (~5-7 ms of namespaces, mounts and seccomp) happens off
  // a run's critical path. Each is used for exactly one program, then torn
  // down like any other: isolation is unchanged. They cost no extra CPU
  // (every run starts one sandbox either way), three idle processes each,
  // and help latency and sequential throughput, not a CPU-saturated judge.
  // 0: every run starts its own sandbox. At most 64.
  int warm_sandboxes = 2;
};

class CodeJudge {
 public:
  // Checks that bwrap works here (runs `true` in a sandbox); the error says
  // what is missing (binary, user namespaces, launcher).
  static absl::StatusOr<std::unique_ptr<CodeJudge>> Create(const CodeJudgeOptions& options);

  // InvalidArgument for a malformed task (unknown language/compare mode,
  // neither tests nor test_code, limits out of range); otherwise a result
  // (sandbox failures are kSandboxError verdicts).
  absl::StatusOr<CodeResult> Judge(const CodeTask& task) const;

  ~CodeJudge();
  CodeJudge(const CodeJudge&) = delete;
  CodeJudge& operator=(const CodeJudge&) = delete;

  // The options with every default resolved (launcher path, work root, and
  // unprivileged_host_id = -1 when dropping ids did not work here).
  const CodeJudgeOptions& options() const { return options_; }

 private:
  CodeJudge(CodeJudgeOptions options, std::unique_ptr<Sandbox> sandbox);

  absl::StatusOr<CodeResult> JudgePython(const CodeTask& task) const;
  absl::StatusOr<CodeResult> JudgeCpp(const CodeTask& task) const;

  const CodeJudgeOptions options_;
  const std::unique_ptr<const Sandbox> sandbox_;
};

}  // namespace rlpost::code
