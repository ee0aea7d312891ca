// rlpost-sandbox-exec: the first program bwrap starts inside a code-judge
// sandbox. It applies the resource limits, runs the judged program as its
// child and reports how it ended. Limits set here bind only the sandbox
// (RLIMIT_NPROC in particular counts processes in the sandbox's own user
// namespace, not the host user's).
//
//   rlpost-sandbox-exec STATUS_FD CPU_S AS_BYTES NPROC FSIZE_BYTES NOFILE -- PROG ARGS...
//   rlpost-sandbox-exec --job STATUS_FD CONTROL_FD
//
// On STATUS_FD (close-on-exec, so the judged program never holds it) it
// writes "R" once the limits are in place, then "X <wait status> <user us>
// <system us>\n" from wait4() when the program ends, and "D" once every
// process the program left behind is dead too (it is their subreaper);
// "E<reason>" if the program could not be started. bwrap itself reports only a shell-style exit
// code and does not reap its init, so this is where the exact status and the
// CPU time come from. The judge treats a missing "R" or an "E" as a sandbox
// failure rather than the program's. Plain libc on purpose: it runs under the
// program's limits and seccomp filter.
//
// The --job form is a warm sandbox (sandbox.h): bwrap has already built the
// namespaces, mounts and seccomp filter before the program is known, and the
// launcher writes "W" on STATUS_FD and blocks on the unix socket CONTROL_FD
// for its one job. The judge
// sends a single message carrying descriptors (SCM_RIGHTS): a memfd with the
// job as NUL-terminated words
//
//   CPU_S AS_BYTES NPROC FSIZE_BYTES NOFILE NENV (KEY VALUE)* NFILES (PATH MODE)* -- PROG ARGS...
//
// then a memfd for stdin and one memfd per file. The launcher writes the
// files into the sandbox's tmpfs /work with the requested mode, sets the
// environment, makes the stdin memfd its descriptor 0 and continues exactly
// like the first form. Any failure before the program starts is an "E".

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
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

// Writes "E<what>: <strerror>" on the status descriptor; returns 126.
int Fail(int status_fd, const char* what) {
  char message[512];
  snprintf(message, sizeof(message), "E%s: %s\n", what, strerror(errno));
  WriteAll(status_fd, message);
  return 126;
}

// ARGS = STATUS_FD CPU_S AS_BYTES NPROC FSIZE NOFILE -- PROG ARGS... (argv
// without argv[0]; null-terminated).
int RunProgram(int argc, char** args) {
  unsigned long long ready_fd, cpu_s, as_bytes, nproc, fsize, nofile;
  if (argc < 8 || strcmp(args[6], "--") != 0 || !ParseU64(args[0], &ready_fd) ||
      !ParseU64(args[1], &cpu_s) || !ParseU64(args[2], &as_bytes) ||
      !ParseU64(args[3], &nproc) || !ParseU64(args[4], &fsize) || !ParseU64(args[5], &nofile)) {
    WriteAll(2, "rlpost-sandbox-exec: usage: READY_FD CPU_S AS_BYTES NPROC FSIZE NOFILE -- PROG...\n"
                "   or: rlpost-sandbox-exec --job STATUS_FD CONTROL_FD\n");
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
  if (!ok) return Fail(fd, "setting limits failed");
  // Orphans of the program are re-parented to us rather than to bwrap's
  // init, so that we can reap them below.
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) return Fail(fd, "PR_SET_CHILD_SUBREAPER failed");
  WriteAll(fd, "R");
  const pid_t child = fork();
  if (child < 0) return Fail(fd, "fork failed");
  if (child == 0) {
    execv(args[7], args + 7);
    char message[512];
    snprintf(message, sizeof(message), "Eexec %s failed: %s\n", args[7], strerror(errno));
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
  // Whatever the program left behind (background children, setsid
  // daemons) is now our child or a descendant of one: kill everything we
  // can see (pid 1, bwrap's init, is exempt) until no child is left, then
  // say "D". The judge may then return without waiting for the namespace to
  // be torn down, since no process of the program is left in it.
  for (;;) {
    kill(-1, SIGKILL);
    if (waitpid(-1, nullptr, 0) < 0 && errno == ECHILD) break;
  }
  WriteAll(fd, "D");
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

// Reads all of memfd `fd` into a new NUL-terminated buffer; null on error.
char* ReadAll(int fd, size_t* size) {
  struct stat st;
  if (fstat(fd, &st) != 0) return nullptr;
  if (st.st_size < 0 || st.st_size > (1 << 24)) {
    errno = EFBIG;
    return nullptr;
  }
  const size_t total = static_cast<size_t>(st.st_size);
  char* data = static_cast<char*>(malloc(total + 1));
  if (data == nullptr) return nullptr;
  size_t done = 0;
  while (done < total) {
    const ssize_t n = pread(fd, data + done, total - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      free(data);
      if (n == 0) errno = EIO;
      return nullptr;
    }
    done += static_cast<size_t>(n);
  }
  data[total] = '\0';
  *size = total;
  return data;
}

// Copies memfd `from` into a new file `path` (under the tmpfs /work) with
// `mode`. O_EXCL | O_NOFOLLOW: the file is new, never an existing link.
bool PlaceFile(int from, const char* path, mode_t mode) {
  const int to = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (to < 0) return false;
  char buffer[65536];
  off_t at = 0;
  bool ok = true;
  for (;;) {
    ssize_t n = pread(from, buffer, sizeof(buffer), at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = n == 0;
      break;
    }
    at += n;
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = write(to, buffer + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        ok = false;
        break;
      }
      done += w;
    }
    if (!ok) break;
  }
  if (ok) ok = fchmod(to, mode) == 0;
  const int saved = errno;
  close(to);
  errno = saved;
  return ok;
}

// The --job form: waits for the job on `control`, prepares the sandbox for
// it and runs it like the first form.
int RunJob(int status_fd, int control) {
  if (fcntl(status_fd, F_SETFD, FD_CLOEXEC) != 0 || fcntl(control, F_SETFD, FD_CLOEXEC) != 0) {
    return Fail(status_fd, "warm sandbox: fcntl failed");
  }
  // Up and waiting: the judge pools a warm sandbox only after this.
  WriteAll(status_fd, "W");
  constexpr int kMaxFds = 40;  // job, stdin and up to 32 files (Sandbox::Run checks)
  char byte = 0;
  struct iovec iov = {&byte, 1};
  alignas(struct cmsghdr) char control_buffer[CMSG_SPACE(sizeof(int) * kMaxFds)];
  struct msghdr message;
  memset(&message, 0, sizeof(message));
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control_buffer;
  message.msg_controllen = sizeof(control_buffer);
  ssize_t n;
  while ((n = recvmsg(control, &message, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  // The judge closed its end without a job (it is shutting down): nothing
  // to report.
  if (n <= 0) return 126;
  close(control);
  int fds[kMaxFds];
  int nfds = 0;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count && nfds < kMaxFds; ++i) {
      memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
  }
  errno = EPROTO;
  if ((message.msg_flags & MSG_CTRUNC) != 0 || nfds < 2) {
    return Fail(status_fd, "warm sandbox: malformed job message");
  }
  size_t size = 0;
  char* job = ReadAll(fds[0], &size);
  if (job == nullptr) return Fail(status_fd, "warm sandbox: reading the job");
  // Split into words (each NUL-terminated); the buffer lives until exit.
  size_t nwords = 0;
  for (size_t i = 0; i < size; ++i) nwords += job[i] == '\0';
  char** words = static_cast<char**>(calloc(nwords + 1, sizeof(char*)));
  if (words == nullptr) return Fail(status_fd, "warm sandbox: out of memory");
  for (size_t i = 0, at = 0; i < nwords; ++i) {
    words[i] = job + at;
    at += strlen(job + at) + 1;
  }
  errno = EPROTO;
  size_t w = 5;  // NENV, after CPU_S .. NOFILE
  unsigned long long count = 0;
  if (nwords <= w || !ParseU64(words[w], &count) || count > nwords) {
    return Fail(status_fd, "warm sandbox: malformed job");
  }
  for (unsigned long long i = 0; i < count; ++i, w += 2) {
    if (w + 2 >= nwords || setenv(words[w + 1], words[w + 2], 1) != 0) {
      return Fail(status_fd, "warm sandbox: setting the environment failed");
    }
  }
  ++w;  // NFILES
  errno = EPROTO;
  if (w >= nwords || !ParseU64(words[w], &count) || count != static_cast<unsigned>(nfds - 2)) {
    return Fail(status_fd, "warm sandbox: malformed job files");
  }
  for (unsigned long long i = 0; i < count; ++i, w += 2) {
    errno = EPROTO;
    if (w + 2 >= nwords) return Fail(status_fd, "warm sandbox: malformed job files");
    char* end = nullptr;
    const unsigned long long mode = strtoull(words[w + 2], &end, 8);
    if (*end != '\0' || mode > 07777) return Fail(status_fd, "warm sandbox: malformed file mode");
    // Written before the rlimits apply: RLIMIT_FSIZE is for the program, and
    // the cold path's read-only binds are not subject to it either.
    if (!PlaceFile(fds[2 + i], words[w + 1], static_cast<mode_t>(mode))) {
      char what[300];
      snprintf(what, sizeof(what), "warm sandbox: writing %s failed", words[w + 1]);
      return Fail(status_fd, what);
    }
  }
  if (dup2(fds[1], 0) != 0) return Fail(status_fd, "warm sandbox: dup2 of stdin failed");
  for (int i = 0; i < nfds; ++i) close(fds[i]);
  // The rest is the first form's argument list: STATUS_FD, the five limits,
  // then "--" and the program (words[w + 1] onwards).
  char status_text[32];
  snprintf(status_text, sizeof(status_text), "%d", status_fd);
  char** args = static_cast<char**>(calloc(nwords + 2, sizeof(char*)));
  if (args == nullptr) return Fail(status_fd, "warm sandbox: out of memory");
  size_t nargs = 0;
  args[nargs++] = status_text;
  for (size_t i = 0; i < 5; ++i) args[nargs++] = words[i];
  for (size_t i = w + 1; i < nwords; ++i) args[nargs++] = words[i];
  args[nargs] = nullptr;
  return RunProgram(static_cast<int>(nargs), args);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && strcmp(argv[1], "--job") == 0) {
    unsigned long long status_fd, control;
    if (!ParseU64(argv[2], &status_fd) || !ParseU64(argv[3], &control)) {
      WriteAll(2, "rlpost-sandbox-exec: usage: --job STATUS_FD CONTROL_FD\n");
      return 126;
    }
    return RunJob(static_cast<int>(status_fd), static_cast<int>(control));
  }
  return RunProgram(argc - 1, argv + 1);
}
