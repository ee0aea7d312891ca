#include "verifier/verifier_service.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"

namespace rlpost {

namespace {

constexpr char kMathKind[] = "math";

v1::VerdictStatus ToProtoStatus(MathVerdict::Status status) {
  switch (status) {
    case MathVerdict::Status::kOk: return v1::VERDICT_STATUS_OK;
    case MathVerdict::Status::kNoAnswer: return v1::VERDICT_STATUS_NO_ANSWER;
    case MathVerdict::Status::kError: return v1::VERDICT_STATUS_ERROR;
  }
  return v1::VERDICT_STATUS_ERROR;
}

}  // namespace

VerifierServiceImpl::VerifierServiceImpl(Options options) : options_(std::move(options)) {}

void VerifierServiceImpl::JudgeMath(const v1::VerifyItem& item, v1::Verdict* verdict) const {
  MathVerdict result = CheckMathAnswer(item.response(), item.reference(), options_.math);
  verdict->set_status(ToProtoStatus(result.status));
  verdict->set_correct(result.status == MathVerdict::Status::kOk && result.correct);
  verdict->set_score(verdict->correct() ? 1.0f : 0.0f);
  verdict->set_extracted(std::move(result.extracted));
  verdict->set_reason(std::move(result.reason));
}

absl::Status VerifierServiceImpl::VerifyBatch(const v1::VerifyRequest& request,
                                              v1::VerifyResponse* response,
                                              const std::function<bool()>& cancelled) {
  if (request.deadline_ms() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "deadline_ms must be >= 0 (0 = server default), got ", request.deadline_ms()));
  }
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
    verdict->set_id(item.id());
    verdict->set_verifier_version(kVerifierVersion);
    verdict->set_correct(false);
    verdict->set_score(0.0f);
    if (!out_of_time) {
      if (options_.now() >= deadline) {
        out_of_time = true;
        timeout_reason = absl::StrCat("batch deadline of ", absl::FormatDuration(budget),
                                      " passed before this item was checked");
      } else if (cancelled && cancelled()) {
        out_of_time = true;
        timeout_reason = "the call was cancelled (or its gRPC deadline passed) before this "
                         "item was checked";
      }
    }
    if (out_of_time) {
      verdict->set_status(v1::VERDICT_STATUS_TIMEOUT);
      verdict->set_reason(timeout_reason);
      continue;
    }
    if (item.kind().empty() || item.kind() == kMathKind) {
      JudgeMath(item, verdict);
      items_verified_.fetch_add(1, std::memory_order_relaxed);
    } else {
      verdict->set_status(v1::VERDICT_STATUS_ERROR);
      verdict->set_reason(absl::StrCat("unknown verifier kind '", item.kind(),
                                       "'; this server supports: ", kMathKind));
    }
  }
  return absl::OkStatus();
}

grpc::Status VerifierServiceImpl::Verify(grpc::ServerContext* context,
                                         const v1::VerifyRequest* request,
                                         v1::VerifyResponse* response) {
  // A client that has gone (or whose own deadline passed) needs no more
  // verdicts; the remaining items are marked TIMEOUT cheaply.
  auto cancelled = [context] { return context != nullptr && context->IsCancelled(); };
  return ToGrpcStatus(VerifyBatch(*request, response, cancelled));
}

grpc::Status VerifierServiceImpl::GetInfo(grpc::ServerContext* /*context*/,
                                          const v1::GetInfoRequest* /*request*/,
                                          v1::VerifierInfo* info) {
  info->set_verifier_version(kVerifierVersion);
  info->add_kinds(kMathKind);
  info->set_items_verified(items_verified());
  return grpc::Status::OK;
}

}  // namespace rlpost
