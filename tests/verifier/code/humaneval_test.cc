// HumanEval through the code judge: every canonical solution must be
// accepted (judged from two threads at once, which also exercises concurrent
// Judge calls), and broken variants must get the right verdict.
// Needs $RLPOST_DATA_DIR/humaneval.jsonl; skips with a message without it.
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/verifier/code/judge_fixture.h"
#include "verifier/code/code_judge.h"

namespace rlpost::code {
namespace {

struct Problem {
  std::string task_id, prompt, canonical_solution, test, entry_point;
};

std::vector<Problem> LoadHumanEval(std::string* why_not) {
  const char* dir = std::getenv("RLPOST_DATA_DIR");
  if (dir == nullptr) {
    *why_not = "RLPOST_DATA_DIR is not set";
    return {};
  }
  const std::string path = absl::StrCat(dir, "/humaneval.jsonl");
  std::ifstream in(path);
  if (!in) {
    *why_not = absl::StrCat(path, " not found");
    return {};
  }
  std::vector<Problem> problems;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line);
    problems.push_back({j.at("task_id"), j.at("prompt"), j.at("canonical_solution"),
                        j.at("test"), j.at("entry_point")});
  }
  return problems;
}

CodeTask TaskFor(const Problem& p, const std::string& body) {
  CodeTask task;
  task.language = "python";
  task.code = p.prompt + body;
  task.test_code = p.test;
  task.entry_point = p.entry_point;
  task.limits.time_limit_s = 5;  // a few canonical solutions are brute force
  return task;
}

class HumanEvalTest : public JudgeFixture {
 protected:
  void SetUp() override {
    JudgeFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    std::string why_not;
    problems_ = LoadHumanEval(&why_not);
    if (problems_.empty()) GTEST_SKIP() << "HumanEval data unavailable: " << why_not;
  }
  const Problem& Find(const std::string& task_id) const {
    for (const Problem& p : problems_) {
      if (p.task_id == task_id) return p;
    }
    ADD_FAILURE() << task_id << " missing";
    return problems_.front();
  }
  std::vector<Problem> problems_;
};

TEST_F(HumanEvalTest, AllCanonicalSolutionsAccepted) {
  ASSERT_EQ(problems_.size(), 164u);
  std::vector<CodeResult> results(problems_.size());
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < problems_.size(); i = next++) {
      absl::StatusOr<CodeResult> r =
          judge().Judge(TaskFor(problems_[i], problems_[i].canonical_solution));
      if (r.ok()) {
        results[i] = *std::move(r);
      } else {
        results[i].detail = r.status().ToString();
      }
    }
  };
  std::thread a(worker), b(worker);
  a.join();
  b.join();
  int accepted = 0;
  for (size_t i = 0; i < problems_.size(); ++i) {
    if (results[i].verdict == CodeVerdict::kAccepted) {
      ++accepted;
    } else {
      ADD_FAILURE() << problems_[i].task_id << ": " << CodeVerdictName(results[i].verdict)
                    << ": " << results[i].detail;
    }
  }
  EXPECT_EQ(accepted, 164);
}

TEST_F(HumanEvalTest, BrokenVariantsRejectedWithTheRightVerdict) {
  struct Case {
    const char* task_id;
    std::string body;
    CodeVerdict want;
  } cases[] = {
      {"HumanEval/0", "    return None\n", CodeVerdict::kWrongAnswer},
      {"HumanEval/2", "    return None\n", CodeVerdict::kWrongAnswer},
      {"HumanEval/0", "    while True:\n        pass\n", CodeVerdict::kTimeLimit},
      {"HumanEval/4", "    raise RuntimeError('no')\n", CodeVerdict::kRuntimeError},
      {"HumanEval/13", "    return 1\n", CodeVerdict::kWrongAnswer},  // wrong constant (gcd)
      {"HumanEval/53", "    return x + y + 1\n", CodeVerdict::kWrongAnswer},
      {"HumanEval/53", "    return [0] * (10**9) \n", CodeVerdict::kMemoryLimit},
  };
  for (const Case& c : cases) {
    CodeTask task = TaskFor(Find(c.task_id), c.body);
    task.limits.time_limit_s = 1;
    CodeResult r = MustJudge(task);
    EXPECT_EQ(r.verdict, c.want) << c.task_id << " with body:\n"
                                 << c.body << "got " << CodeVerdictName(r.verdict) << ": "
                                 << r.detail;
    EXPECT_DOUBLE_EQ(r.score, 0) << c.task_id;
  }
}

}  // namespace
}  // namespace rlpost::code
