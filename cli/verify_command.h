#pragma once
// `rlctl verify`: judges a JSONL file of math and code items with a running
// rlpost-verifier over VerifyStream, writing one JSON verdict per input
// line, in input order. Malformed lines get an `error` verdict naming the
// line and the problem; the other lines are still judged.
//
// Thread-compatible: RunVerifyCommand uses two threads internally (one sends
// items, the caller's thread receives verdicts) and joins them before
// returning.

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rlpost/v1/verifier.pb.h"

namespace rlpost {

// Runs `rlctl verify args...` (args excludes "verify"). Returns an rlctl exit
// status (kRlctlOk even when some verdicts are errors; kRlctlUsage for bad
// flags or an unreadable input; kRlctlUnreachable when no verifier answers;
// kRlctlRpcError when the stream fails part way, e.g. RESOURCE_EXHAUSTED).
int RunVerifyCommand(const std::vector<std::string>& args, std::ostream& out,
                     std::ostream& err);

// One input line as a VerifyItem; kInvalidArgument naming the line number
// and what is wrong. `line_number` is 1-based.
absl::StatusOr<v1::VerifyItem> ParseVerifyLine(const std::string& line, int line_number);

// The output line for a verdict: {"id", "verdict", "score", "detail",
// "latency_ms"} (no trailing newline).
std::string FormatVerdictLine(const std::string& id, const v1::Verdict& verdict);

std::string VerifyUsage();

}  // namespace rlpost
