// rlpost-sandbox-exec: the first program bwrap starts inside a code-judge
// sandbox. It applies the resource limits, runs the judged program as its
// child and reports how it ended. Limits set here bind only the sandbox
// (RLIMIT_NPROC in particular counts processes in the sandbox's own user
// namespace, not the host user's).
//
//   rlpost-sandbox-exec STATUS_FD CPU_S AS_BYTES NPROC FSIZE_BYTES NOFILE -- PROG ARGS...
//
// On STATUS_FD (close-on-exec, so the judged program never holds it) it
// writes "R" once the limits are in place, then "X <wait status> <user us>
// <system us>\n" from wait4() when the program ends; "E<reason>" if the
// program could not be started. bwrap itself reports only a shell-style exit
// code and does not reap its init, so this is where the exact status and the
// CPU time come from. The judge treats a missing "R" or an "E" as a sandbox
// failure rather than the program's. Plain libc on purpose: it runs under the
// program's limits and seccomp filter.

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

bool ParseU64(const char* text, unsigned long long* out) {
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long value = strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = value;
  return true;
}

bool SetLimit(int resource, rlim_t soft, rlim_t hard) {
  struct rlimit limit;
  limit.rlim_cur = soft;
  limit.rlim_max = hard;
  return setrlimit(resource, &limit) == 0;
}

void WriteAll(int fd, const char* text) {
  size_t left = strlen(text);
  while (left > 0) {
    ssize_t n = write(fd, text, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    text += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace

int main(int argc, char** argv) {
  unsigned long long ready_fd, cpu_s, as_bytes, nproc, fsize, nofile;
  if (argc < 9 || strcmp(argv[7], "--") != 0 || !ParseU64(argv[1], &ready_fd) ||
      !ParseU64(argv[2], &cpu_s) || !ParseU64(argv[3], &as_bytes) ||
      !ParseU64(argv[4], &nproc) || !ParseU64(argv[5], &fsize) || !ParseU64(argv[6], &nofile)) {
    WriteAll(2, "rlpost-sandbox-exec: usage: READY_FD CPU_S AS_BYTES NPROC FSIZE NOFILE -- PROG...\n");
    return 126;
  }
  const int fd = static_cast<int>(ready_fd);
  // SIGXCPU at the soft limit, SIGKILL one second later if it is ignored.
  const bool ok = SetLimit(RLIMIT_CPU, cpu_s, cpu_s + 1) &&
                  SetLimit(RLIMIT_AS, as_bytes, as_bytes) &&
                  SetLimit(RLIMIT_NPROC, nproc, nproc) &&
                  SetLimit(RLIMIT_FSIZE, fsize, fsize) &&
                  SetLimit(RLIMIT_NOFILE, nofile, nofile) && SetLimit(RLIMIT_CORE, 0, 0) &&
                  fcntl(fd, F_SETFD, FD_CLOEXEC) == 0;
  if (!ok) {
    char message[256];
    snprintf(message, sizeof(message), "Esetting limits failed: %s\n", strerror(errno));
    WriteAll(fd, message);
    return 126;
  }
  WriteAll(fd, "R");
  const pid_t child = fork();
  if (child < 0) {
    char message[256];
    snprintf(message, sizeof(message), "Efork failed: %s\n", strerror(errno));
    WriteAll(fd, message);
    return 126;
  }
  if (child == 0) {
    execv(argv[8], argv + 8);
    char message[512];
    snprintf(message, sizeof(message), "Eexec %s failed: %s\n", argv[8], strerror(errno));
    WriteAll(fd, message);
    _exit(127);
  }
  // The program may signal its whole process group or -1; only SIGKILL can
  // stop this report, and then the judge falls back to bwrap's exit code.
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXCPU, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN);
  int status = 0;
  struct rusage usage;
  memset(&usage, 0, sizeof(usage));
  while (wait4(child, &status, 0, &usage) < 0) {
    if (errno != EINTR) return 126;
  }
  char report[128];
  snprintf(report, sizeof(report), "X %d %lld %lld\n", status,
           static_cast<long long>(usage.ru_utime.tv_sec) * 1000000 + usage.ru_utime.tv_usec,
           static_cast<long long>(usage.ru_stime.tv_sec) * 1000000 + usage.ru_stime.tv_usec);
  WriteAll(fd, report);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}
