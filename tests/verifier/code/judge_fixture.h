#pragma once
// A gtest fixture that owns one CodeJudge for the whole suite. Where bwrap
// cannot create a sandbox on this machine (no user namespaces) the tests
// skip with the reason, unless RLPOST_REQUIRE_SANDBOX=1 makes that a failure.

#include <cstdlib>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "verifier/code/code_judge.h"

namespace rlpost::code {

class JudgeFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { CreateJudge(CodeJudgeOptions{}); }
  static void CreateJudge(const CodeJudgeOptions& options) {
    absl::StatusOr<std::unique_ptr<CodeJudge>> judge = CodeJudge::Create(options);
    if (judge.ok()) {
      judge_ = std::move(judge).value().release();
    } else {
      create_error_ = new std::string(judge.status().ToString());
    }
  }
  static void TearDownTestSuite() {
    delete judge_;
    judge_ = nullptr;
    delete create_error_;
    create_error_ = nullptr;
  }
  void SetUp() override {
    if (judge_ != nullptr) return;
    const char* require = std::getenv("RLPOST_REQUIRE_SANDBOX");
    if (require != nullptr && std::string(require) == "1") {
      FAIL() << "no sandbox: " << *create_error_;
    }
    GTEST_SKIP() << "bubblewrap sandbox unavailable here: " << *create_error_;
  }

  static const CodeJudge& judge() { return *judge_; }

  static CodeResult MustJudge(const CodeTask& task) {
    absl::StatusOr<CodeResult> result = judge_->Judge(task);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *std::move(result) : CodeResult{};
  }

 private:
  static inline CodeJudge* judge_ = nullptr;
  static inline std::string* create_error_ = nullptr;
};

}  // namespace rlpost::code
