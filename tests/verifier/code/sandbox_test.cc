// Sandbox (the supervisor) and its seccomp policy, below the judge: exact
// exit statuses, stdin/stdout/stderr plumbing, CPU accounting, rlimits,
// scratch sizes, and setup failures reported as such. Each behaviour is
// checked on a cold sandbox and on a warm one (started before the program
// was known); the warm sandboxes' own lifecycle is tested at the end.
#include "verifier/code/sandbox.h"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_test_util.h"
#include "tests/verifier/code/judge_fixture.h"
#include "verifier/code/seccomp_policy.h"

namespace rlpost::code {
namespace {

using ::testing::HasSubstr;
using ::rlpost::testing::ProcessesMentioning;

int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

// Waits (no timeout: the test's own limit applies) until `pidfd`'s process
// has exited.
void AwaitExit(int pidfd) {
  pollfd pfd = {pidfd, POLLIN, 0};
  while (poll(&pfd, 1, -1) < 0) {
  }
}

bool HasExited(int pidfd) {
  pollfd pfd = {pidfd, POLLIN, 0};
  return poll(&pfd, 1, 0) == 1;
}

// Children of `pid`, from /proc/*/stat.
std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::vector<pid_t> children;
  if (DIR* proc = opendir("/proc")) {
    while (dirent* e = readdir(proc)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      std::ifstream in(absl::StrCat("/proc/", e->d_name, "/stat"));
      std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const size_t paren = stat.rfind(')');
      if (paren == std::string::npos) continue;
      std::istringstream fields(stat.substr(paren + 2));
      std::string state;
      pid_t ppid = 0;
      fields >> state >> ppid;
      if (ppid == pid) children.push_back(static_cast<pid_t>(std::stoi(e->d_name)));
    }
    closedir(proc);
  }
  return children;
}

int OpenDescriptors() {
  int count = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(dir)) count += e->d_name[0] != '.';
    closedir(dir);
  }
  return count - 1;  // opendir's own
}

TEST(SeccompPolicyTest, BuildsANonEmptyClassicBpfProgram) {
  absl::StatusOr<std::string> filter = BuildSandboxSeccompFilter();
  ASSERT_TRUE(filter.ok()) << filter.status();
  EXPECT_GT(filter->size(), 8u * 20);  // struct sock_filter is 8 bytes
  EXPECT_EQ(filter->size() % 8, 0u);
}

// Parameter: the number of warm sandboxes (0: every run starts cold).
class SandboxTest : public JudgeFixture, public ::testing::WithParamInterface<int> {
 protected:
  // The judge is only asked for its resolved options: no warm sandboxes of
  // its own, so that the process and descriptor counts below are ours.
  static void SetUpTestSuite() {
    CodeJudgeOptions options;
    options.warm_sandboxes = 0;
    CreateJudge(options);
  }

  void SetUp() override {
    JudgeFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    sandbox_ = std::make_unique<Sandbox>(Config(GetParam()));
    SandboxConfig broken = Config(GetParam());
    broken.launcher_binary = "#!/nonexistent/interpreter\n";
    broken_ = std::make_unique<Sandbox>(broken);
  }

  static SandboxConfig Config(int warm_sandboxes) {
    SandboxConfig config;
    config.bwrap_path = judge().options().bwrap_path;
    std::ifstream in(judge().options().launcher_path, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    config.launcher_binary = bytes.str();
    config.seccomp_filter = *BuildSandboxSeccompFilter();
    config.host_id = judge().options().unprivileged_host_id;
    config.warm_sandboxes = warm_sandboxes;
    return config;
  }

  // Runs `spec` once the warm sandboxes are started, so that a poolable
  // spec deterministically gets one.
  bool last_had_idle_ = false;  // RunSpec found a warm sandbox ready

  SandboxRunOutcome RunSpec(const SandboxRunSpec& spec, const Sandbox* sandbox = nullptr) {
    if (sandbox == nullptr) sandbox = sandbox_.get();
    const bool idle = !sandbox->IdleWarmSandboxesForTest().empty();
    absl::StatusOr<SandboxRunOutcome> run = sandbox->Run(spec);
    EXPECT_TRUE(run.ok()) << run.status();
    if (!run.ok()) return {};
    const bool poolable_limits =
        spec.limits.scratch_limit_bytes == SandboxLimits().scratch_limit_bytes;
    // A warm start can fail on a badly overloaded machine (the run then
    // starts cold, as it should); with one idle, a poolable run must use it.
    if (sandbox == sandbox_.get() && idle) {
      EXPECT_EQ(run->warm, GetParam() > 0 && poolable_limits);
    }
    if (GetParam() == 0 || !poolable_limits) EXPECT_FALSE(run->warm);
    last_had_idle_ = idle;
    return *std::move(run);
  }

  SandboxRunOutcome Sh(const std::string& script, SandboxLimits limits = {},
                       const std::string& stdin_text = "") {
    SandboxRunSpec spec;
    spec.argv = {"/bin/sh", "-c", script};
    spec.limits = limits;
    spec.stdin_text = stdin_text;
    SandboxRunOutcome run = RunSpec(spec);
    EXPECT_TRUE(run.started) << run.setup_error;
    return run;
  }

  std::unique_ptr<Sandbox> sandbox_;
  std::unique_ptr<Sandbox> broken_;
};

INSTANTIATE_TEST_SUITE_P(ColdAndWarm, SandboxTest, ::testing::Values(0, 2),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param == 0 ? "Cold" : "Warm";
                         });

TEST_P(SandboxTest, ReportsExactExitStatusAndSignal) {
  SandboxRunOutcome r = Sh("exit 3");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.signal, 0);
  r = Sh("kill -SEGV $$");
  EXPECT_EQ(r.signal, SIGSEGV);
  // A plain exit status above 128 is not mistaken for a signal.
  r = Sh("exit 137");
  EXPECT_EQ(r.exit_code, 137);
  EXPECT_EQ(r.signal, 0);
}

TEST_P(SandboxTest, SeparatesStdoutAndStderrAndFeedsStdin) {
  const std::string input(1 << 20, 'a');
  SandboxRunOutcome r = Sh("wc -c; echo oops >&2", {}, input);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.stdout_text, "1048576\n");
  EXPECT_EQ(r.stderr_text, "oops\n");
}

TEST_P(SandboxTest, ReportsCpuTimeOfTheProgram) {
  SandboxRunOutcome r = Sh("i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_GT(r.cpu_s, 0.01);
}

TEST_P(SandboxTest, CpuLimitSendsSigxcpu) {
  SandboxLimits limits;
  limits.time_limit_s = 1;
  limits.wall_limit_s = 10;
  SandboxRunOutcome r = Sh("while :; do :; done", limits);
  EXPECT_EQ(r.signal, SIGXCPU);
  // The kernel checks RLIMIT_CPU on its own accounting while cpu_s is the
  // rusage the launcher reads; on a loaded VM (steal time) the two drift
  // apart by tenths, so only check that CPU time was measured.
  EXPECT_GT(r.cpu_s, 0.1);
  EXPECT_FALSE(r.wall_timeout);
}

TEST_P(SandboxTest, FileSizeLimitStopsLargeWrites) {
  SandboxLimits limits;
  limits.file_size_limit_bytes = 1 << 20;
  SandboxRunOutcome r = Sh("head -c 3000000 /dev/zero > /tmp/big", limits);
  EXPECT_NE(r.exit_code, 0);
}

TEST_P(SandboxTest, ScratchFileSystemsAreSizeCapped) {
  SandboxLimits limits;
  limits.scratch_limit_bytes = 1 << 20;
  SandboxRunOutcome r = Sh("head -c 2000000 /dev/zero > /work/big && echo fits", limits);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.stderr_text, HasSubstr("No space left"));
}

TEST_P(SandboxTest, OpenFileLimitApplies) {
  SandboxRunOutcome r = Sh("ulimit -n");
  EXPECT_EQ(r.stdout_text, "64\n");
}

TEST_P(SandboxTest, EnvironmentIsClearedAndFilesAreReadOnly) {
  SandboxRunSpec spec;
  spec.argv = {"/bin/sh", "-c",
               "echo \"$PATH|$HOME|$MY_VAR|$USER\"; cat /work/in.txt; "
               "echo x > /work/in.txt 2>/dev/null || echo readonly; echo y > /work/new && echo "
               "writable"};
  spec.env = {{"MY_VAR", "set"}};
  spec.files = {SandboxFile{"/work/in.txt", "hello\n", false}};
  SandboxRunOutcome r = RunSpec(spec);
  EXPECT_EQ(r.stdout_text, "/usr/bin:/bin|/work|set|\nhello\nreadonly\nwritable\n");
}

TEST_P(SandboxTest, FilesKeepTheirModesAndExecutablesRun) {
  SandboxRunSpec spec;
  spec.argv = {"/work/run.sh", "arg"};
  spec.files = {SandboxFile{"/work/run.sh", "#!/bin/sh\nstat -c '%a %s' /work/run.sh /work/data"
                                            "\necho \"$1\"; cat /work/data\n",
                            true},
                SandboxFile{"/work/data", std::string(100000, 'd'), false}};
  SandboxRunOutcome r = RunSpec(spec);
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, absl::StrCat("555 ", spec.files[0].contents.size(),
                                        "\n444 100000\narg\n", spec.files[1].contents));
}

TEST_P(SandboxTest, MissingProgramIsASetupFailureNotTheProgramsFault) {
  SandboxRunSpec spec;
  spec.argv = {"/nonexistent/program"};
  SandboxRunOutcome r = RunSpec(spec);
  EXPECT_FALSE(r.started);
  EXPECT_THAT(r.setup_error, HasSubstr("/nonexistent/program"));
}

TEST_P(SandboxTest, BrokenLauncherIsASetupFailure) {
  SandboxRunSpec spec;
  spec.argv = {"/usr/bin/true"};
  // Warm sandboxes with this launcher die before taking a job; the run
  // falls back to a cold one, which reports the failure.
  SandboxRunOutcome r = RunSpec(spec, broken_.get());
  EXPECT_FALSE(r.started);
  EXPECT_FALSE(r.setup_error.empty());
}

TEST_P(SandboxTest, ProgramCannotFakeASetupFailure) {
  // Writes what looks like a launcher error everywhere it can.
  SandboxRunOutcome r = Sh("for fd in 3 4 5 6 7; do echo Ebogus >&$fd; done 2>/dev/null; exit 1");
  EXPECT_TRUE(r.started);
  EXPECT_EQ(r.exit_code, 1);
}

// The warm sandboxes themselves.
class WarmSandboxTest : public SandboxTest {};

INSTANTIATE_TEST_SUITE_P(Warm, WarmSandboxTest, ::testing::Values(2));

TEST_P(WarmSandboxTest, WarmRunsMatchColdRuns) {
  Sandbox cold(Config(0));
  std::vector<SandboxRunSpec> specs;
  for (const char* script :
       {"exit 3", "kill -SEGV $$", "wc -c; echo err >&2; exit 1", "echo \"$A|$B\"; cat /work/f",
        "cat /work/f > /work/g; ls -l /work | cut -c1-10", "yes | head -c 100000"}) {
    SandboxRunSpec spec;
    spec.argv = {"/bin/sh", "-c", script};
    spec.stdin_text = "some input\n";
    spec.env = {{"A", "1"}, {"B", "two words"}};
    spec.files = {SandboxFile{"/work/f", "file\n", false}};
    spec.limits.output_limit_bytes = 50000;
    specs.push_back(spec);
  }
  for (const SandboxRunSpec& spec : specs) {
    SCOPED_TRACE(spec.argv[2]);
    const SandboxRunOutcome warm = RunSpec(spec);
    const bool had_idle = last_had_idle_;
    const SandboxRunOutcome want = RunSpec(spec, &cold);
    if (had_idle) EXPECT_TRUE(warm.warm);
    EXPECT_FALSE(want.warm);
    EXPECT_EQ(warm.started, want.started);
    EXPECT_EQ(warm.setup_error, want.setup_error);
    EXPECT_EQ(warm.wall_timeout, want.wall_timeout);
    EXPECT_EQ(warm.output_limit_exceeded, want.output_limit_exceeded);
    // Past the output cap the run is killed, and whether the program had
    // finished by then is a race in either kind of sandbox.
    if (!want.output_limit_exceeded) {
      EXPECT_EQ(warm.exit_code, want.exit_code);
      EXPECT_EQ(warm.signal, want.signal);
      EXPECT_EQ(warm.stdout_text, want.stdout_text);
      EXPECT_EQ(warm.stderr_text, want.stderr_text);
    }
  }
}

// Killed from outside while idle (the launcher inside, or bwrap itself): the
// dead ones are discarded, the run starts a sandbox of its own, and the
// pool is refilled.
TEST_P(WarmSandboxTest, IdleWarmSandboxKilledFromOutsideIsNotUsed) {
  const std::vector<pid_t> idle = sandbox_->IdleWarmSandboxesForTest();
  ASSERT_EQ(idle.size(), 2u);
  std::vector<int> pidfds;
  for (pid_t bwrap : idle) pidfds.push_back(PidfdOpen(bwrap));
  // bwrap -> its init -> the launcher.
  const std::vector<pid_t> init = ChildrenOf(idle[0]);
  ASSERT_EQ(init.size(), 1u);
  const std::vector<pid_t> launcher = ChildrenOf(init[0]);
  ASSERT_EQ(launcher.size(), 1u);
  ASSERT_EQ(kill(launcher[0], SIGKILL), 0);
  ASSERT_EQ(kill(idle[1], SIGKILL), 0);
  for (int pidfd : pidfds) {
    AwaitExit(pidfd);
    close(pidfd);
  }

  SandboxRunSpec spec;
  spec.argv = {"/bin/sh", "-c", "cat; echo done"};
  spec.stdin_text = "in\n";
  absl::StatusOr<SandboxRunOutcome> r = sandbox_->Run(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->started) << r->setup_error;
  EXPECT_FALSE(r->warm);
  EXPECT_EQ(r->stdout_text, "in\ndone\n");
  // The pool starts over.
  EXPECT_EQ(Sh("echo again").stdout_text, "again\n");
}

TEST_P(WarmSandboxTest, ConcurrentRunsLeakNoDescriptors) {
  sandbox_->IdleWarmSandboxesForTest();
  broken_->IdleWarmSandboxesForTest();
  const int before = OpenDescriptors();
  {
    Sandbox sandbox(Config(2));
    sandbox.IdleWarmSandboxesForTest();
    const int warm = OpenDescriptors();
    std::vector<std::thread> threads;
    std::vector<int> good(8, 0);
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&sandbox, &good, t] {
        for (int i = 0; i < 4; ++i) {
          SandboxRunSpec spec;
          spec.argv = {"/bin/sh", "-c", absl::StrCat("cat /work/x; ls /proc/self/fd | wc -l")};
          spec.files = {SandboxFile{"/work/x", absl::StrCat(t, ":", i, "\n"), false}};
          absl::StatusOr<SandboxRunOutcome> r = sandbox.Run(spec);
          // 0, 1, 2 and ls's directory: nothing of the judge or the launcher.
          if (r.ok() && r->stdout_text == absl::StrCat(t, ":", i, "\n4\n")) ++good[t];
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    EXPECT_EQ(good, std::vector<int>(8, 4));
    sandbox.IdleWarmSandboxesForTest();
    EXPECT_EQ(OpenDescriptors(), warm);
  }
  EXPECT_EQ(OpenDescriptors(), before);
}

TEST_P(WarmSandboxTest, DestructionLeavesNoProcesses) {
  // A bwrap path of its own marks this sandbox's processes.
  const std::string dir = rlpost::testing::MakeTempDir("rlpost-warm-test");
  ASSERT_FALSE(dir.empty());
  ASSERT_EQ(chmod(dir.c_str(), 0755), 0);
  const std::string bwrap = dir + "/bwrap";
  ASSERT_EQ(symlink(judge().options().bwrap_path.c_str(), bwrap.c_str()), 0);
  SandboxConfig config = Config(2);
  config.bwrap_path = bwrap;
  auto sandbox = std::make_unique<Sandbox>(config);
  ASSERT_EQ(sandbox->IdleWarmSandboxesForTest().size(), 2u);
  // One run, so that the pool is refilling and the finished run may still
  // be being torn down when the destructor runs.
  SandboxRunSpec spec;
  spec.argv = {"/bin/sh", "-c", "sleep 600 & echo started"};
  absl::StatusOr<SandboxRunOutcome> r = sandbox->Run(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stdout_text, "started\n");
  std::vector<int> pidfds;
  std::vector<pid_t> pending = ProcessesMentioning(bwrap);
  EXPECT_FALSE(pending.empty());
  while (!pending.empty()) {
    const pid_t pid = pending.back();
    pending.pop_back();
    const int pidfd = PidfdOpen(pid);
    if (pidfd >= 0) pidfds.push_back(pidfd);
    for (pid_t child : ChildrenOf(pid)) pending.push_back(child);
  }
  sandbox.reset();
  for (int pidfd : pidfds) {
    EXPECT_TRUE(HasExited(pidfd));
    close(pidfd);
  }
  EXPECT_THAT(ProcessesMentioning(bwrap), ::testing::IsEmpty());
  unlink(bwrap.c_str());
  rmdir(dir.c_str());
}

}  // namespace
}  // namespace rlpost::code
