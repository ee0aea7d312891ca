#include "verifier/code/sandbox_process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace rlpost::code::internal {

absl::Status Errno(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

absl::StatusOr<Fd> MemFdWith(const char* name, absl::string_view data) {
  Fd fd(static_cast<int>(syscall(SYS_memfd_create, name, MFD_CLOEXEC)));
  if (!fd.valid()) return Errno("memfd_create");
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Errno("writing a memfd");
    done += static_cast<size_t>(n);
  }
  if (lseek(fd.get(), 0, SEEK_SET) != 0) return Errno("lseek");
  return fd;
}

int MillisUntil(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (left.count() <= 0) return 0;
  return static_cast<int>(std::min<int64_t>(left.count() + 1, 1 << 30));
}

namespace {

struct Pipe {
  Fd read;
  Fd write;
};

absl::StatusOr<Pipe> MakePipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Errno("pipe2");
  Pipe p{Fd(fds[0]), Fd(fds[1])};
  if (fcntl(p.read.get(), F_SETFL, O_NONBLOCK) != 0) return Errno("fcntl");
  return p;
}

int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

void PidfdKill(int pidfd) { syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0); }

// The parent pid of `pid` from /proc, or -1.
pid_t ParentOf(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("PPid:", 0) == 0) {
      int ppid = -1;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(5)), &ppid)) return ppid;
    }
  }
  return -1;
}

// The integer after `"key":` in bwrap's --json-status-fd stream, or -1.
int64_t JsonInt(absl::string_view json, absl::string_view key) {
  const std::string quoted = absl::StrCat("\"", key, "\"");
  size_t at = json.find(quoted);
  if (at == absl::string_view::npos) return -1;
  at = json.find(':', at);
  if (at == absl::string_view::npos) return -1;
  ++at;
  while (at < json.size() && json[at] == ' ') ++at;
  size_t end = at;
  while (end < json.size() && json[end] >= '0' && json[end] <= '9') ++end;
  int64_t value = -1;
  if (end == at || end == json.size() || !absl::SimpleAtoi(json.substr(at, end - at), &value)) {
    return -1;  // absent or not yet complete
  }
  return value;
}

// What the spawned child needs; it lives on the parent's stack, which the
// child may read because the parent is suspended until the exec.
struct SpawnContext {
  bool drop_ids = false;
  long host_id = -1;
  pid_t parent = 0;
  const int* sources = nullptr;
  int nsources = 0;
  char* const* argv = nullptr;
};

constexpr size_t kSpawnStackBytes = 64 * 1024;

// Runs in the clone()d child, on its own stack but in the judge's memory
// (other judge threads keep running): async-signal-safe calls only, no
// allocation, no locks, nothing written but its own stack and errno, then
// exec bwrap.
int SpawnChild(void* arg) {
  const SpawnContext& ctx = *static_cast<const SpawnContext*>(arg);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != ctx.parent) _exit(127);
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  const int nsources = ctx.nsources;
  int high[64];
  for (int i = 0; i < nsources && i < 64; ++i) {
    high[i] = fcntl(ctx.sources[i], F_DUPFD, nsources + 16);
    if (high[i] < 0) _exit(127);
  }
  for (int i = 0; i < nsources && i < 64; ++i) {
    if (dup2(high[i], i) < 0) _exit(127);
  }
  if (syscall(SYS_close_range, nsources, ~0U, 0) != 0) {
    // Kernels before 5.9: close whatever else is open, one by one.
    struct rlimit nofile;
    const int max_fd = getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < 65536
                           ? static_cast<int>(nofile.rlim_cur)
                           : 65536;
    for (int fd = nsources; fd < max_fd; ++fd) close(fd);
  }
  if (ctx.drop_ids) {
    if (syscall(SYS_setgroups, 0, nullptr) != 0 ||
        syscall(SYS_setresgid, ctx.host_id, ctx.host_id, ctx.host_id) != 0 ||
        syscall(SYS_setresuid, ctx.host_id, ctx.host_id, ctx.host_id) != 0) {
      static const char kMsg[] = "Esandbox: dropping to the unprivileged host id failed\n";
      (void)!write(kReadyFd, kMsg, sizeof(kMsg) - 1);
      _exit(127);
    }
  }
  execv(ctx.argv[0], ctx.argv);
  static const char kMsg[] = "Esandbox: exec of bwrap failed\n";
  (void)!write(kReadyFd, kMsg, sizeof(kMsg) - 1);
  _exit(127);
}

}  // namespace

absl::StatusOr<std::unique_ptr<SandboxProcess>> SandboxProcess::Start(
    const std::vector<std::string>& args, int stdin_fd, const std::vector<int>& extra,
    int64_t host_id) {
  absl::StatusOr<Pipe> out = MakePipe();
  if (!out.ok()) return out.status();
  absl::StatusOr<Pipe> err = MakePipe();
  if (!err.ok()) return err.status();
  absl::StatusOr<Pipe> ready = MakePipe();
  if (!ready.ok()) return ready.status();
  absl::StatusOr<Pipe> json = MakePipe();
  if (!json.ok()) return json.status();
  // Sources in the order of their descriptor numbers in the child.
  std::vector<int> sources = {stdin_fd, out->write.get(), err->write.get(), ready->write.get(),
                              json->write.get()};
  sources.insert(sources.end(), extra.begin(), extra.end());
  std::vector<std::string> arg_copies = args;
  std::vector<char*> argv;
  for (std::string& arg : arg_copies) argv.push_back(arg.data());
  argv.push_back(nullptr);

  SpawnContext ctx;
  ctx.drop_ids = host_id >= 0 && geteuid() == 0;
  ctx.host_id = static_cast<long>(host_id);
  ctx.parent = getpid();
  ctx.sources = sources.data();
  ctx.nsources = static_cast<int>(sources.size());
  ctx.argv = argv.data();

  // The child shares our memory until it execs (CLONE_VM | CLONE_VFORK, as
  // posix_spawn does): no page tables to copy and no copy-on-write faults in
  // a judge with a large heap, which fork() cost on every run. All signals
  // stay blocked across the clone so that no handler of ours runs on the
  // child's stack; the child resets every disposition before unblocking.
  void* stack = mmap(nullptr, kSpawnStackBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return Errno("mmap of the spawn stack");
  sigset_t all, saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  const pid_t pid = clone(SpawnChild, static_cast<char*>(stack) + kSpawnStackBytes,
                          CLONE_VM | CLONE_VFORK | SIGCHLD, &ctx);
  const int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  munmap(stack, kSpawnStackBytes);
  if (pid < 0) {
    errno = clone_errno;
    return Errno("clone");
  }
  // Our copies of the child's ends close with `out`...`json` here, so EOF
  // means "all gone".
  auto instance = std::make_unique<SandboxProcess>();
  instance->pid = pid;
  instance->pidfd = Fd(PidfdOpen(pid));
  instance->out = std::move(out->read);
  instance->err = std::move(err->read);
  instance->status = std::move(ready->read);
  instance->json = std::move(json->read);
  return instance;
}

bool SandboxProcess::ReadJson() {
  if (!json.valid()) return false;
  char buffer[4096];
  const ssize_t n = read(json.get(), buffer, sizeof(buffer));
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
  if (n <= 0) {
    json.Reset();
    return false;
  }
  if (json_text.size() < 65536) json_text.append(buffer, static_cast<size_t>(n));
  return true;
}

void SandboxProcess::TrackInit() {
  if (init_pidfd.valid()) return;
  ReadJson();
  const int64_t child = JsonInt(json_text, "child-pid");
  if (child <= 0) return;
  Fd candidate(PidfdOpen(static_cast<pid_t>(child)));
  // Trust the pid only while it is still bwrap's child (no reuse).
  if (candidate.valid() && ParentOf(static_cast<pid_t>(child)) == pid) {
    init_pidfd = std::move(candidate);
  }
}

bool SandboxProcess::Alive() const {
  if (!pidfd.valid() || !init_pidfd.valid()) return false;
  pollfd fds[2] = {{pidfd.get(), POLLIN, 0}, {init_pidfd.get(), POLLIN, 0}};
  return poll(fds, 2, 0) == 0;
}

void SandboxProcess::Kill() {
  TrackInit();
  if (init_pidfd.valid()) PidfdKill(init_pidfd.get());
  if (pid > 0) kill(pid, SIGKILL);
}

int SandboxProcess::Reap() {
  if (init_pidfd.valid()) {
    // bwrap may exit as soon as its init reports the exit code; the init
    // itself exits only after the kernel has killed and reaped every process
    // left in the namespace. Waiting for it means nothing outlives the run.
    pollfd pfd = {init_pidfd.get(), POLLIN, 0};
    while (poll(&pfd, 1, static_cast<int>(kReapGrace.count())) < 0 && errno == EINTR) {
    }
  }
  int wait_status = 0;
  while (pid > 0 && waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
  }
  pid = -1;
  return wait_status;
}

SandboxRunOutcome SandboxProcess::Supervise(const SandboxLimits& limits,
                                               Clock::time_point start, bool may_retire,
                                               bool* launcher_silent) {
  SandboxRunOutcome outcome;
  std::string ready_text;
  bool killed = false;
  bool bwrap_exited = false;
  bool program_gone = false;  // "D" after the report
  const Clock::time_point deadline =
      start + std::chrono::duration_cast<Clock::duration>(
                  std::chrono::duration<double>(limits.EffectiveWallLimit()));
  const size_t cap = static_cast<size_t>(std::max<int64_t>(limits.output_limit_bytes, 0));

  // Reads what is available from `fd`; false at EOF or error.
  auto read_into = [&](int fd, std::string* sink, bool capped) -> bool {
    char buffer[65536];
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    if (n == 0) return false;
    if (capped) {
      const size_t used = outcome.stdout_text.size() + outcome.stderr_text.size();
      const size_t room = used >= cap ? 0 : cap - used;
      sink->append(buffer, std::min<size_t>(room, static_cast<size_t>(n)));
      if (static_cast<size_t>(n) > room) outcome.output_limit_exceeded = true;
    } else if (sink->size() < 65536) {
      sink->append(buffer, static_cast<size_t>(n));
    }
    return true;
  };
  struct Stream {
    int fd;
    std::string* sink;
    bool capped;
  };
  Stream streams[] = {{out.get(), &outcome.stdout_text, true},
                      {err.get(), &outcome.stderr_text, true},
                      {status.get(), &ready_text, false}};
  auto service = [&](const pollfd* fds) {
    for (int i = 0; i < 3; ++i) {
      if (streams[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      if (!read_into(streams[i].fd, streams[i].sink, streams[i].capped)) streams[i].fd = -1;
    }
    if (json.valid() && (fds[3].revents & (POLLIN | POLLHUP | POLLERR)) != 0) ReadJson();
  };
  auto fill = [&](pollfd* fds) {
    for (int i = 0; i < 3; ++i) fds[i] = {streams[i].fd, POLLIN, 0};
    fds[3] = {json.valid() ? json.get() : -1, POLLIN, 0};
  };
  auto kill_all = [&] {
    Kill();
    killed = true;
  };

  if (!pidfd.valid()) {
    kill_all();
    outcome.setup_error = absl::StrCat("pidfd_open: ", std::strerror(errno));
  }
  while (!killed && !bwrap_exited) {
    pollfd fds[5];
    fill(fds);
    fds[4] = {pidfd.get(), POLLIN, 0};
    const int timeout = MillisUntil(deadline);
    if (timeout == 0) {
      outcome.wall_timeout = true;
      kill_all();
      break;
    }
    const int n = poll(fds, 5, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      outcome.setup_error = absl::StrCat("poll: ", std::strerror(errno));
      kill_all();
      break;
    }
    service(fds);
    TrackInit();
    if (outcome.output_limit_exceeded) {
      kill_all();
      break;
    }
    if (fds[4].revents & POLLIN) bwrap_exited = true;
    const size_t x = ready_text.find('X');
    if (may_retire && x != std::string::npos && ready_text.find('D', x) != std::string::npos) {
      program_gone = true;
      break;
    }
  }
  int wait_status = 0;
  if (program_gone) {
    // Every writer but bwrap and the launcher is dead, so the program's
    // output is complete in the pipes: read it without waiting for EOF.
    for (int i = 0; i < 2; ++i) {
      while (streams[i].fd >= 0 && read_into(streams[i].fd, streams[i].sink, streams[i].capped)) {
        pollfd pfd = {streams[i].fd, POLLIN, 0};
        if (poll(&pfd, 1, 0) <= 0 || (pfd.revents & POLLIN) == 0) break;
      }
    }
  } else {
    wait_status = Reap();
  }
  // Everything that could write is gone (or, after a kill, about to be):
  // collect what is left in the pipes.
  const Clock::time_point drain_deadline = Clock::now() + kReapGrace;
  while (!program_gone &&
         (streams[0].fd >= 0 || streams[1].fd >= 0 || streams[2].fd >= 0 || json.valid())) {
    pollfd fds[4];
    fill(fds);
    const int timeout = MillisUntil(drain_deadline);
    if (timeout == 0) break;
    const int n = poll(fds, 4, timeout);
    if (n < 0 && errno != EINTR) break;
    if (n > 0) service(fds);
  }
  outcome.wall_s = std::chrono::duration<double>(Clock::now() - start).count();

  // The launcher's report is exact; bwrap's exit code is the fallback (when
  // the launcher was killed, or the run was cut short).
  int report_status = 0;
  long long user_us = 0, system_us = 0;
  const size_t report_at = ready_text.find("X ");
  const int64_t json_exit = JsonInt(json_text, "exit-code");
  if (report_at != std::string::npos &&
      std::sscanf(ready_text.c_str() + report_at, "X %d %lld %lld", &report_status, &user_us,
                  &system_us) == 3) {
    outcome.cpu_s = (user_us + system_us) * 1e-6;
    outcome.exit_code = WIFEXITED(report_status)     ? WEXITSTATUS(report_status)
                        : WIFSIGNALED(report_status) ? 128 + WTERMSIG(report_status)
                                                     : -1;
    outcome.signal = WIFSIGNALED(report_status) ? WTERMSIG(report_status) : 0;
  } else if (json_exit >= 0) {
    outcome.exit_code = static_cast<int>(json_exit);
  } else if (WIFEXITED(wait_status)) {
    outcome.exit_code = WEXITSTATUS(wait_status);
  } else if (WIFSIGNALED(wait_status)) {
    outcome.exit_code = 128 + WTERMSIG(wait_status);
  }
  if (report_at == std::string::npos && outcome.exit_code > 128 &&
      outcome.exit_code < 128 + NSIG) {
    outcome.signal = outcome.exit_code - 128;
  }
  const size_t error_at = ready_text.find('E');
  outcome.started = !ready_text.empty() && ready_text[0] == 'R' && error_at == std::string::npos;
  *launcher_silent = ready_text.empty() && !killed;
  if (!outcome.started && outcome.setup_error.empty()) {
    if (error_at != std::string::npos) {
      outcome.setup_error = std::string(absl::StripAsciiWhitespace(ready_text.substr(error_at + 1)));
    } else if (outcome.wall_timeout) {
      outcome.setup_error = "the sandbox did not start before the wall-clock deadline";
    } else {
      outcome.setup_error = absl::StrCat(
          "bwrap exited with status ", outcome.exit_code, " before the program started: ",
          absl::StripAsciiWhitespace(outcome.stderr_text.substr(0, 500)));
    }
  }
  return outcome;
}

}  // namespace rlpost::code::internal
