#include "verifier/verifier_service.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/grpc_util.h"

namespace rlpost {

namespace {

constexpr char kMathKind[] = "math";
constexpr char kCodeKind[] = "code";

v1::VerdictStatus ToProtoStatus(MathVerdict::Status status) {
  switch (status) {
    case MathVerdict::Status::kOk: return v1::VERDICT_STATUS_OK;
    case MathVerdict::Status::kNoAnswer: return v1::VERDICT_STATUS_NO_ANSWER;
    case MathVerdict::Status::kError: return v1::VERDICT_STATUS_ERROR;
  }
  return v1::VERDICT_STATUS_ERROR;
}

// The kind a checker answers to ("" means math), or nullopt when unknown.
std::optional<std::string> ResolveKind(const std::string& kind) {
  if (kind.empty() || kind == kMathKind) return std::string(kMathKind);
  if (kind == kCodeKind) return std::string(kCodeKind);
  return std::nullopt;
}

void SetError(v1::Verdict* verdict, std::string reason) {
  verdict->set_status(v1::VERDICT_STATUS_ERROR);
  verdict->set_verdict("error");
  verdict->set_correct(false);
  verdict->set_score(0.0f);
  verdict->set_reason(std::move(reason));
}

void SetTimeout(v1::Verdict* verdict, std::string reason) {
  verdict->set_status(v1::VERDICT_STATUS_TIMEOUT);
  verdict->set_verdict("timeout");
  verdict->set_correct(false);
  verdict->set_score(0.0f);
  verdict->set_reason(std::move(reason));
}

// Timeouts and server-side failures depend on load, not on the item; only
// the rest is cached.
bool Cacheable(const v1::Verdict& v) {
  if (v.status() == v1::VERDICT_STATUS_TIMEOUT) return false;
  const std::string& w = v.verdict();
  return w != "error" && w != "sandbox_error" && w != "time_limit" && w != "timeout";
}

// The state a VerifyStream call shares with its judge jobs: verdicts ready
// to write, how many accepted items still lack one, and whether the reader
// has finished.
struct StreamState {
  absl::Mutex mu;
  std::deque<v1::Verdict> outbox ABSL_GUARDED_BY(mu);
  int64_t pending ABSL_GUARDED_BY(mu) = 0;
  bool reader_done ABSL_GUARDED_BY(mu) = false;
  absl::Status reader_status ABSL_GUARDED_BY(mu);

  void Push(v1::Verdict v) {
    absl::MutexLock lock(&mu);
    outbox.push_back(std::move(v));
    --pending;
  }
};

}  // namespace

VerifierServiceImpl::VerifierServiceImpl(Options options)
    : options_(std::move(options)),
      pool_(options_.max_concurrency, options_.max_queue),
      cache_(options_.cache_capacity) {}

VerifierServiceImpl::~VerifierServiceImpl() { pool_.Shutdown(); }

MathVerdict VerifierServiceImpl::CheckMath(const std::string& response,
                                           const std::string& reference,
                                           absl::Time deadline) const {
  if (!options_.math_workers) return CheckMathAnswer(response, reference, options_.math);
  const absl::Duration remaining =
      std::max(deadline - options_.now(), absl::Milliseconds(1));
  absl::StatusOr<MathVerdict> result =
      options_.math_workers->Check(response, reference, options_.math, remaining);
  if (!result.ok()) {
    MathVerdict error;
    error.status = MathVerdict::Status::kError;
    error.reason = absl::StrCat("math worker pool: ", result.status().message());
    return error;
  }
  return *std::move(result);
}

void VerifierServiceImpl::JudgeMath(const v1::VerifyItem& item, absl::Time deadline,
                                    v1::Verdict* verdict) const {
  MathVerdict result;
  if (item.mode().empty() || item.mode() == "full_text") {
    result = CheckMath(item.response(), item.reference(), deadline);
  } else if (item.mode() == "answer_only") {
    // The response is the answer itself: box it so extraction takes all of
    // it, unless it is empty or cannot be boxed (unbalanced braces).
    int depth = 0;
    bool balanced = true;
    for (char c : item.response()) {
      depth += c == '{' ? 1 : c == '}' ? -1 : 0;
      if (depth < 0) balanced = false;
    }
    balanced = balanced && depth == 0;
    if (item.response().find_first_not_of(" \t\r\n") == std::string::npos) {
      result.status = MathVerdict::Status::kNoAnswer;
      result.reason = "answer_only: the response is empty";
    } else if (!balanced) {
      result.status = MathVerdict::Status::kOk;
      result.correct = false;
      result.extracted = NormalizeMathAnswer(item.response());
      result.reason = "answer_only: unbalanced braces in the answer";
    } else {
      result = CheckMath(absl::StrCat("\\boxed{", item.response(), "}"), item.reference(),
                         deadline);
    }
  } else {
    SetError(verdict, absl::StrCat("unknown math mode '", item.mode(),
                                   "'; use \"full_text\" or \"answer_only\""));
    return;
  }
  // The worker pool killed the check at the item's deadline.
  if (result.status == MathVerdict::Status::kError &&
      absl::StartsWith(result.reason, "deadline exceeded")) {
    SetTimeout(verdict, absl::StrCat("math check stopped at the item's deadline: ", result.reason));
    return;
  }
  verdict->set_status(ToProtoStatus(result.status));
  verdict->set_correct(result.status == MathVerdict::Status::kOk && result.correct);
  verdict->set_score(verdict->correct() ? 1.0f : 0.0f);
  verdict->set_extracted(std::move(result.extracted));
  verdict->set_reason(std::move(result.reason));
  switch (result.status) {
    case MathVerdict::Status::kOk: verdict->set_verdict(result.correct ? "correct" : "incorrect"); break;
    case MathVerdict::Status::kNoAnswer: verdict->set_verdict("no_answer"); break;
    case MathVerdict::Status::kError: verdict->set_verdict("error"); break;
  }
}

void VerifierServiceImpl::Finish(const std::string& kind_label, absl::Time arrival,
                                 v1::Verdict* verdict) {
  const absl::Duration latency = absl::Now() - arrival;
  verdict->set_latency_ms(absl::ToDoubleMilliseconds(latency));
  metrics_.RecordVerdict(kind_label, verdict->verdict(), latency);
}

v1::Verdict VerifierServiceImpl::JudgeItem(const v1::VerifyItem& item, absl::Time deadline,
                                           absl::Time arrival,
                                           const std::function<bool()>& cancelled) {
  v1::Verdict verdict;
  verdict.set_id(item.id());
  verdict.set_verifier_version(kVerifierVersion);
  verdict.set_correct(false);
  verdict.set_score(0.0f);
  const std::optional<std::string> kind = ResolveKind(item.kind());
  // Unknown kinds are client-chosen strings: one metrics label for all.
  const std::string label = kind.has_value() ? *kind : "unknown";
  if (options_.now() >= deadline) {
    SetTimeout(&verdict, "deadline passed before this item was checked");
    Finish(label, arrival, &verdict);
    return verdict;
  }
  if (cancelled && cancelled()) {
    SetTimeout(&verdict, "the call was cancelled (or its gRPC deadline passed) before this "
                         "item was checked");
    Finish(label, arrival, &verdict);
    return verdict;
  }
  if (!kind.has_value()) {
    SetError(&verdict, absl::StrCat("unknown verifier kind '", item.kind(),
                                    "'; this server supports: ", kMathKind,
                                    options_.code ? ", code" : ""));
    Finish(label, arrival, &verdict);
    return verdict;
  }
  const std::string version = *kind == kMathKind ? std::string(kMathVerifierVersion)
                              : options_.code   ? options_.code->version()
                                                : std::string(kVerifierVersion);
  verdict.set_verifier_version(version);
  const ResultCacheKey key = ResultCache::KeyOf(item, *kind, version);
  if (std::optional<v1::Verdict> hit = cache_.Lookup(key)) {
    hit->set_id(item.id());
    hit->set_cached(true);
    items_verified_.fetch_add(1, std::memory_order_relaxed);
    Finish(label, arrival, &*hit);
    return *std::move(hit);
  }
  if (options_.before_judge) options_.before_judge(item);
  if (*kind == kMathKind) {
    JudgeMath(item, deadline, &verdict);
    if (verdict.status() != v1::VERDICT_STATUS_TIMEOUT) {
      items_verified_.fetch_add(1, std::memory_order_relaxed);
    }
  } else {
    if (options_.code) {
      options_.code->Judge(item, &verdict);
      items_verified_.fetch_add(1, std::memory_order_relaxed);
    } else {
      SetError(&verdict, options_.code_unavailable);
    }
  }
  if (Cacheable(verdict)) cache_.Insert(key, verdict);
  Finish(label, arrival, &verdict);
  return verdict;
}

absl::Status VerifierServiceImpl::VerifyBatch(const v1::VerifyRequest& request,
                                              v1::VerifyResponse* response,
                                              const std::function<bool()>& cancelled) {
  if (request.deadline_ms() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "deadline_ms must be >= 0 (0 = server default), got ", request.deadline_ms()));
  }
  const absl::Time arrival = absl::Now();
  const absl::Duration budget = request.deadline_ms() == 0
                                    ? options_.default_deadline
                                    : absl::Milliseconds(request.deadline_ms());
  const absl::Time deadline = options_.now() + budget;

  response->set_verifier_version(kVerifierVersion);
  response->mutable_verdicts()->Reserve(request.items_size());
  // Once the deadline passes, every later item times out too (without
  // reading the clock again): verdicts stay a prefix of results followed by
  // a suffix of timeouts.
  bool out_of_time = false;
  std::string timeout_reason;
  for (const v1::VerifyItem& item : request.items()) {
    v1::Verdict* verdict = response->add_verdicts();
    if (!out_of_time) {
      *verdict = JudgeItem(item, deadline, arrival, cancelled);
      if (verdict->status() == v1::VERDICT_STATUS_TIMEOUT) {
        out_of_time = true;
        timeout_reason = cancelled && cancelled()
                             ? verdict->reason()
                             : absl::StrCat("batch deadline of ", absl::FormatDuration(budget),
                                            " passed before this item was checked");
        verdict->set_reason(timeout_reason);
      }
      continue;
    }
    verdict->set_id(item.id());
    verdict->set_verifier_version(kVerifierVersion);
    SetTimeout(verdict, timeout_reason);
    const std::optional<std::string> kind = ResolveKind(item.kind());
    Finish(kind.has_value() ? *kind : "unknown", arrival, verdict);
  }
  return absl::OkStatus();
}

grpc::Status VerifierServiceImpl::Verify(grpc::ServerContext* context,
                                         const v1::VerifyRequest* request,
                                         v1::VerifyResponse* response) {
  // A client that has gone (or whose own deadline passed) needs no more
  // verdicts; the remaining items are marked TIMEOUT cheaply.
  auto cancelled = [context] { return context != nullptr && context->IsCancelled(); };
  absl::Status status;
  absl::Notification done;
  absl::Status queued = pool_.Submit([&] {
    status = VerifyBatch(*request, response, cancelled);
    done.Notify();
  });
  if (!queued.ok()) {
    metrics_.RecordRejected();
    return ToGrpcStatus(queued);
  }
  done.WaitForNotification();
  return ToGrpcStatus(status);
}

grpc::Status VerifierServiceImpl::VerifyStream(
    grpc::ServerContext* context, grpc::ServerReaderWriter<v1::Verdict, v1::VerifyItem>* stream) {
  auto state = std::make_shared<StreamState>();
  auto cancelled = [context] { return context->IsCancelled(); };
  // This thread writes; a second one reads and queues, so verdicts go out
  // while items are still arriving. Sync-API streams allow one concurrent
  // reader and writer.
  std::thread reader([&, state] {
    v1::VerifyItem item;
    absl::Status status;
    while (stream->Read(&item)) {
      const absl::Time arrival = absl::Now();
      if (item.deadline_ms() < 0) {
        v1::Verdict v;
        v.set_id(item.id());
        v.set_verifier_version(kVerifierVersion);
        SetError(&v, absl::StrCat("deadline_ms must be >= 0 (0 = server default), got ",
                                  item.deadline_ms()));
        const std::optional<std::string> kind = ResolveKind(item.kind());
        Finish(kind.has_value() ? *kind : "unknown", arrival, &v);
        absl::MutexLock lock(&state->mu);
        state->outbox.push_back(std::move(v));
        continue;
      }
      const absl::Time deadline =
          options_.now() + (item.deadline_ms() == 0 ? options_.default_deadline
                                                    : absl::Milliseconds(item.deadline_ms()));
      {
        absl::MutexLock lock(&state->mu);
        ++state->pending;
      }
      status = pool_.Submit([this, state, item, deadline, arrival, cancelled] {
        state->Push(JudgeItem(item, deadline, arrival, cancelled));
      });
      if (!status.ok()) {
        metrics_.RecordRejected();
        absl::MutexLock lock(&state->mu);
        --state->pending;
        break;
      }
    }
    absl::MutexLock lock(&state->mu);
    state->reader_status = status;
    state->reader_done = true;
  });

  bool client_gone = false;
  while (true) {
    std::deque<v1::Verdict> ready;
    {
      absl::MutexLock lock(&state->mu);
      state->mu.Await(absl::Condition(
          +[](StreamState* s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return !s->outbox.empty() || (s->reader_done && s->pending == 0);
          },
          state.get()));
      if (state->outbox.empty()) break;
      ready.swap(state->outbox);
    }
    for (const v1::Verdict& v : ready) {
      // After a failed write the client is gone; keep draining so every job
      // has finished before this handler returns.
      if (!client_gone && !stream->Write(v)) client_gone = true;
    }
  }
  reader.join();
  absl::MutexLock lock(&state->mu);
  return ToGrpcStatus(state->reader_status);
}

grpc::Status VerifierServiceImpl::GetInfo(grpc::ServerContext* /*context*/,
                                          const v1::GetInfoRequest* /*request*/,
                                          v1::VerifierInfo* info) {
  info->set_verifier_version(kVerifierVersion);
  info->add_kinds(kMathKind);
  info->add_kind_versions(kMathVerifierVersion);
  if (options_.code) {
    info->add_kinds(kCodeKind);
    info->add_kind_versions(options_.code->version());
  }
  info->set_items_verified(items_verified());
  info->set_cache_hits(cache_.hits());
  return grpc::Status::OK;
}

std::string VerifierServiceImpl::RenderMetrics() const {
  VerifierGauges g;
  g.queue_depth = pool_.queue_depth();
  g.in_flight = pool_.in_flight();
  g.max_queue = pool_.max_queue();
  g.max_concurrency = pool_.max_concurrency();
  g.cache_hits = cache_.hits();
  g.cache_misses = cache_.misses();
  g.cache_entries = static_cast<int64_t>(cache_.size());
  return metrics_.RenderPrometheus(g);
}

}  // namespace rlpost
