// CodeItemJudge over the sandboxed judge of verifier/code/.
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "verifier/code/code_judge.h"
#include "verifier/code_items.h"

namespace rlpost {

namespace {

class SandboxCodeItemJudge final : public CodeItemJudge {
 public:
  explicit SandboxCodeItemJudge(std::unique_ptr<code::CodeJudge> judge)
      : judge_(std::move(judge)) {}

  std::string version() const override { return code::kCodeVerifierVersion; }

  void Judge(const v1::VerifyItem& item, v1::Verdict* verdict) const override {
    const v1::CodeItem& in = item.code();
    code::CodeTask task;
    task.language = in.language();
    task.code = in.code();
    for (const v1::CodeTest& t : in.tests()) task.tests.push_back({t.stdin(), t.expected_stdout()});
    if (!in.compare().empty()) task.compare = in.compare();
    task.test_code = in.test_code();
    task.entry_point = in.entry_point();
    // Zero means "the judge's default" for every limit.
    const v1::CodeLimits& limits = in.limits();
    if (limits.time_limit_s() > 0) task.limits.time_limit_s = limits.time_limit_s();
    if (limits.memory_limit_mb() > 0) task.limits.memory_limit_mb = limits.memory_limit_mb();
    if (limits.output_limit_bytes() > 0) {
      task.limits.output_limit_bytes = limits.output_limit_bytes();
    }
    if (limits.max_processes() > 0) task.limits.max_processes = limits.max_processes();

    absl::StatusOr<code::CodeResult> result = judge_->Judge(task);
    if (!result.ok()) {
      verdict->set_status(v1::VERDICT_STATUS_ERROR);
      verdict->set_verdict("error");
      verdict->set_correct(false);
      verdict->set_score(0.0f);
      verdict->set_reason(std::string(result.status().message()));
      return;
    }
    const bool accepted = result->verdict == code::CodeVerdict::kAccepted;
    verdict->set_status(result->verdict == code::CodeVerdict::kSandboxError
                            ? v1::VERDICT_STATUS_ERROR
                            : v1::VERDICT_STATUS_OK);
    verdict->set_verdict(code::CodeVerdictName(result->verdict));
    verdict->set_correct(accepted);
    verdict->set_score(static_cast<float>(result->score));
    verdict->set_reason(result->detail);
    for (size_t i = 0; i < result->tests.size(); ++i) {
      v1::TestResult* t = verdict->add_tests();
      t->set_index(static_cast<int32_t>(i));
      t->set_verdict(code::CodeVerdictName(result->tests[i].verdict));
      t->set_time_s(result->tests[i].cpu_s);
      t->set_detail(result->tests[i].detail);
    }
  }

 private:
  const std::unique_ptr<code::CodeJudge> judge_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CodeItemJudge>> CodeItemJudge::CreateDefault(int warm_sandboxes) {
  code::CodeJudgeOptions options;
  if (warm_sandboxes >= 0) options.warm_sandboxes = warm_sandboxes;
  absl::StatusOr<std::unique_ptr<code::CodeJudge>> judge = code::CodeJudge::Create(options);
  if (!judge.ok()) {
    return absl::Status(judge.status().code(),
                        absl::StrCat("code verifier unavailable: ", judge.status().message()));
  }
  return std::unique_ptr<CodeItemJudge>(new SandboxCodeItemJudge(*std::move(judge)));
}

}  // namespace rlpost
