#include "verifier/code/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "verifier/code/sandbox_process.h"

namespace rlpost::code {

using internal::Clock;
using internal::Errno;
using internal::Fd;
using internal::kControlFd;
using internal::kFirstFileFd;
using internal::kJsonFd;
using internal::kLauncherFd;
using internal::kReadyFd;
using internal::kReapGrace;
using internal::kSeccompFd;
using internal::MemFdWith;
using internal::MillisUntil;

namespace {

constexpr char kLauncherInSandbox[] = "/rlpost/sandbox-exec";

// The launcher's limit words: CPU_S AS_BYTES NPROC FSIZE_BYTES NOFILE.
std::vector<std::string> LimitWords(const SandboxLimits& limits) {
  const int64_t cpu_limit = static_cast<int64_t>(std::ceil(limits.time_limit_s));
  return {absl::StrCat(std::max<int64_t>(cpu_limit, 1)),
          absl::StrCat(limits.memory_limit_mb << 20), absl::StrCat(limits.max_processes),
          absl::StrCat(limits.file_size_limit_bytes), absl::StrCat(limits.max_open_files)};
}

int64_t ScratchBytes(int64_t requested) { return std::max<int64_t>(requested, 4096); }

// A file a warm launcher can place: directly in /work (its tmpfs), so no
// directory has to be made and nothing outside /work is written.
bool IsWarmFilePath(absl::string_view path) {
  if (!absl::ConsumePrefix(&path, "/work/")) return false;
  return !path.empty() && path != "." && path != ".." &&
         path.find_first_of(absl::string_view("/\0", 2)) == absl::string_view::npos;
}

// The job travels as NUL-terminated words.
bool HasNul(absl::string_view text) { return text.find('\0') != absl::string_view::npos; }

// Hands `spec` to a warm launcher (sandbox_exec_main.cc, --job) in one
// message: a memfd with the job's words, then stdin and each file as memfds.
absl::Status SendJob(int control, const SandboxRunSpec& spec) {
  std::string job;
  auto word = [&job](absl::string_view w) {
    job.append(w.data(), w.size());
    job.push_back('\0');
  };
  for (const std::string& w : LimitWords(spec.limits)) word(w);
  word(absl::StrCat(spec.env.size()));
  for (const auto& [key, value] : spec.env) {
    word(key);
    word(value);
  }
  word(absl::StrCat(spec.files.size()));
  for (const SandboxFile& file : spec.files) {
    word(file.path);
    word(file.executable ? "0555" : "0444");
  }
  word("--");
  for (const std::string& arg : spec.argv) word(arg);

  std::vector<Fd> fds;
  absl::StatusOr<Fd> fd = MemFdWith("rlpost-job", job);
  if (!fd.ok()) return fd.status();
  fds.push_back(*std::move(fd));
  fd = MemFdWith("rlpost-stdin", spec.stdin_text);
  if (!fd.ok()) return fd.status();
  fds.push_back(*std::move(fd));
  for (const SandboxFile& file : spec.files) {
    fd = MemFdWith("rlpost-file", file.contents);
    if (!fd.ok()) return fd.status();
    fds.push_back(*std::move(fd));
  }
  std::vector<int> numbers;
  for (const Fd& f : fds) numbers.push_back(f.get());
  std::vector<char> control_buffer(CMSG_SPACE(sizeof(int) * numbers.size()));
  char byte = 'J';
  iovec iov = {&byte, 1};
  msghdr message;
  std::memset(&message, 0, sizeof(message));
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control_buffer.data();
  message.msg_controllen = control_buffer.size();
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int) * numbers.size());
  std::memcpy(CMSG_DATA(header), numbers.data(), sizeof(int) * numbers.size());
  ssize_t n;
  while ((n = sendmsg(control, &message, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  if (n != 1) return Errno("sending a job to a warm sandbox");
  return absl::OkStatus();
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
  if (config_.warm_sandboxes > 0) {
    credit_ = config_.warm_sandboxes;
    keeper_ = std::thread([this] { KeepWarm(); });
  }
}

Sandbox::~Sandbox() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (keeper_.joinable()) keeper_.join();
  // Kills and reaps each idle or retired sandbox (Instance's destructor).
  absl::MutexLock lock(&mu_);
  idle_.clear();
  retired_.clear();
}

// The bwrap command line: for `spec`'s cold run, or (null) a warm sandbox
// whose launcher waits for its job on kControlFd.
std::vector<std::string> Sandbox::BwrapArgs(const SandboxRunSpec* spec,
                                            int64_t scratch_bytes) const {
  const std::string scratch = absl::StrCat(ScratchBytes(scratch_bytes));
  std::vector<std::string> args = {config_.bwrap_path};
  args.insert(args.end(), base_args_.begin(), base_args_.end());
  args.insert(args.end(), {"--size", scratch, "--tmpfs", "/tmp"});
  if (spec != nullptr && !spec->writable_host_dir.empty()) {
    args.insert(args.end(), {"--bind", spec->writable_host_dir, "/work"});
  } else {
    args.insert(args.end(), {"--size", scratch, "--tmpfs", "/work"});
  }
  args.insert(args.end(), {"--perms", "0555", "--ro-bind-data", absl::StrCat(kLauncherFd),
                           kLauncherInSandbox});
  if (spec != nullptr) {
    for (size_t i = 0; i < spec->files.size(); ++i) {
      args.insert(args.end(), {"--perms", spec->files[i].executable ? "0555" : "0444",
                               "--ro-bind-data", absl::StrCat(kFirstFileFd + i),
                               spec->files[i].path});
    }
    for (const auto& [key, value] : spec->env) {
      args.insert(args.end(), {"--setenv", key, value});
    }
  }
  // The root itself (where bwrap made the mount points) becomes read-only;
  // /tmp and /work stay writable.
  args.insert(args.end(), {"--remount-ro", "/", "--chdir", "/work", "--json-status-fd",
                           absl::StrCat(kJsonFd), "--seccomp", absl::StrCat(kSeccompFd),
                           kLauncherInSandbox});
  if (spec == nullptr) {
    args.insert(args.end(), {"--job", absl::StrCat(kReadyFd), absl::StrCat(kControlFd)});
    return args;
  }
  args.push_back(absl::StrCat(kReadyFd));
  const std::vector<std::string> limits = LimitWords(spec->limits);
  args.insert(args.end(), limits.begin(), limits.end());
  args.push_back("--");
  args.insert(args.end(), spec->argv.begin(), spec->argv.end());
  return args;
}

absl::StatusOr<std::unique_ptr<Sandbox::Instance>> Sandbox::StartWarm() const {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return Errno("socketpair");
  Fd ours(pair[0]), theirs(pair[1]);
  if (fcntl(ours.get(), F_SETFL, O_NONBLOCK) != 0) return Errno("fcntl");
  absl::StatusOr<Fd> stdin_fd = MemFdWith("rlpost-stdin", "");
  if (!stdin_fd.ok()) return stdin_fd.status();
  absl::StatusOr<Fd> seccomp_fd = MemFdWith("rlpost-seccomp", config_.seccomp_filter);
  if (!seccomp_fd.ok()) return seccomp_fd.status();
  absl::StatusOr<Fd> launcher_fd = MemFdWith("rlpost-launcher", config_.launcher_binary);
  if (!launcher_fd.ok()) return launcher_fd.status();
  absl::StatusOr<std::unique_ptr<Instance>> instance =
      Instance::Start(BwrapArgs(nullptr, config_.warm_scratch_bytes), stdin_fd->get(),
                      {seccomp_fd->get(), launcher_fd->get(), theirs.get()}, config_.host_id);
  if (!instance.ok()) return instance.status();
  (*instance)->control = std::move(ours);
  // Pooled only once its init is known, so that tearing it down can wait
  // for the whole namespace (bwrap reports it right after the clone), and
  // once the launcher says it waits for the job ("W"): a run never waits
  // for the start-up, and one that fails is not pooled.
  Instance& started = **instance;
  const Clock::time_point deadline = Clock::now() + kReapGrace;
  char waiting = 0;
  while (started.pidfd.valid() && started.json.valid()) {
    started.TrackInit();
    if (started.init_pidfd.valid() && waiting == 'W') return instance;
    pollfd fds[3] = {{started.json.get(), POLLIN, 0},
                     {started.status.get(), static_cast<short>(waiting == 0 ? POLLIN : 0), 0},
                     {started.pidfd.get(), POLLIN, 0}};
    const int timeout = MillisUntil(deadline);
    if (timeout == 0 || (poll(fds, 3, timeout) < 0 && errno != EINTR) ||
        (fds[2].revents & POLLIN) != 0) {
      break;
    }
    if (waiting == 0 && (fds[1].revents & (POLLIN | POLLHUP)) != 0 &&
        (read(started.status.get(), &waiting, 1) != 1 || waiting != 'W')) {
      break;
    }
  }
  return absl::UnavailableError("a warm sandbox did not start");
}

void Sandbox::KeepWarm() {
  absl::MutexLock lock(&mu_);
  for (;;) {
    auto wants_start = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return credit_ > 0 && static_cast<int>(idle_.size()) < config_.warm_sandboxes;
    };
    mu_.Await(absl::Condition(
        +[](Sandbox* s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return s->stopping_ || !s->retired_.empty() ||
                 (s->credit_ > 0 && static_cast<int>(s->idle_.size()) < s->config_.warm_sandboxes);
        },
        this));
    if (stopping_) return;
    keeper_busy_ = true;
    if (wants_start()) {
      // Starting comes first: the next run is waiting for it; the retired
      // ones are only waiting for the kernel.
      --credit_;
      mu_.Unlock();
      absl::StatusOr<std::unique_ptr<Instance>> instance = StartWarm();
      mu_.Lock();
      // A failed start is not retried until a run asks again (credit_).
      if (instance.ok()) idle_.push_back(*std::move(instance));
    } else {
      std::vector<std::unique_ptr<Instance>> retired = std::move(retired_);
      retired_.clear();
      mu_.Unlock();
      retired.clear();  // reaps each
      mu_.Lock();
    }
    keeper_busy_ = false;
  }
}

bool Sandbox::Poolable(const SandboxRunSpec& spec) const {
  if (config_.warm_sandboxes <= 0 || !spec.writable_host_dir.empty() ||
      ScratchBytes(spec.limits.scratch_limit_bytes) != ScratchBytes(config_.warm_scratch_bytes)) {
    return false;
  }
  // The launcher writes the files into the /work tmpfs, where they count
  // against its size (cold runs bind them from outside): keep them small
  // next to it.
  for (const std::string& arg : spec.argv) {
    if (HasNul(arg)) return false;
  }
  for (const auto& [key, value] : spec.env) {
    if (HasNul(key) || HasNul(value)) return false;
  }
  int64_t bytes = 0;
  for (const SandboxFile& file : spec.files) {
    if (!IsWarmFilePath(file.path)) return false;
    bytes += static_cast<int64_t>(file.contents.size()) + 4096;
  }
  return bytes <= ScratchBytes(spec.limits.scratch_limit_bytes) / 4;
}

std::unique_ptr<Sandbox::Instance> Sandbox::TakeWarm() const {
  for (;;) {
    std::unique_ptr<Instance> instance;
    {
      absl::MutexLock lock(&mu_);
      // Each poolable run lets the keeper start one more, up to the pool size.
      credit_ = std::min(credit_ + 1, config_.warm_sandboxes);
      if (idle_.empty()) return nullptr;
      instance = std::move(idle_.front());
      idle_.pop_front();
    }
    // One killed while idle is torn down (its destructor) and skipped.
    if (instance->Alive()) return instance;
  }
}

std::vector<pid_t> Sandbox::IdleWarmSandboxesForTest() const {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](const Sandbox* s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return !s->keeper_busy_ && s->retired_.empty() &&
               (s->credit_ == 0 || static_cast<int>(s->idle_.size()) >= s->config_.warm_sandboxes);
      },
      this));
  std::vector<pid_t> pids;
  for (const std::unique_ptr<Instance>& instance : idle_) pids.push_back(instance->pid);
  return pids;
}

absl::StatusOr<SandboxRunOutcome> Sandbox::Run(const SandboxRunSpec& spec) const {
  if (spec.argv.empty()) return absl::InvalidArgumentError("sandbox: argv is empty");
  if (spec.files.size() > 32) return absl::InvalidArgumentError("sandbox: more than 32 files");

  if (Poolable(spec)) {
    while (std::unique_ptr<Instance> instance = TakeWarm()) {
      const Clock::time_point start = Clock::now();
      // A failure here means it died since TakeWarm looked: try the next.
      if (!SendJob(instance->control.get(), spec).ok()) continue;
      instance->control.Reset();
      bool launcher_silent = false;
      SandboxRunOutcome outcome =
          instance->Supervise(spec.limits, start, /*may_retire=*/true, &launcher_silent);
      // Died before it read the job (killed from outside): no program ran,
      // so running it elsewhere changes nothing.
      if (launcher_silent) continue;
      Retire(std::move(instance));
      outcome.warm = true;
      return outcome;
    }
  }

  const Clock::time_point start = Clock::now();
  absl::StatusOr<Fd> stdin_fd = MemFdWith("rlpost-stdin", spec.stdin_text);
  if (!stdin_fd.ok()) return stdin_fd.status();
  absl::StatusOr<Fd> seccomp_fd = MemFdWith("rlpost-seccomp", config_.seccomp_filter);
  if (!seccomp_fd.ok()) return seccomp_fd.status();
  absl::StatusOr<Fd> launcher_fd = MemFdWith("rlpost-launcher", config_.launcher_binary);
  if (!launcher_fd.ok()) return launcher_fd.status();
  std::vector<Fd> file_fds;
  std::vector<int> extra = {seccomp_fd->get(), launcher_fd->get()};
  for (const SandboxFile& file : spec.files) {
    absl::StatusOr<Fd> fd = MemFdWith("rlpost-file", file.contents);
    if (!fd.ok()) return fd.status();
    extra.push_back(fd->get());
    file_fds.push_back(*std::move(fd));
  }
  absl::StatusOr<std::unique_ptr<Instance>> instance =
      Instance::Start(BwrapArgs(&spec, spec.limits.scratch_limit_bytes), stdin_fd->get(), extra,
                      config_.host_id);
  if (!instance.ok()) return instance.status();
  // Drop our copies of what the child inherited before waiting on it.
  stdin_fd->Reset();
  seccomp_fd->Reset();
  launcher_fd->Reset();
  file_fds.clear();
  // Only a keeper thread can reap in the background.
  const bool may_retire = config_.warm_sandboxes > 0;
  bool launcher_silent = false;
  SandboxRunOutcome outcome =
      (*instance)->Supervise(spec.limits, start, may_retire, &launcher_silent);
  if (may_retire) Retire(*std::move(instance));
  return outcome;
}

void Sandbox::Retire(std::unique_ptr<Instance> instance) const {
  if (instance->pid <= 0) return;  // already reaped
  absl::MutexLock lock(&mu_);
  retired_.push_back(std::move(instance));
}

}  // namespace rlpost::code
