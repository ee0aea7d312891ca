#include "common/subprocess.h"

#include <sched.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <fstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/ascii.h"

namespace rlpost {

Subprocess::~Subprocess() {
  if (pid_ > 0 && !reaped_) Stop(std::chrono::milliseconds(2000));
}

absl::Status Subprocess::Start(const std::vector<std::string>& argv,
                               const std::string& log_path) {
  return StartWithOutput(argv, log_path, log_path);
}

absl::Status Subprocess::StartWithOutput(const std::vector<std::string>& argv,
                                         const std::string& stdout_path,
                                         const std::string& stderr_path) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  cpu_set_t affinity;
  CPU_ZERO(&affinity);
  for (int cpu : cpus_) CPU_SET(cpu, &affinity);
  const bool pin = !cpus_.empty();
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);  // parent died before prctl
    // Signals blocked by the parent's signal watcher must not stay blocked.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    int out_fd = -1;
    if (!stdout_path.empty()) {
      out_fd = open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (out_fd >= 0) dup2(out_fd, STDOUT_FILENO);
    }
    if (!stderr_path.empty()) {
      int err_fd = stderr_path == stdout_path
                       ? out_fd
                       : open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (err_fd >= 0) dup2(err_fd, STDERR_FILENO);
      if (err_fd > STDERR_FILENO && err_fd != out_fd) close(err_fd);
    }
    if (out_fd > STDERR_FILENO) close(out_fd);
    if (pin && sched_setaffinity(0, sizeof(affinity), &affinity) != 0) _exit(126);
    execv(args[0], args.data());
    _exit(127);
  }
  pid_ = pid;
  reaped_ = false;
  return absl::OkStatus();
}

bool Subprocess::running() {
  if (pid_ <= 0 || reaped_) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  reaped_ = true;
  if (r == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return false;
}

void Subprocess::Signal(int sig) {
  if (running()) kill(pid_, sig);
}

bool Subprocess::Wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

int Subprocess::Stop(std::chrono::milliseconds grace) {
  if (!running()) return exit_code_;
  kill(pid_, SIGTERM);
  if (!Wait(grace)) {
    kill(pid_, SIGKILL);
    Wait(std::chrono::milliseconds(5000));
  }
  return exit_code_;
}

absl::StatusOr<int> WaitForPortFile(const std::string& path, Subprocess* child,
                                    const std::string& what,
                                    std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    std::ifstream in(path);
    if (in) {
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      int port = 0;
      if (!text.empty() && text.back() == '\n' &&
          absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &port) && port > 0) {
        return port;
      }
    }
    if (child != nullptr && !child->running()) {
      return absl::UnavailableError(absl::StrCat(what, " exited with status ",
                                                 child->exit_code(), " before listening"));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(what, " did not report its port within ", timeout.count(), " ms"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

absl::StatusOr<int> PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return absl::UnavailableError("cannot find a free port on 127.0.0.1");
  }
  close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

std::vector<int> AllowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

std::string ExecutableDir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  std::string path(buf, static_cast<size_t>(n));
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

}  // namespace rlpost
