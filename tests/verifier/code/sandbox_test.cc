// Sandbox (the supervisor) and its seccomp policy, below the judge: exact
// exit statuses, stdin/stdout/stderr plumbing, CPU accounting, rlimits,
// scratch sizes, and setup failures reported as such.
#include "verifier/code/sandbox.h"

#include <signal.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/verifier/code/judge_fixture.h"
#include "verifier/code/seccomp_policy.h"

namespace rlpost::code {
namespace {

using ::testing::HasSubstr;

TEST(SeccompPolicyTest, BuildsANonEmptyClassicBpfProgram) {
  absl::StatusOr<std::string> filter = BuildSandboxSeccompFilter();
  ASSERT_TRUE(filter.ok()) << filter.status();
  EXPECT_GT(filter->size(), 8u * 20);  // struct sock_filter is 8 bytes
  EXPECT_EQ(filter->size() % 8, 0u);
}

class SandboxTest : public JudgeFixture {
 protected:
  void SetUp() override {
    JudgeFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    SandboxConfig config;
    config.bwrap_path = judge().options().bwrap_path;
    std::ifstream in(judge().options().launcher_path, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    config.launcher_binary = bytes.str();
    config.seccomp_filter = *BuildSandboxSeccompFilter();
    config.host_id = judge().options().unprivileged_host_id;
    sandbox_ = std::make_unique<Sandbox>(config);
    config.launcher_binary = "#!/nonexistent/interpreter\n";
    broken_ = std::make_unique<Sandbox>(config);
  }

  SandboxRunOutcome Sh(const std::string& script, SandboxLimits limits = {},
                       const std::string& stdin_text = "") {
    SandboxRunSpec spec;
    spec.argv = {"/bin/sh", "-c", script};
    spec.limits = limits;
    spec.stdin_text = stdin_text;
    absl::StatusOr<SandboxRunOutcome> run = sandbox_->Run(spec);
    EXPECT_TRUE(run.ok()) << run.status();
    if (!run.ok()) return {};
    EXPECT_TRUE(run->started) << run->setup_error;
    return *std::move(run);
  }

  std::unique_ptr<Sandbox> sandbox_;
  std::unique_ptr<Sandbox> broken_;
};

TEST_F(SandboxTest, ReportsExactExitStatusAndSignal) {
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

TEST_F(SandboxTest, SeparatesStdoutAndStderrAndFeedsStdin) {
  const std::string input(1 << 20, 'a');
  SandboxRunOutcome r = Sh("wc -c; echo oops >&2", {}, input);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.stdout_text, "1048576\n");
  EXPECT_EQ(r.stderr_text, "oops\n");
}

TEST_F(SandboxTest, ReportsCpuTimeOfTheProgram) {
  SandboxRunOutcome r = Sh("i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_GT(r.cpu_s, 0.01);
}

TEST_F(SandboxTest, CpuLimitSendsSigxcpu) {
  SandboxLimits limits;
  limits.time_limit_s = 1;
  limits.wall_limit_s = 10;
  SandboxRunOutcome r = Sh("while :; do :; done", limits);
  EXPECT_EQ(r.signal, SIGXCPU);
  EXPECT_GE(r.cpu_s, 0.9);
  EXPECT_FALSE(r.wall_timeout);
}

TEST_F(SandboxTest, FileSizeLimitStopsLargeWrites) {
  SandboxLimits limits;
  limits.file_size_limit_bytes = 1 << 20;
  SandboxRunOutcome r = Sh("head -c 3000000 /dev/zero > /tmp/big", limits);
  EXPECT_NE(r.exit_code, 0);
}

TEST_F(SandboxTest, ScratchFileSystemsAreSizeCapped) {
  SandboxLimits limits;
  limits.scratch_limit_bytes = 1 << 20;
  SandboxRunOutcome r = Sh("head -c 2000000 /dev/zero > /work/big && echo fits", limits);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.stderr_text, HasSubstr("No space left"));
}

TEST_F(SandboxTest, OpenFileLimitApplies) {
  SandboxRunOutcome r = Sh("ulimit -n");
  EXPECT_EQ(r.stdout_text, "64\n");
}

TEST_F(SandboxTest, EnvironmentIsClearedAndFilesAreReadOnly) {
  SandboxRunSpec spec;
  spec.argv = {"/bin/sh", "-c",
               "echo \"$PATH|$HOME|$MY_VAR|$USER\"; cat /work/in.txt; "
               "echo x > /work/in.txt 2>/dev/null || echo readonly; echo y > /work/new && echo "
               "writable"};
  spec.env = {{"MY_VAR", "set"}};
  spec.files = {SandboxFile{"/work/in.txt", "hello\n", false}};
  absl::StatusOr<SandboxRunOutcome> r = sandbox_->Run(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stdout_text, "/usr/bin:/bin|/work|set|\nhello\nreadonly\nwritable\n");
}

TEST_F(SandboxTest, MissingProgramIsASetupFailureNotTheProgramsFault) {
  SandboxRunSpec spec;
  spec.argv = {"/nonexistent/program"};
  absl::StatusOr<SandboxRunOutcome> r = sandbox_->Run(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->started);
  EXPECT_THAT(r->setup_error, HasSubstr("/nonexistent/program"));
}

TEST_F(SandboxTest, BrokenLauncherIsASetupFailure) {
  SandboxRunSpec spec;
  spec.argv = {"/usr/bin/true"};
  absl::StatusOr<SandboxRunOutcome> r = broken_->Run(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->started);
  EXPECT_FALSE(r->setup_error.empty());
}

TEST_F(SandboxTest, ProgramCannotFakeASetupFailure) {
  // Writes what looks like a launcher error everywhere it can.
  SandboxRunOutcome r = Sh("for fd in 3 4 5 6 7; do echo Ebogus >&$fd; done 2>/dev/null; exit 1");
  EXPECT_TRUE(r.started);
  EXPECT_EQ(r.exit_code, 1);
}

}  // namespace
}  // namespace rlpost::code
