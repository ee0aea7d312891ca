#include "verifier/code/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace rlpost::code {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kLauncherInSandbox[] = "/rlpost/sandbox-exec";
// Descriptor numbers as bwrap sees them.
constexpr int kReadyFd = 3;
constexpr int kJsonFd = 4;
constexpr int kSeccompFd = 5;
constexpr int kLauncherFd = 6;
constexpr int kFirstFileFd = 7;
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

int MillisUntil(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (left.count() <= 0) return 0;
  return static_cast<int>(std::min<int64_t>(left.count() + 1, 1 << 30));
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

Sandbox::Sandbox(SandboxConfig config) : config_(std::move(config)) {
  base_args_ = {"--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc",
                "--unshare-uts", "--unshare-cgroup-try", "--uid", "65534", "--gid", "65534",
                "--hostname", "sandbox", "--die-with-parent", "--new-session",
                "--cap-drop", "ALL", "--ro-bind", "/usr", "/usr"};
  // Merged-/usr systems have /bin -> usr/bin and friends: mirror the links.
  for (const char* top : {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
    struct stat st;
    if (lstat(top, &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      const ssize_t n = readlink(top, target, sizeof(target) - 1);
      if (n <= 0) continue;
      base_args_.insert(base_args_.end(), {"--symlink", std::string(target, n), top});
    } else if (S_ISDIR(st.st_mode)) {
      base_args_.insert(base_args_.end(), {"--ro-bind", top, top});
    }
  }
  // Only what the loader, g++ and Python read from /etc: no passwd, no
  // resolv.conf, no secrets.
  std::vector<std::string> etc = {"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
                                  "/etc/alternatives", "/etc/localtime"};
  glob_t found;
  if (glob("/etc/python3*", 0, nullptr, &found) == 0) {
    for (size_t i = 0; i < found.gl_pathc; ++i) etc.emplace_back(found.gl_pathv[i]);
  }
  globfree(&found);
  for (const std::string& path : etc) {
    base_args_.insert(base_args_.end(), {"--ro-bind-try", path, path});
  }
  base_args_.insert(base_args_.end(),
                    {"--proc", "/proc", "--dev", "/dev", "--clearenv", "--setenv", "PATH",
                     "/usr/bin:/bin", "--setenv", "HOME", "/work", "--setenv", "TMPDIR", "/tmp",
                     "--setenv", "LANG", "C.UTF-8"});
}

absl::StatusOr<SandboxRunOutcome> Sandbox::Run(const SandboxRunSpec& spec) const {
  if (spec.argv.empty()) return absl::InvalidArgumentError("sandbox: argv is empty");
  if (spec.files.size() > 32) return absl::InvalidArgumentError("sandbox: more than 32 files");
  const SandboxLimits& limits = spec.limits;
  const Clock::time_point start = Clock::now();

  absl::StatusOr<Fd> stdin_fd = MemFdWith("rlpost-stdin", spec.stdin_text);
  if (!stdin_fd.ok()) return stdin_fd.status();
  absl::StatusOr<Pipe> out = MakePipe();
  if (!out.ok()) return out.status();
  absl::StatusOr<Pipe> err = MakePipe();
  if (!err.ok()) return err.status();
  absl::StatusOr<Pipe> ready = MakePipe();
  if (!ready.ok()) return ready.status();
  absl::StatusOr<Pipe> json = MakePipe();
  if (!json.ok()) return json.status();
  absl::StatusOr<Fd> seccomp_fd = MemFdWith("rlpost-seccomp", config_.seccomp_filter);
  if (!seccomp_fd.ok()) return seccomp_fd.status();
  absl::StatusOr<Fd> launcher_fd = MemFdWith("rlpost-launcher", config_.launcher_binary);
  if (!launcher_fd.ok()) return launcher_fd.status();
  std::vector<Fd> file_fds;
  for (const SandboxFile& file : spec.files) {
    absl::StatusOr<Fd> fd = MemFdWith("rlpost-file", file.contents);
    if (!fd.ok()) return fd.status();
    file_fds.push_back(std::move(*fd));
  }

  // Sources in the order of their descriptor numbers in the child.
  std::vector<int> sources = {stdin_fd->get(),   out->write.get(),   err->write.get(),
                              ready->write.get(), json->write.get(), seccomp_fd->get(),
                              launcher_fd->get()};
  for (const Fd& fd : file_fds) sources.push_back(fd.get());

  const std::string scratch = absl::StrCat(std::max<int64_t>(limits.scratch_limit_bytes, 4096));
  std::vector<std::string> args = {config_.bwrap_path};
  args.insert(args.end(), base_args_.begin(), base_args_.end());
  args.insert(args.end(), {"--size", scratch, "--tmpfs", "/tmp"});
  if (!spec.writable_host_dir.empty()) {
    args.insert(args.end(), {"--bind", spec.writable_host_dir, "/work"});
  } else {
    args.insert(args.end(), {"--size", scratch, "--tmpfs", "/work"});
  }
  args.insert(args.end(), {"--perms", "0555", "--ro-bind-data", absl::StrCat(kLauncherFd),
                           kLauncherInSandbox});
  for (size_t i = 0; i < spec.files.size(); ++i) {
    args.insert(args.end(), {"--perms", spec.files[i].executable ? "0555" : "0444",
                             "--ro-bind-data", absl::StrCat(kFirstFileFd + i),
                             spec.files[i].path});
  }
  for (const auto& [key, value] : spec.env) {
    args.insert(args.end(), {"--setenv", key, value});
  }
  const int64_t cpu_limit = static_cast<int64_t>(std::ceil(limits.time_limit_s));
  // The root itself (where bwrap made the mount points) becomes read-only;
  // /tmp and /work stay writable.
  args.insert(args.end(),
              {"--remount-ro", "/", "--chdir", "/work", "--json-status-fd", absl::StrCat(kJsonFd), "--seccomp",
               absl::StrCat(kSeccompFd), kLauncherInSandbox, absl::StrCat(kReadyFd),
               absl::StrCat(std::max<int64_t>(cpu_limit, 1)),
               absl::StrCat(limits.memory_limit_mb << 20), absl::StrCat(limits.max_processes),
               absl::StrCat(limits.file_size_limit_bytes), absl::StrCat(limits.max_open_files),
               "--"});
  args.insert(args.end(), spec.argv.begin(), spec.argv.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  SpawnContext ctx;
  ctx.drop_ids = config_.host_id >= 0 && geteuid() == 0;
  ctx.host_id = static_cast<long>(config_.host_id);
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

  // Parent: drop our copies of the child's ends so EOF means "all gone".
  out->write.Reset();
  err->write.Reset();
  ready->write.Reset();
  json->write.Reset();
  stdin_fd->Reset();
  seccomp_fd->Reset();
  launcher_fd->Reset();
  file_fds.clear();

  SandboxRunOutcome outcome;
  Fd bwrap_pidfd(PidfdOpen(pid));
  Fd init_pidfd;
  std::string json_text, ready_text;
  bool killed = false;
  bool bwrap_exited = false;
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
  Stream streams[] = {{out->read.get(), &outcome.stdout_text, true},
                      {err->read.get(), &outcome.stderr_text, true},
                      {ready->read.get(), &ready_text, false},
                      {json->read.get(), &json_text, false}};
  auto service = [&](const pollfd* fds) {
    for (int i = 0; i < 4; ++i) {
      if (streams[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      if (!read_into(streams[i].fd, streams[i].sink, streams[i].capped)) streams[i].fd = -1;
    }
  };

  // bwrap writes the pid of the namespace's init (in our pid namespace) to
  // --json-status-fd right after creating it, before the program runs.
  auto track_init = [&] {
    if (init_pidfd.valid()) return;
    if (streams[3].fd >= 0 && !read_into(streams[3].fd, &json_text, false)) streams[3].fd = -1;
    const int64_t child = JsonInt(json_text, "child-pid");
    if (child <= 0) return;
    Fd candidate(PidfdOpen(static_cast<pid_t>(child)));
    // Trust the pid only while it is still bwrap's child (no reuse).
    if (candidate.valid() && ParentOf(static_cast<pid_t>(child)) == pid) {
      init_pidfd = std::move(candidate);
    }
  };
  auto kill_all = [&] {
    track_init();
    if (init_pidfd.valid()) PidfdKill(init_pidfd.get());
    kill(pid, SIGKILL);
    killed = true;
  };

  if (!bwrap_pidfd.valid()) {
    kill_all();
    outcome.setup_error = absl::StrCat("pidfd_open: ", std::strerror(errno));
  }
  while (!killed && !bwrap_exited) {
    pollfd fds[5];
    for (int i = 0; i < 4; ++i) fds[i] = {streams[i].fd, POLLIN, 0};
    fds[4] = {bwrap_pidfd.get(), POLLIN, 0};
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
    track_init();
    if (outcome.output_limit_exceeded) {
      kill_all();
      break;
    }
    if (fds[4].revents & POLLIN) bwrap_exited = true;
  }
  if (init_pidfd.valid()) {
    // bwrap may exit as soon as its init reports the exit code; the init
    // itself exits only after the kernel has killed and reaped every process
    // left in the namespace. Waiting for it means nothing outlives Run().
    pollfd pfd = {init_pidfd.get(), POLLIN, 0};
    while (poll(&pfd, 1, static_cast<int>(kReapGrace.count())) < 0 && errno == EINTR) {
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  // Everything that could write is gone (or, after a kill, about to be):
  // collect what is left in the pipes.
  const Clock::time_point drain_deadline = Clock::now() + kReapGrace;
  while (streams[0].fd >= 0 || streams[1].fd >= 0 || streams[2].fd >= 0 || streams[3].fd >= 0) {
    pollfd fds[4];
    for (int i = 0; i < 4; ++i) fds[i] = {streams[i].fd, POLLIN, 0};
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
  } else if (WIFEXITED(status)) {
    outcome.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    outcome.exit_code = 128 + WTERMSIG(status);
  }
  if (report_at == std::string::npos && outcome.exit_code > 128 &&
      outcome.exit_code < 128 + NSIG) {
    outcome.signal = outcome.exit_code - 128;
  }
  const size_t error_at = ready_text.find('E');
  outcome.started = !ready_text.empty() && ready_text[0] == 'R' && error_at == std::string::npos;
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

}  // namespace rlpost::code
