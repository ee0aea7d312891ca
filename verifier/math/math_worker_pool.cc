#include "verifier/math/math_worker_pool.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "verifier/math/symbolic_equivalence.h"

namespace rlpost {

namespace {

// Frames larger than this are a protocol error (requests carry at most the
// response tail and the reference, each capped by MathCheckOptions).
constexpr uint32_t kMaxFrameBytes = 16u << 20;
// The child's end of its socket pair, after dup2.
constexpr int kWorkerFd = 3;

// --- wire format: little helpers over a byte string

void PutU32(std::string* out, uint32_t v) { out->append(reinterpret_cast<const char*>(&v), 4); }
void PutU64(std::string* out, uint64_t v) { out->append(reinterpret_cast<const char*>(&v), 8); }
void PutString(std::string* out, const std::string& s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}

class Reader {
 public:
  explicit Reader(const std::string& data) : data_(data) {}
  bool U32(uint32_t* v) { return Raw(v, 4); }
  bool U64(uint64_t* v) { return Raw(v, 8); }
  bool String(std::string* s) {
    uint32_t n;
    if (!U32(&n) || data_.size() - pos_ < n) return false;
    s->assign(data_, pos_, n);
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == data_.size(); }

 private:
  bool Raw(void* v, size_t n) {
    if (data_.size() - pos_ < n) return false;
    std::memcpy(v, data_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  const std::string& data_;
  size_t pos_ = 0;
};

std::string EncodeRequest(const std::string& response, const std::string& reference,
                          const MathCheckOptions& options) {
  std::string out;
  PutString(&out, response);
  PutString(&out, reference);
  uint64_t tolerance_bits;
  std::memcpy(&tolerance_bits, &options.relative_tolerance, 8);
  PutU64(&out, tolerance_bits);
  PutU64(&out, options.max_response_bytes);
  PutU64(&out, options.max_reference_bytes);
  PutU32(&out, (options.fallback_to_last_number ? 1u : 0u) |
                   (options.debug_hang_for_test ? 2u : 0u));
  return out;
}

bool DecodeRequest(const std::string& data, std::string* response, std::string* reference,
                   MathCheckOptions* options) {
  Reader r(data);
  uint64_t tolerance_bits, max_response, max_reference;
  uint32_t flags;
  if (!r.String(response) || !r.String(reference) || !r.U64(&tolerance_bits) ||
      !r.U64(&max_response) || !r.U64(&max_reference) || !r.U32(&flags) || !r.done()) {
    return false;
  }
  std::memcpy(&options->relative_tolerance, &tolerance_bits, 8);
  options->max_response_bytes = max_response;
  options->max_reference_bytes = max_reference;
  options->fallback_to_last_number = (flags & 1u) != 0;
  options->debug_hang_for_test = (flags & 2u) != 0;
  return true;
}

std::string EncodeVerdict(const MathVerdict& v) {
  std::string out;
  PutU32(&out, static_cast<uint32_t>(v.status));
  PutU32(&out, v.correct ? 1u : 0u);
  PutString(&out, v.extracted);
  PutString(&out, v.reason);
  return out;
}

bool DecodeVerdict(const std::string& data, MathVerdict* v) {
  Reader r(data);
  uint32_t status, correct;
  if (!r.U32(&status) || !r.U32(&correct) || !r.String(&v->extracted) ||
      !r.String(&v->reason) || !r.done() ||
      status > static_cast<uint32_t>(MathVerdict::Status::kError)) {
    return false;
  }
  v->status = static_cast<MathVerdict::Status>(status);
  v->correct = correct != 0;
  return true;
}

// --- the worker side: blocking IO, no deadline (the pool enforces it)

bool ReadExactlyBlocking(int fd, char* buf, size_t n) {
  while (n > 0) {
    ssize_t got = read(fd, buf, n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    buf += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

bool WriteAllBlocking(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t put = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) return false;
    done += static_cast<size_t>(put);
  }
  return true;
}

[[noreturn]] void WorkerMain(int fd) {
  for (;;) {
    uint32_t size;
    if (!ReadExactlyBlocking(fd, reinterpret_cast<char*>(&size), 4) || size > kMaxFrameBytes) {
      _exit(0);  // the pool closed the socket (or spoke nonsense)
    }
    std::string payload(size, '\0');
    if (!ReadExactlyBlocking(fd, payload.data(), size)) _exit(0);
    std::string response, reference;
    MathCheckOptions options;
    MathVerdict verdict;
    if (!DecodeRequest(payload, &response, &reference, &options)) {
      verdict.status = MathVerdict::Status::kError;
      verdict.reason = "malformed request from the worker pool";
    } else {
      if (options.debug_hang_for_test) {
        for (;;) pause();  // stands in for a check that never finishes
      }
      verdict = CheckMathAnswer(response, reference, options);
    }
    std::string reply = EncodeVerdict(verdict);
    std::string frame;
    PutU32(&frame, static_cast<uint32_t>(reply.size()));
    frame += reply;
    if (!WriteAllBlocking(fd, frame)) _exit(0);
  }
}

// --- the pool side: every wait is bounded by `end`

int MillisUntil(absl::Time end) {
  absl::Duration left = end - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 1 << 30));
}

// kDeadlineExceeded when `end` passes, kUnavailable when the peer is gone.
absl::Status WaitFor(int fd, short events, absl::Time end) {
  for (;;) {
    pollfd p{fd, events, 0};
    int ready = poll(&p, 1, MillisUntil(end));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return absl::UnavailableError(absl::StrCat("poll: ", std::strerror(errno)));
    if (ready == 0) return absl::DeadlineExceededError("deadline exceeded");
    if (p.revents & events) return absl::OkStatus();
    return absl::UnavailableError("checker process died");
  }
}

absl::Status SendFrame(int fd, const std::string& payload, absl::Time end) {
  std::string frame;
  PutU32(&frame, static_cast<uint32_t>(payload.size()));
  frame += payload;
  size_t done = 0;
  while (done < frame.size()) {
    absl::Status ready = WaitFor(fd, POLLOUT, end);
    if (!ready.ok()) return ready;
    ssize_t put = send(fd, frame.data() + done, frame.size() - done,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (put < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (put <= 0) return absl::UnavailableError("checker process died");
    done += static_cast<size_t>(put);
  }
  return absl::OkStatus();
}

absl::Status ReceiveExactly(int fd, char* buf, size_t n, absl::Time end) {
  while (n > 0) {
    absl::Status ready = WaitFor(fd, POLLIN, end);
    if (!ready.ok()) return ready;
    ssize_t got = recv(fd, buf, n, MSG_DONTWAIT);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got <= 0) return absl::UnavailableError("checker process died");
    buf += got;
    n -= static_cast<size_t>(got);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReceiveFrame(int fd, absl::Time end) {
  uint32_t size;
  absl::Status s = ReceiveExactly(fd, reinterpret_cast<char*>(&size), 4, end);
  if (!s.ok()) return s;
  if (size > kMaxFrameBytes) return absl::UnavailableError("checker process sent a bad frame");
  std::string payload(size, '\0');
  s = ReceiveExactly(fd, payload.data(), size, end);
  if (!s.ok()) return s;
  return payload;
}

MathVerdict ErrorVerdict(std::string reason) {
  MathVerdict v;
  v.status = MathVerdict::Status::kError;
  v.reason = std::move(reason);
  return v;
}

}  // namespace

absl::StatusOr<MathWorkerPool::Worker> MathWorkerPool::SpawnWorker() {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return absl::UnavailableError(absl::StrCat("socketpair: ", std::strerror(errno)));
  }
  pid_t pid;
  {
    // GiNaC is serialised by this mutex; holding it across fork() means no
    // other thread is inside GiNaC, so the child inherits it unlocked (the
    // scope exit releases it in both processes).
    absl::MutexLock lock(&math_internal::SymbolicEngineMutex());
    pid = fork();
  }
  if (pid < 0) {
    int err = errno;
    close(sv[0]);
    close(sv[1]);
    return absl::UnavailableError(absl::StrCat("fork: ", std::strerror(err)));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGPIPE, SIG_IGN);
    if (dup2(sv[1], kWorkerFd) < 0) _exit(1);
    // Keep only stdio and our socket: the other workers' sockets must not
    // stay open in this process.
    if (close_range(kWorkerFd + 1, ~0U, 0) != 0) {
      for (int fd = kWorkerFd + 1; fd < 4096; ++fd) close(fd);
    }
    WorkerMain(kWorkerFd);
  }
  close(sv[1]);
  return Worker{pid, sv[0]};
}

void MathWorkerPool::KillWorker(const Worker& worker) {
  kill(worker.pid, SIGKILL);
  while (waitpid(worker.pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  close(worker.fd);
}

absl::StatusOr<std::unique_ptr<MathWorkerPool>> MathWorkerPool::Create(int workers) {
  if (workers < 1 || workers > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("MathWorkerPool needs 1..256 workers; got ", workers));
  }
  std::unique_ptr<MathWorkerPool> pool(new MathWorkerPool());
  for (int i = 0; i < workers; ++i) {
    absl::StatusOr<Worker> worker = SpawnWorker();
    if (!worker.ok()) return worker.status();  // ~MathWorkerPool reaps the others
    absl::MutexLock lock(&pool->mu_);
    pool->idle_.push_back(*worker);
  }
  return pool;
}

MathWorkerPool::~MathWorkerPool() {
  std::vector<Worker> workers;
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* busy) { return *busy == 0; }, &busy_));
    workers.swap(idle_);
  }
  for (const Worker& w : workers) KillWorker(w);
}

bool MathWorkerPool::HasIdleWorker() const { return !idle_.empty(); }

int64_t MathWorkerPool::workers_replaced() const {
  absl::MutexLock lock(&mu_);
  return replaced_;
}

int MathWorkerPool::live_workers() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(idle_.size()) + busy_;
}

absl::StatusOr<MathVerdict> MathWorkerPool::Check(const std::string& response,
                                                  const std::string& reference,
                                                  const MathCheckOptions& options,
                                                  absl::Duration deadline) {
  if (deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("deadline must be positive; got ", absl::FormatDuration(deadline)));
  }
  const absl::Time end = absl::Now() + deadline;
  Worker worker;
  {
    absl::MutexLock lock(&mu_);
    if (idle_.empty() && busy_ == 0) {
      return absl::UnavailableError("MathWorkerPool has no live workers (restarts failed)");
    }
    if (!mu_.AwaitWithDeadline(absl::Condition(this, &MathWorkerPool::HasIdleWorker), end)) {
      return ErrorVerdict("deadline exceeded (no free worker)");
    }
    worker = idle_.back();
    idle_.pop_back();
    ++busy_;
  }
  // Only the tail can matter (the extractor reads no further back), so a
  // huge response costs no copying into the worker.
  const std::string tail = response.size() > options.max_response_bytes
                               ? response.substr(response.size() - options.max_response_bytes)
                               : response;
  absl::Status sent = SendFrame(worker.fd, EncodeRequest(tail, reference, options), end);
  absl::StatusOr<std::string> reply = sent.ok() ? ReceiveFrame(worker.fd, end)
                                                : absl::StatusOr<std::string>(sent);
  MathVerdict verdict;
  bool healthy = reply.ok() && DecodeVerdict(*reply, &verdict);
  if (healthy) {
    absl::MutexLock lock(&mu_);
    idle_.push_back(worker);
    --busy_;
    return verdict;
  }
  const absl::Status failure =
      reply.ok() ? absl::UnavailableError("checker process sent a bad verdict") : reply.status();
  KillWorker(worker);
  absl::StatusOr<Worker> replacement = SpawnWorker();
  {
    absl::MutexLock lock(&mu_);
    --busy_;
    ++replaced_;
    if (replacement.ok()) idle_.push_back(*replacement);
  }
  if (failure.code() == absl::StatusCode::kDeadlineExceeded) {
    return ErrorVerdict("deadline exceeded");
  }
  return ErrorVerdict(std::string(failure.message()));
}

}  // namespace rlpost
