#pragma once
// The built-in task: deterministically generated addition problems whose
// reference solutions add column by column, right to left, with carries, and
// end in a \boxed{} answer. Small enough for a CPU-sized policy to learn, and
// verifiable by the math verifier like any other dataset.

#include <cstdint>
#include <string>
#include <vector>

namespace rlpost {

// One problem of any dataset (built-in or JSONL).
struct Problem {
  std::string id;
  std::string prompt;    // what the policy sees
  std::string answer;    // reference answer, answer-only
  std::string solution;  // worked solution for the SFT warm start (may be empty)
};

enum class Split { kTrain, kHeldout };

// Problems a+b with 0 <= a, b <= max_operand. The split is a pure function of
// (a, b): train and held-out never share a problem, whatever the seed and
// counts. Same seed, same problems in the same order.
std::vector<Problem> GenerateArithProblems(uint64_t seed, int64_t count,
                                           int64_t max_operand, Split split);

// The prompt and worked solution of a + b (exposed for tests).
std::string ArithPrompt(int64_t a, int64_t b);
std::string ArithSolution(int64_t a, int64_t b);

}  // namespace rlpost
