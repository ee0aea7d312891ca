#include "controller/arith_task.h"

#include <random>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/seed.h"

namespace rlpost {
namespace {

Split SplitOf(int64_t a, int64_t b) {
  // One pair in eight is held out.
  return (SplitMix64(static_cast<uint64_t>(a) * 1000003ull + static_cast<uint64_t>(b)) % 8 == 0)
             ? Split::kHeldout
             : Split::kTrain;
}

}  // namespace

std::string ArithPrompt(int64_t a, int64_t b) { return absl::StrCat(a, "+", b, "="); }

std::string ArithSolution(int64_t a, int64_t b) {
  std::string out;
  int64_t carry = 0;
  int64_t x = a, y = b;
  bool first = true;
  while (x > 0 || y > 0 || first) {
    int64_t da = x % 10, db = y % 10;
    int64_t sum = da + db + carry;
    if (!first) absl::StrAppend(&out, " ");
    absl::StrAppend(&out, da, "+", db);
    if (carry > 0) absl::StrAppend(&out, "+", carry);
    absl::StrAppend(&out, "=", sum, ",");
    carry = sum / 10;
    x /= 10;
    y /= 10;
    first = false;
  }
  absl::StrAppend(&out, " \\boxed{", a + b, "}");
  return out;
}

std::vector<Problem> GenerateArithProblems(uint64_t seed, int64_t count,
                                           int64_t max_operand, Split split) {
  std::mt19937_64 rng(SplitMix64(seed) ^ (split == Split::kTrain ? 0x7472ull : 0x686Full));
  std::uniform_int_distribution<int64_t> operand(0, max_operand);
  std::vector<Problem> out;
  std::set<std::pair<int64_t, int64_t>> seen;
  // The held-out split holds 1/8 of all pairs; stop if the space runs out.
  int64_t attempts = 0, max_attempts = count * 200 + 1000;
  while (static_cast<int64_t>(out.size()) < count && attempts++ < max_attempts) {
    int64_t a = operand(rng), b = operand(rng);
    if (SplitOf(a, b) != split || !seen.insert({a, b}).second) continue;
    Problem p;
    p.id = absl::StrCat(split == Split::kTrain ? "train-" : "heldout-", out.size());
    p.prompt = ArithPrompt(a, b);
    p.answer = absl::StrCat(a + b);
    p.solution = ArithSolution(a, b);
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace rlpost
