#pragma once
// `rlctl generate`: samples completions of one prompt from a running
// rlpost-rollout worker over Generate and prints each completion as it
// streams in (human-readable by default, one JSON object per line with
// --json), then a summary line with the speculative-decoding acceptance.
//
// Thread-compatible: RunGenerateCommand makes one streaming call on the
// caller's thread.

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tls.h"
#include "rlpost/v1/rollout.pb.h"

namespace rlpost {

// Runs `rlctl generate args...` (args excludes "generate"). Returns an rlctl
// exit status: kRlctlOk; kRlctlUsage for bad flags (the message names the
// flag); kRlctlRpcError when the worker refuses or fails the call (its
// message on `err`, e.g. a prompt longer than the context);
// kRlctlUnreachable when no worker answers at --addr.
int RunGenerateCommand(const std::vector<std::string>& args, std::ostream& out,
                       std::ostream& err);

// Options of one `rlctl generate` call.
struct GenerateFlags {
  bool help = false;  // --help or -h: print GenerateUsage() and do nothing else
  std::string addr;
  TlsFiles tls;  // --tls-*: call the worker over TLS
  bool json = false;
  double timeout_s = 600;
  v1::GenerateRequest request;
};

// Parses the flags into a GenerateRequest; kInvalidArgument naming the flag
// and the accepted range. `random_seed` is used when --seed is absent.
absl::StatusOr<GenerateFlags> ParseGenerateFlags(const std::vector<std::string>& args,
                                                 uint64_t random_seed);

// "stop", "length", "abort", "partial" ("unspecified" otherwise).
std::string FinishReasonWord(v1::FinishReason reason);

// One completion as a JSON object (no trailing newline): sample_index, text,
// token_ids, finish_reason, logprobs, weight_versions, drafted_tokens,
// accepted_tokens.
std::string FormatCompletionJson(const v1::Completion& completion);

// One completion as a human-readable line (no trailing newline):
// `[INDEX] REASON  N tokens  "TEXT"` with the text JSON-quoted.
std::string FormatCompletionLine(const v1::Completion& completion);

std::string GenerateUsage();

}  // namespace rlpost
