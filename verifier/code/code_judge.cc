#include "verifier/code/code_judge.h"

#include <ftw.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "verifier/code/output_compare.h"
#include "verifier/code/sandbox.h"
#include "verifier/code/seccomp_policy.h"

namespace rlpost::code {
namespace {

constexpr char kProgramPy[] = "/work/prog.py";
constexpr char kSourceCc[] = "/work/prog.cc";
constexpr char kBinary[] = "/work/prog";
constexpr size_t kMaxCodeBytes = 4 << 20;
constexpr size_t kMaxBinaryBytes = 256 << 20;

absl::Status OutOfRange(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

absl::Status ValidateLimits(const SandboxLimits& l, absl::string_view name) {
  auto field = [&](absl::string_view f) { return absl::StrCat(name, ".", f); };
  if (!(l.time_limit_s > 0 && l.time_limit_s <= 600)) {
    return OutOfRange(field("time_limit_s"), "must be in (0, 600]");
  }
  if (l.memory_limit_mb < 16 || l.memory_limit_mb > (1 << 20)) {
    return OutOfRange(field("memory_limit_mb"), "must be in [16, 1048576]");
  }
  if (l.output_limit_bytes < 1 || l.output_limit_bytes > (int64_t{1} << 30)) {
    return OutOfRange(field("output_limit_bytes"), "must be in [1, 2^30]");
  }
  if (l.max_processes < 1 || l.max_processes > 4096) {
    return OutOfRange(field("max_processes"), "must be in [1, 4096]");
  }
  if (!(l.wall_limit_s >= 0 && l.wall_limit_s <= 3600)) {
    return OutOfRange(field("wall_limit_s"), "must be in [0, 3600] (0: 2 * time_limit_s + 1)");
  }
  if (l.file_size_limit_bytes < 0) return OutOfRange(field("file_size_limit_bytes"), "must be >= 0");
  if (l.max_open_files < 8 || l.max_open_files > 65536) {
    return OutOfRange(field("max_open_files"), "must be in [8, 65536]");
  }
  if (l.scratch_limit_bytes < 4096) {
    return OutOfRange(field("scratch_limit_bytes"), "must be >= 4096");
  }
  return absl::OkStatus();
}

bool IsPythonIdentifier(absl::string_view s) {
  if (s.empty() || absl::ascii_isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

std::string LastNonEmptyLine(absl::string_view text) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    absl::string_view line = absl::StripAsciiWhitespace(*it);
    if (!line.empty()) return std::string(line);
  }
  return "";
}

std::string Clip(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  return absl::StrCat(text.substr(0, max_bytes), "...");
}

// The first lines of a compiler's diagnostics.
std::string Head(absl::string_view text, int max_lines, size_t max_bytes) {
  std::string out;
  int lines = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (lines++ == max_lines) break;
    absl::StrAppend(&out, line, "\n");
  }
  return Clip(absl::StripTrailingAsciiWhitespace(out), max_bytes);
}

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? absl::StrCat("SIG", abbrev) : absl::StrCat("signal ", sig);
}

CodeTestResult Result(CodeVerdict verdict, const SandboxRunOutcome& run, std::string detail) {
  CodeTestResult r;
  r.verdict = verdict;
  r.cpu_s = run.cpu_s;
  r.detail = std::move(detail);
  return r;
}

// Memory-limit heuristic: RLIMIT_AS makes allocations fail, which Python
// reports as MemoryError and libstdc++ as std::bad_alloc; the loader and libc
// say "Cannot allocate memory" / "out of memory". A program that dereferences
// a failed malloc instead gets SIGSEGV and is a runtime_error.
bool LooksOutOfMemory(absl::string_view stderr_text) {
  return absl::StrContains(stderr_text, "MemoryError") ||
         absl::StrContains(stderr_text, "std::bad_alloc") ||
         absl::StrContains(stderr_text, "Cannot allocate memory") ||
         absl::StrContains(stderr_text, "out of memory");
}

// The verdict when the run itself decides it (limits, crashes); nullopt when
// the program exited 0 and its output must be checked.
std::optional<CodeTestResult> ClassifyRun(const SandboxRunOutcome& run,
                                          const SandboxLimits& limits, bool python_asserts) {
  if (!run.started) return Result(CodeVerdict::kSandboxError, run, run.setup_error);
  if (run.output_limit_exceeded) {
    return Result(CodeVerdict::kOutputLimit, run,
                  absl::StrCat("output exceeded ", limits.output_limit_bytes, " bytes"));
  }
  if (run.wall_timeout) {
    return Result(CodeVerdict::kTimeLimit, run,
                  absl::StrFormat("wall-clock limit of %.3gs exceeded", limits.EffectiveWallLimit()));
  }
  const double rlimit_cpu = std::max(1.0, std::ceil(limits.time_limit_s));
  if (run.cpu_s > limits.time_limit_s || run.signal == SIGXCPU ||
      (run.signal == SIGKILL && run.cpu_s >= rlimit_cpu)) {
    return Result(CodeVerdict::kTimeLimit, run,
                  absl::StrFormat("CPU limit of %.3gs exceeded (used %.3fs)", limits.time_limit_s,
                                  run.cpu_s));
  }
  if (run.exit_code == 0) return std::nullopt;
  const std::string last = LastNonEmptyLine(run.stderr_text);
  if (python_asserts && absl::StartsWith(last, "AssertionError")) {
    return Result(CodeVerdict::kWrongAnswer, run, Clip(last, 300));
  }
  if (LooksOutOfMemory(run.stderr_text)) {
    return Result(CodeVerdict::kMemoryLimit, run,
                  absl::StrCat("out of memory (limit ", limits.memory_limit_mb, " MB): ",
                               Clip(last, 200)));
  }
  const std::string how = run.signal != 0 ? absl::StrCat("killed by ", SignalName(run.signal))
                                          : absl::StrCat("exit code ", run.exit_code);
  return Result(CodeVerdict::kRuntimeError, run,
                last.empty() ? how : absl::StrCat(how, ": ", Clip(last, 300)));
}

SandboxRunOutcome FailedRun(const absl::Status& status) {
  SandboxRunOutcome run;
  run.setup_error = std::string(status.message());
  return run;
}

std::string RandomNonce() {
  absl::BitGen gen;
  return absl::StrFormat("rlpost-tests-passed-%016x%016x", absl::Uniform<uint64_t>(gen),
                         absl::Uniform<uint64_t>(gen));
}

// Removes a directory tree without following symlinks.
void RemoveTree(const std::string& path) {
  nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p) == 0 ? 0 : 0; },
      16, FTW_DEPTH | FTW_PHYS);
}

// Runs `argv` once per stdin/stdout test and compares the output.
CodeResult RunStdioTests(const Sandbox& sandbox, const CodeTask& task, const CompareMode& mode,
                         const std::vector<std::string>& argv, const std::vector<SandboxFile>& files,
                         std::vector<std::pair<std::string, std::string>> env) {
  CodeResult result;
  result.verdict = CodeVerdict::kAccepted;
  int passed = 0;
  for (size_t i = 0; i < task.tests.size(); ++i) {
    SandboxRunSpec spec;
    spec.argv = argv;
    spec.env = env;
    spec.files = files;
    spec.stdin_text = task.tests[i].stdin_text;
    spec.limits = task.limits;
    absl::StatusOr<SandboxRunOutcome> run = sandbox.Run(spec);
    const SandboxRunOutcome outcome = run.ok() ? *std::move(run) : FailedRun(run.status());
    std::optional<CodeTestResult> decided = ClassifyRun(outcome, task.limits, false);
    CodeTestResult test;
    if (decided.has_value()) {
      test = *std::move(decided);
    } else if (OutputMatches(mode, outcome.stdout_text, task.tests[i].expected_stdout)) {
      test = Result(CodeVerdict::kAccepted, outcome, "");
    } else {
      test = Result(CodeVerdict::kWrongAnswer, outcome,
                    absl::StrCat("expected \"", absl::CEscape(Clip(task.tests[i].expected_stdout, 80)),
                                 "\", got \"", absl::CEscape(Clip(outcome.stdout_text, 80)), "\""));
    }
    if (test.verdict == CodeVerdict::kAccepted) {
      ++passed;
    } else if (result.verdict == CodeVerdict::kAccepted) {
      result.verdict = test.verdict;
      result.detail = absl::StrCat("test ", i + 1, ": ", CodeVerdictName(test.verdict),
                                   test.detail.empty() ? "" : ": ", test.detail);
    }
    const bool stop = test.verdict != CodeVerdict::kAccepted && task.stop_at_first_failure;
    result.tests.push_back(std::move(test));
    if (stop) break;
  }
  result.score = static_cast<double>(passed) / static_cast<double>(task.tests.size());
  if (result.verdict == CodeVerdict::kAccepted) {
    result.detail = absl::StrCat("all ", task.tests.size(), " tests passed");
  }
  return result;
}

std::vector<std::string> PythonArgv(const CodeJudgeOptions& options) {
  // -B: no .pyc files; -s: no user site directory.
  return {options.python_path, "-B", "-s", kProgramPy};
}

std::vector<std::pair<std::string, std::string>> PythonEnv() {
  return {{"PYTHONHASHSEED", "0"}, {"PYTHONIOENCODING", "utf-8"}};
}

absl::StatusOr<std::string> ReadFile(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (data.size() > max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(path, " is larger than ", max_bytes, " bytes"));
  }
  return data;
}

std::string ExecutableDir() {
  char buffer[4096];
  const ssize_t n = readlink("/proc/self/exe", buffer, sizeof(buffer) - 1);
  if (n <= 0) return ".";
  std::string path(buffer, static_cast<size_t>(n));
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

}  // namespace

const char* CodeVerdictName(CodeVerdict v) {
  switch (v) {
    case CodeVerdict::kAccepted: return "accepted";
    case CodeVerdict::kWrongAnswer: return "wrong_answer";
    case CodeVerdict::kTimeLimit: return "time_limit";
    case CodeVerdict::kMemoryLimit: return "memory_limit";
    case CodeVerdict::kOutputLimit: return "output_limit";
    case CodeVerdict::kRuntimeError: return "runtime_error";
    case CodeVerdict::kCompileError: return "compile_error";
    case CodeVerdict::kSandboxError: return "sandbox_error";
  }
  return "unknown";
}

SandboxLimits DefaultCompileLimits() {
  SandboxLimits limits;
  limits.time_limit_s = 10;
  limits.memory_limit_mb = 512;
  limits.output_limit_bytes = 256 << 10;
  limits.max_processes = 16;
  limits.file_size_limit_bytes = 64 << 20;
  limits.scratch_limit_bytes = 256 << 20;
  return limits;
}

CodeJudge::CodeJudge(CodeJudgeOptions options, std::unique_ptr<Sandbox> sandbox)
    : options_(std::move(options)), sandbox_(std::move(sandbox)) {}

CodeJudge::~CodeJudge() = default;

absl::StatusOr<std::unique_ptr<CodeJudge>> CodeJudge::Create(const CodeJudgeOptions& options) {
  CodeJudgeOptions resolved = options;
  if (resolved.warm_sandboxes < 0 || resolved.warm_sandboxes > 64) {
    return absl::InvalidArgumentError(absl::StrCat(
        "warm_sandboxes: must be in [0, 64], got ", resolved.warm_sandboxes));
  }
  if (access(resolved.bwrap_path.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("bwrap not found at '", resolved.bwrap_path,
                     "': install bubblewrap (apt-get install bubblewrap) or set "
                     "CodeJudgeOptions::bwrap_path"));
  }
  if (resolved.launcher_path.empty()) {
    const char* env = getenv("RLPOST_SANDBOX_EXEC");
    resolved.launcher_path = (env != nullptr && *env != '\0')
                                 ? std::string(env)
                                 : ExecutableDir() + "/rlpost-sandbox-exec";
  }
  absl::StatusOr<std::string> launcher = ReadFile(resolved.launcher_path, 64 << 20);
  if (!launcher.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sandbox launcher rlpost-sandbox-exec not found at '", resolved.launcher_path,
        "': build the rlpost-sandbox-exec target next to this binary, or set "
        "RLPOST_SANDBOX_EXEC / CodeJudgeOptions::launcher_path"));
  }
  if (resolved.work_root.empty()) {
    const char* tmp = getenv("TMPDIR");
    resolved.work_root = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
  }
  absl::StatusOr<std::string> filter = BuildSandboxSeccompFilter();
  if (!filter.ok()) return filter.status();

  // Probe: `true` in a sandbox, first as the unprivileged host id when we are
  // root, then (if that fails, e.g. unprivileged user namespaces are off) as
  // ourselves.
  std::string probe_error;
  for (int64_t host_id : {resolved.unprivileged_host_id, int64_t{-1}}) {
    if (host_id >= 0 && geteuid() != 0) continue;
    SandboxConfig config;
    config.bwrap_path = resolved.bwrap_path;
    config.launcher_binary = *launcher;
    config.seccomp_filter = *filter;
    config.host_id = host_id;
    config.warm_sandboxes = resolved.warm_sandboxes;
    auto sandbox = std::make_unique<Sandbox>(std::move(config));
    // The probe also binds a work directory the way C++ compiles do, which
    // checks that the sandbox's host uid can reach work_root.
    std::string dir = absl::StrCat(resolved.work_root, "/rlpost-code-probe-XXXXXX");
    if (mkdtemp(dir.data()) == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot create a directory under work_root '", resolved.work_root, "': ",
          strerror(errno), "; set CodeJudgeOptions::work_root or TMPDIR"));
    }
    if (host_id >= 0) {
      (void)!chown(dir.c_str(), static_cast<uid_t>(host_id), static_cast<gid_t>(host_id));
    }
    SandboxRunSpec probe;
    probe.argv = {"/usr/bin/true"};
    probe.writable_host_dir = dir;
    probe.limits.time_limit_s = 5;
    probe.limits.wall_limit_s = 30;
    absl::StatusOr<SandboxRunOutcome> run = sandbox->Run(probe);
    RemoveTree(dir);
    if (run.ok() && run->started && run->exit_code == 0) {
      resolved.unprivileged_host_id = host_id;
      return std::unique_ptr<CodeJudge>(new CodeJudge(std::move(resolved), std::move(sandbox)));
    }
    absl::StrAppend(&probe_error, probe_error.empty() ? "" : "; ",
                    host_id >= 0 ? absl::StrCat("as host uid ", host_id, ": ") : "as this user: ",
                    !run.ok() ? std::string(run.status().message())
                    : !run->started ? run->setup_error
                                    : absl::StrCat("`true` exited with ", run->exit_code, ": ",
                                                   Clip(run->stderr_text, 300)));
    if (host_id < 0) break;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "bubblewrap cannot start a sandbox here (", probe_error,
      "). It needs user namespaces and a work_root the sandbox's host uid can enter: enable unprivileged user namespaces (sysctl "
      "user.max_user_namespaces > 0; on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0) "
      "and a seccomp profile that allows clone(CLONE_NEWUSER)/unshare; see "
      "docs/verifier_code.md"));
}

absl::StatusOr<CodeResult> CodeJudge::Judge(const CodeTask& task) const {
  if (task.language != "python" && task.language != "cpp") {
    return absl::InvalidArgumentError(absl::StrCat(
        "language: unknown language '", task.language, "'; use \"python\" or \"cpp\""));
  }
  absl::StatusOr<CompareMode> mode = ParseCompareMode(task.compare);
  if (!mode.ok()) return mode.status();
  if (task.tests.empty() == task.test_code.empty()) {
    return absl::InvalidArgumentError(
        "tests/test_code: set exactly one of them (stdin/stdout cases, or a test program)");
  }
  if (!task.test_code.empty() && task.language != "python") {
    return absl::InvalidArgumentError("test_code: only supported for language \"python\"");
  }
  if (!task.entry_point.empty() && !IsPythonIdentifier(task.entry_point)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "entry_point: '", Clip(task.entry_point, 60), "' is not a Python identifier"));
  }
  if (task.code.size() > kMaxCodeBytes) {
    return absl::InvalidArgumentError(absl::StrCat("code: longer than ", kMaxCodeBytes, " bytes"));
  }
  if (absl::Status s = ValidateLimits(task.limits, "limits"); !s.ok()) return s;
  if (task.language == "cpp") {
    if (absl::Status s = ValidateLimits(task.compile_limits, "compile_limits"); !s.ok()) return s;
    return JudgeCpp(task);
  }
  return JudgePython(task);
}

absl::StatusOr<CodeResult> CodeJudge::JudgePython(const CodeTask& task) const {
  if (access(options_.python_path.c_str(), X_OK) != 0) {
    CodeResult result;
    result.verdict = CodeVerdict::kSandboxError;
    result.detail = absl::StrCat("python not found at '", options_.python_path, "'");
    return result;
  }
  if (!task.tests.empty()) {
    absl::StatusOr<CompareMode> mode = ParseCompareMode(task.compare);
    return RunStdioTests(*sandbox_, task, *mode, PythonArgv(options_),
                         {SandboxFile{kProgramPy, task.code, false}}, PythonEnv());
  }
  // The test-program form (HumanEval): one run; it passes only when it exits
  // 0 *and* printed the nonce after the checks, so that an early exit(0) in
  // the candidate code does not count as a pass.
  const std::string nonce = RandomNonce();
  std::string program = absl::StrCat(task.code, "\n\n", task.test_code, "\n\n");
  if (!task.entry_point.empty()) absl::StrAppend(&program, "check(", task.entry_point, ")\n");
  absl::StrAppend(&program, "import sys as _rlpost_sys\n_rlpost_sys.stdout.write(\"\\n", nonce,
                  "\\n\")\n_rlpost_sys.stdout.flush()\n");
  SandboxRunSpec spec;
  spec.argv = PythonArgv(options_);
  spec.env = PythonEnv();
  spec.files = {SandboxFile{kProgramPy, std::move(program), false}};
  spec.limits = task.limits;
  absl::StatusOr<SandboxRunOutcome> run = sandbox_->Run(spec);
  const SandboxRunOutcome outcome = run.ok() ? *std::move(run) : FailedRun(run.status());
  std::optional<CodeTestResult> decided = ClassifyRun(outcome, task.limits, true);
  CodeTestResult test;
  if (decided.has_value()) {
    test = *std::move(decided);
  } else if (LastNonEmptyLine(outcome.stdout_text) == nonce) {
    test = Result(CodeVerdict::kAccepted, outcome, "");
  } else {
    test = Result(CodeVerdict::kWrongAnswer, outcome,
                  "the program exited before the tests finished");
  }
  CodeResult result;
  result.verdict = test.verdict;
  result.score = test.verdict == CodeVerdict::kAccepted ? 1.0 : 0.0;
  result.detail = test.verdict == CodeVerdict::kAccepted
                      ? "tests passed"
                      : absl::StrCat(CodeVerdictName(test.verdict), ": ", test.detail);
  result.tests.push_back(std::move(test));
  return result;
}

absl::StatusOr<CodeResult> CodeJudge::JudgeCpp(const CodeTask& task) const {
  CodeResult result;
  result.verdict = CodeVerdict::kSandboxError;
  if (access(options_.cxx_path.c_str(), X_OK) != 0) {
    result.detail = absl::StrCat("C++ compiler not found at '", options_.cxx_path, "'");
    return result;
  }
  // A host directory for the compiler's output only; the run itself gets a
  // tmpfs /work with the binary copied in.
  std::string dir = absl::StrCat(options_.work_root, "/rlpost-code-XXXXXX");
  if (mkdtemp(dir.data()) == nullptr) {
    result.detail = absl::StrCat("cannot create a work directory under '", options_.work_root,
                                 "': ", strerror(errno));
    return result;
  }
  struct DirCleanup {
    std::string path;
    ~DirCleanup() { RemoveTree(path); }
  } cleanup{dir};
  const bool dropped = options_.unprivileged_host_id >= 0 && geteuid() == 0;
  if (dropped) {
    const auto id = static_cast<uid_t>(options_.unprivileged_host_id);
    if (chown(dir.c_str(), id, id) != 0) {
      result.detail = absl::StrCat("chown of the work directory failed: ", strerror(errno));
      return result;
    }
  }
  chmod(dir.c_str(), 0700);

  SandboxRunSpec compile;
  compile.argv = {options_.cxx_path, "-O2", "-std=c++17", "-pipe", "-o", kBinary, kSourceCc};
  compile.files = {SandboxFile{kSourceCc, task.code, false}};
  compile.writable_host_dir = dir;
  compile.limits = task.compile_limits;
  absl::StatusOr<SandboxRunOutcome> run = sandbox_->Run(compile);
  const SandboxRunOutcome outcome = run.ok() ? *std::move(run) : FailedRun(run.status());
  if (!outcome.started) {
    result.detail = absl::StrCat("compile: ", outcome.setup_error);
    return result;
  }
  absl::StatusOr<std::string> binary = ReadFile(dir + "/prog", kMaxBinaryBytes);
  if (outcome.exit_code != 0 || outcome.wall_timeout || outcome.output_limit_exceeded ||
      !binary.ok()) {
    std::optional<CodeTestResult> why = ClassifyRun(outcome, task.compile_limits, false);
    result.verdict = CodeVerdict::kCompileError;
    result.detail = Head(outcome.stderr_text, 20, 2000);
    if (why.has_value() && why->verdict != CodeVerdict::kRuntimeError) {
      result.detail = absl::StrCat("compiler: ", CodeVerdictName(why->verdict), ": ", why->detail,
                                   result.detail.empty() ? "" : "\n", result.detail);
    } else if (result.detail.empty()) {
      result.detail = absl::StrCat("compiler exited with status ", outcome.exit_code);
    }
    return result;
  }
  RemoveTree(dir);
  return RunStdioTests(*sandbox_, task, *ParseCompareMode(task.compare), {kBinary},
                       {SandboxFile{kBinary, *std::move(binary), true}}, {});
}

}  // namespace rlpost::code
