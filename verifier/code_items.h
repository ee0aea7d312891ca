#pragma once
// CodeItemJudge: the service's bridge to the code judge (verifier/code/). It
// turns a VerifyItem of kind "code" into a judge task and the result into a
// Verdict (verdict word, score, per-test results). The service holds one,
// or none when the build lacks the judge or the sandbox does not work here;
// then code items get an `error` verdict with the reason. Tests pass fakes.
//
// Thread-safety: Judge may be called concurrently from any thread.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "rlpost/v1/verifier.pb.h"

namespace rlpost {

class CodeItemJudge {
 public:
  virtual ~CodeItemJudge() = default;

  // The sandboxed judge of verifier/code/, keeping `warm_sandboxes`
  // sandboxes started ahead of runs (CodeJudgeOptions::warm_sandboxes; -1:
  // the judge's default). kUnimplemented when this build has none ("code
  // verifier not built"); otherwise the sandbox self-check's error (missing
  // bwrap, no user namespaces, ...).
  static absl::StatusOr<std::unique_ptr<CodeItemJudge>> CreateDefault(int warm_sandboxes = -1);

  // Recorded in every verdict it produces.
  virtual std::string version() const = 0;
  // Judges `item` (kind "code") into `verdict`: status, verdict word,
  // correct, score, reason, tests. Never fails: a malformed item is an
  // `error` verdict naming the problem.
  virtual void Judge(const v1::VerifyItem& item, v1::Verdict* verdict) const = 0;
};

}  // namespace rlpost
