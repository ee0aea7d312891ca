// Adversarial programs: each must be contained with the right verdict and no
// effect on the host. Where a program probes the sandbox it prints what it
// observed and the test's expected stdout is the contained outcome, so a
// wrong_answer verdict (with the output in its detail) means an escape.
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/verifier/code/judge_fixture.h"
#include "verifier/code/code_judge.h"

namespace rlpost::code {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::Not;

CodeTask Program(const std::string& language, std::string code, std::string expected = "") {
  CodeTask task;
  task.language = language;
  task.code = std::move(code);
  task.tests = {{"", std::move(expected)}};
  task.limits.time_limit_s = 1;
  task.limits.wall_limit_s = 2;
  return task;
}

// A host directory for one test, removed afterwards.
class HostTempDir {
 public:
  HostTempDir() {
    std::string pattern = "/tmp/rlpost-code-test-XXXXXX";
    path_ = mkdtemp(pattern.data()) != nullptr ? pattern : "";
    EXPECT_FALSE(path_.empty());
  }
  ~HostTempDir() {
    for (const std::string& name : List()) unlink((path_ + "/" + name).c_str());
    rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }
  void Write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ + "/" + name) << text;
  }
  std::string Read(const std::string& name) const {
    std::ifstream in(path_ + "/" + name);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::set<std::string> List() const {
    std::set<std::string> names;
    if (DIR* dir = opendir(path_.c_str())) {
      while (dirent* e = readdir(dir)) {
        if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") {
          names.insert(e->d_name);
        }
      }
      closedir(dir);
    }
    return names;
  }

 private:
  std::string path_;
};

// Host processes whose command name is `comm`.
int CountProcessesNamed(const std::string& comm) {
  int count = 0;
  if (DIR* proc = opendir("/proc")) {
    while (dirent* e = readdir(proc)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      std::ifstream in(absl::StrCat("/proc/", e->d_name, "/comm"));
      std::string name;
      if (std::getline(in, name) && name == comm) ++count;
    }
    closedir(proc);
  }
  return count;
}

class SandboxContainmentTest : public JudgeFixture {};

TEST_F(SandboxContainmentTest, PythonInfiniteLoopIsTimeLimit) {
  CodeResult r = MustJudge(Program("python", "while True:\n    pass\n"));
  EXPECT_EQ(r.verdict, CodeVerdict::kTimeLimit) << r.detail;
  EXPECT_THAT(r.detail, HasSubstr("CPU"));
}

TEST_F(SandboxContainmentTest, CppInfiniteLoopIsTimeLimit) {
  CodeResult r = MustJudge(Program("cpp", "int main() { volatile unsigned x = 0; for (;;) ++x; }"));
  EXPECT_EQ(r.verdict, CodeVerdict::kTimeLimit) << r.detail;
}

TEST_F(SandboxContainmentTest, SleepPastTheDeadlineIsWallClockTimeLimit) {
  CodeResult r = MustJudge(Program("python", "import time\ntime.sleep(600)\n"));
  EXPECT_EQ(r.verdict, CodeVerdict::kTimeLimit) << r.detail;
  EXPECT_THAT(r.detail, HasSubstr("wall-clock"));
}

TEST_F(SandboxContainmentTest, PythonMemoryBombIsMemoryLimit) {
  CodeResult r = MustJudge(
      Program("python", "chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))\n"));
  EXPECT_EQ(r.verdict, CodeVerdict::kMemoryLimit) << r.detail;
}

TEST_F(SandboxContainmentTest, CppMemoryBombIsMemoryLimit) {
  CodeResult r = MustJudge(Program(
      "cpp",
      "#include <vector>\n#include <cstdio>\nint main() { std::vector<std::vector<char>> v;"
      " for (;;) v.emplace_back(1 << 24, 'x'); }"));
  EXPECT_EQ(r.verdict, CodeVerdict::kMemoryLimit) << r.detail;
}

TEST_F(SandboxContainmentTest, ForkBombIsContainedAndLeavesNoProcesses) {
  const std::string marker = absl::StrCat("rlpfb", getpid() % 100000);
  ASSERT_EQ(CountProcessesNamed(marker), 0);
  const std::string code = absl::StrReplaceAll(
      "import os\n"
      "with open('/proc/self/comm', 'w') as f:\n"
      "    f.write('MARKER')\n"
      "while True:\n"
      "    try:\n"
      "        os.fork()\n"
      "    except OSError:\n"
      "        pass\n",
      {{"MARKER", marker}});
  CodeResult r = MustJudge(Program("python", code));
  EXPECT_THAT(r.verdict, AnyOf(CodeVerdict::kTimeLimit, CodeVerdict::kRuntimeError)) << r.detail;
  // Judge returns only after the sandbox's PID namespace is empty.
  EXPECT_EQ(CountProcessesNamed(marker), 0);
}

TEST_F(SandboxContainmentTest, CppForkBombIsContained) {
  CodeResult r = MustJudge(
      Program("cpp", "#include <unistd.h>\nint main() { for (;;) fork(); }"));
  EXPECT_THAT(r.verdict, AnyOf(CodeVerdict::kTimeLimit, CodeVerdict::kRuntimeError)) << r.detail;
}

TEST_F(SandboxContainmentTest, ProcessLimitStopsForks) {
  CodeResult r = MustJudge(Program("python",
                                   "import os, time\n"
                                   "n = 0\n"
                                   "try:\n"
                                   "    for _ in range(100):\n"
                                   "        if os.fork() == 0:\n"
                                   "            time.sleep(5)\n"
                                   "            os._exit(0)\n"
                                   "        n += 1\n"
                                   "except OSError:\n"
                                   "    pass\n"
                                   "print('limited' if n < 16 else n)\n",
                                   "limited"));
  EXPECT_EQ(r.verdict, CodeVerdict::kAccepted) << r.detail;
}

// A background child keeps the output pipe open after the program exits;
// the judge must return with the program's result, not wait for the deadline.
TEST_F(SandboxContainmentTest, ChildOutlivingParentDoesNotHangTheJudge) {
  const std::string marker = absl::StrCat("rlporph", getpid() % 100000);
  CodeResult r = MustJudge(Program("python",
                                   absl::StrReplaceAll(
                                       "import os, time, sys\n"
                                       "if os.fork() == 0:\n"
                                       "    os.setsid()\n"
                                       "    if os.fork() == 0:\n"
                                       "        open('/proc/self/comm', 'w').write('MARKER')\n"
                                       "        time.sleep(600)\n"
                                       "    os._exit(0)\n"
                                       "print('parent done')\n"
                                       "sys.stdout.flush()\n",
                                       {{"MARKER", marker}}),
                                   "parent done"));
  // accepted, not time_limit: the judge did not wait for the deadline.
  EXPECT_EQ(r.verdict, CodeVerdict::kAccepted) << r.detail;
  EXPECT_EQ(CountProcessesNamed(marker), 0);
}

TEST_F(SandboxContainmentTest, NetworkIsUnreachableByIpAndByName) {
  CodeResult r = MustJudge(Program("python",
                                   "import socket\n"
                                   "def attempt(f):\n"
                                   "    try:\n"
                                   "        f()\n"
                                   "        return 'open'\n"
                                   "    except OSError:\n"
                                   "        return 'blocked'\n"
                                   "def ip4():\n"
                                   "    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
                                   "    s.settimeout(1)\n"
                                   "    s.connect(('1.1.1.1', 80))\n"
                                   "def ip6():\n"
                                   "    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\n"
                                   "    s.settimeout(1)\n"
                                   "    s.connect(('2606:4700:4700::1111', 80))\n"
                                   "def udp():\n"
                                   "    socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                                   ".sendto(b'x', ('8.8.8.8', 53))\n"
                                   "def name():\n"
                                   "    socket.create_connection(('example.com', 80), timeout=1)\n"
                                   "def unix():\n"
                                   "    a, b = socket.socketpair()\n"
                                   "    a.send(b'x')\n"
                                   "    assert b.recv(1) == b'x'\n"
                                   "    raise OSError('unix sockets work')\n"
                                   "print(attempt(ip4), attempt(ip6), attempt(udp), attempt(name))\n"
                                   "print('unix', attempt(unix))\n",
                                   "blocked blocked blocked blocked\nunix blocked"));
  EXPECT_EQ(r.verdict, CodeVerdict::kAccepted) << r.detail;
}

TEST_F(SandboxContainmentTest, WritesOutsideTheWorkDirectoryDoNotReachTheHost) {
  HostTempDir host;
  host.Write("victim.txt", "original");
  const std::set<std::string> before = host.List();
  const std::string marker = absl::StrCat("rlpost-escape-", getpid());
  const std::string code = absl::StrReplaceAll(
      "import os\n"
      "results = []\n"
      "for path in ['HOST/victim.txt', 'HOST/new.txt', '/usr/MARKER', '/etc/MARKER',\n"
      "             '/root/MARKER', '/MARKER', '/bin/MARKER', '/proc/sys/kernel/hostname']:\n"
      "    try:\n"
      "        with open(path, 'w') as f:\n"
      "            f.write('pwned')\n"
      "        results.append('wrote')\n"
      "    except OSError:\n"
      "        results.append('denied')\n"
      "for path in ['/tmp/MARKER', '/work/MARKER']:\n"
      "    with open(path, 'w') as f:\n"
      "        f.write('scratch')\n"
      "print(' '.join(results))\n",
      {{"HOST", host.path()}, {"MARKER", marker}});
  CodeResult r = MustJudge(Program(
      "python", code, "denied denied denied denied denied denied denied denied"));
  EXPECT_EQ(r.verdict, CodeVerdict::kAccepted) << r.detail;
  EXPECT_EQ(host.Read("victim.txt"), "original");
  EXPECT_EQ(host.List(), before);
  struct stat st;
  for (const std::string dir : {"/usr", "/etc", "/root", "", "/tmp", "/work", "/bin"}) {
    EXPECT_NE(stat((dir + "/" + marker).c_str(), &st), 0) << dir << "/" << marker;
  }
}

TEST_F(SandboxContainmentTest, HostFilesAreNotReadable) {
  HostTempDir host;
  const std::string secret = absl::StrCat("canary-", getpid(), "-", reinterpret_cast<uintptr_t>(&host));
  host.Write("canary.txt", secret);
  const std::string code = absl::StrReplaceAll(
      "import os\n"
      "found = []\n"
      "for path in ['HOST/canary.txt', '/proc/1/root/HOST/canary.txt', '/etc/shadow',\n"
      "             '/etc/passwd', '/root/.bash_history']:\n"
      "    try:\n"
      "        with open(path) as f:\n"
      "            found.append(f.read())\n"
      "    except OSError:\n"
      "        pass\n"
      "for root, dirs, files in os.walk('/tmp'):\n"
      "    for name in files:\n"
      "        try:\n"
      "            found.append(open(os.path.join(root, name)).read())\n"
      "        except OSError:\n"
      "            pass\n"
      "print(found)\n",
      {{"HOST", host.path()}});
  CodeResult r = MustJudge(Program("python", code, "[]"));
  EXPECT_EQ(r.verdict, CodeVerdict::kAccepted) << r.detail;
  EXPECT_THAT(r.detail, Not(HasSubstr(secret)));
}

TEST_F(SandboxContainmentTest, KillAllInsideDoesNotReachTheHost) {
  CodeResult r = MustJudge(Program("python",
                                   "import os, signal\n"
                                   "os.kill(-1, signal.SIGKILL)\n"));
  // The sandbox may kill itself; the test process (and everything else on
  // the host) must be untouched, which reaching the next line shows.
  EXPECT_THAT(r.verdict, AnyOf(CodeVerdict::kRuntimeError, CodeVerdict::kWrongAnswer,
                               CodeVerdict::kAccepted))
      << r.detail;
  CodeResult cpp = MustJudge(
      Program("cpp", "#include <signal.h>\nint main() { kill(-1, SIGKILL); kill(1, SIGKILL); }"));
  EXPECT_NE(cpp.verdict, CodeVerdict::kSandboxError) << cpp.detail;
}

TEST_F(SandboxContainmentTest, HugeOutputIsOutputLimit) {
  const std::string marker = absl::StrCat("rlpout", getpid() % 100000);
  CodeResult r = MustJudge(Program(
      "python", absl::StrReplaceAll("import os\nos.fork()\n"
                                    "open('/proc/self/comm', 'w').write('MARKER')\n"
                                    "while True:\n    print('x' * 10000)\n",
                                    {{"MARKER", marker}})));
  EXPECT_EQ(r.verdict, CodeVerdict::kOutputLimit) << r.detail;
  EXPECT_EQ(CountProcessesNamed(marker), 0);
  CodeResult err = MustJudge(Program(
      "cpp", "#include <cstdio>\nint main() { for (;;) std::fputs(\"yyyyyyyy\\n\", stderr); }"));
  EXPECT_EQ(err.verdict, CodeVerdict::kOutputLimit) << err.detail;
}

TEST_F(SandboxContainmentTest, DangerousSyscallsAreDenied) {
  CodeResult r = MustJudge(Program(
      "cpp",
      "#include <sched.h>\n#include <sys/mount.h>\n#include <sys/ptrace.h>\n"
      "#include <sys/syscall.h>\n#include <unistd.h>\n#include <cstdio>\n#include <cerrno>\n"
      "int main() {\n"
      "  std::printf(\"%d\", unshare(CLONE_NEWUSER) == -1 && errno == EPERM);\n"
      "  std::printf(\"%d\", mount(\"none\", \"/tmp\", \"tmpfs\", 0, nullptr) == -1);\n"
      "  std::printf(\"%d\", ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) == -1);\n"
      "  std::printf(\"%d\", syscall(SYS_bpf, 0, nullptr, 0) == -1 && errno == EPERM);\n"
      "  std::printf(\"%d\", syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0) == -1);\n"
      "  std::printf(\"%d\", syscall(SYS_keyctl, 0, 0, 0, 0, 0) == -1 && errno == EPERM);\n"
      "  std::printf(\"%d\\n\", syscall(SYS_io_uring_setup, 1, nullptr) == -1);\n"
      "}\n",
      "1111111"));
  EXPECT_EQ(r.verdict, CodeVerdict::kAccepted) << r.detail;
}

// The filter is for the native ABI; i386 (int 0x80) and x32 syscalls would
// bypass its syscall numbers, so they kill the process.
TEST_F(SandboxContainmentTest, OtherSyscallAbisAreKilled) {
  CodeResult x32 = MustJudge(Program(
      "cpp",
      "#include <unistd.h>\n#include <sys/syscall.h>\n"
      "int main() { return syscall(0x40000000L | SYS_getpid) > 0 ? 0 : 1; }\n"));
  EXPECT_EQ(x32.verdict, CodeVerdict::kRuntimeError) << x32.detail;
  EXPECT_THAT(x32.detail, HasSubstr("SIGSYS"));
  CodeResult i386 = MustJudge(Program(
      "cpp",
      "int main() { long r; asm volatile(\"int $0x80\" : \"=a\"(r) : \"a\"(20L) : \"memory\");"
      " return r > 0 ? 0 : 1; }\n"));
  EXPECT_EQ(i386.verdict, CodeVerdict::kRuntimeError) << i386.detail;
  EXPECT_THAT(i386.detail, HasSubstr("SIGSYS"));
}

TEST_F(SandboxContainmentTest, RunsAsUnprivilegedUserWithNoCapabilities) {
  CodeResult r = MustJudge(Program("python",
                                   "import os\n"
                                   "caps = [l for l in open('/proc/self/status') if l.startswith('CapEff')]\n"
                                   "print(os.getuid(), os.getgid(), caps[0].split()[1])\n",
                                   "65534 65534 0000000000000000"));
  EXPECT_EQ(r.verdict, CodeVerdict::kAccepted) << r.detail;
}

TEST_F(SandboxContainmentTest, CompileBombsAreCompileErrors) {
  for (const char* code : {
           "#include \"/dev/zero\"\nint main() {}\n",
           "#include \"/dev/urandom\"\nint main() {}\n",
           "template <int N> struct F { enum { v = F<N - 1>::v + F<N - 2>::v }; };\n"
           "int main() { return F<100000>::v; }\n",
       }) {
    CodeTask task = Program("cpp", code);
    task.compile_limits.time_limit_s = 2;
    task.compile_limits.wall_limit_s = 4;
    CodeResult r = MustJudge(task);
    EXPECT_THAT(r.verdict, AnyOf(CodeVerdict::kCompileError, CodeVerdict::kTimeLimit))
        << code << "\n" << r.detail;
  }
}

}  // namespace
}  // namespace rlpost::code
