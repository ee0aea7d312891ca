#include "bench/verifier_bench.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "verifier/math/math_checker.h"
#ifdef RLPOST_BENCH_HAS_CODE_JUDGE
#include "verifier/code/code_judge.h"
#endif

extern char** environ;

namespace rlpost::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::vector<nlohmann::json> ReadJsonl(const std::string& path) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json row = nlohmann::json::parse(line, nullptr, false);
    if (!row.is_discarded()) rows.push_back(std::move(row));
  }
  return rows;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

struct MathResult {
  int pairs = 0;
  int correct = 0;
  int errors = 0;  // kError verdicts (none expected on this data)
  double pairs_per_sec = 0;
  double p50_ms = 0;
  double p99_ms = 0;
};

// Each solution against its own gold answer, or (`shifted`) against the next
// problem's: the common case in RL, where most responses are wrong and the
// later comparison stages (symbolic) run more often.
MathResult BenchMath(const std::vector<nlohmann::json>& rows, int repetitions, bool shifted) {
  std::vector<std::string> solutions, golds;
  for (const nlohmann::json& r : rows) {
    if (r.contains("solution") && r.contains("answer")) {
      solutions.push_back(r["solution"].get<std::string>());
      golds.push_back(r["answer"].get<std::string>());
    }
  }
  std::vector<std::pair<std::string, std::string>> pairs;
  for (size_t i = 0; i < solutions.size(); ++i) {
    pairs.emplace_back(solutions[i], golds[shifted ? (i + 1) % golds.size() : i]);
  }
  MathResult result;
  result.pairs = static_cast<int>(pairs.size());
  for (const auto& [solution, gold] : pairs) {  // warm-up pass, and the accuracy
    if (CheckMathAnswer(solution, gold).correct) ++result.correct;
  }
  std::vector<double> latencies_ms;
  latencies_ms.reserve(pairs.size() * repetitions);
  const Clock::time_point start = Clock::now();
  for (int rep = 0; rep < repetitions; ++rep) {
    for (const auto& [solution, gold] : pairs) {
      const Clock::time_point t0 = Clock::now();
      MathVerdict v = CheckMathAnswer(solution, gold);
      latencies_ms.push_back(Seconds(Clock::now() - t0) * 1e3);
      if (rep == 0 && v.status == MathVerdict::Status::kError) ++result.errors;
    }
  }
  const double total = Seconds(Clock::now() - start);
  result.pairs_per_sec = total > 0 ? static_cast<double>(latencies_ms.size()) / total : 0;
  result.p50_ms = Percentile(latencies_ms, 0.50);
  result.p99_ms = Percentile(latencies_ms, 0.99);
  return result;
}

// Runs `python3 path` with stdout/stderr to /dev/null; true on exit 0.
bool RunPlainPython(const std::string& python, const std::string& path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  std::vector<std::string> argv_s = {python, path};
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, python.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return false;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

struct CodeResult {
  bool available = false;
  std::string missing;
  int programs = 0;
  int accepted = 0;
  int plain_passed = 0;
  double sandbox_s = 0;
  double plain_s = 0;
  int warm_sandboxes = 0;
};

CodeResult BenchCode(const std::vector<nlohmann::json>& rows, int limit, int warm_sandboxes) {
  CodeResult result;
#ifndef RLPOST_BENCH_HAS_CODE_JUDGE
  (void)rows;
  (void)limit;
  (void)warm_sandboxes;
  result.missing = "code judge not built (verifier/code/ absent)";
  return result;
#else
  code::CodeJudgeOptions options;
  if (warm_sandboxes >= 0) options.warm_sandboxes = warm_sandboxes;
  auto judge = code::CodeJudge::Create(options);
  if (!judge.ok()) {
    result.missing = std::string(judge.status().message());
    return result;
  }
  result.available = true;
  result.warm_sandboxes = (*judge)->options().warm_sandboxes;
  const std::string python = (*judge)->options().python_path;
  const std::string dir = std::filesystem::temp_directory_path() /
                          absl::StrCat("rlpost_verifier_bench_", getpid());
  std::filesystem::create_directories(dir);
  // Interleaved, one program at a time: both runs see the same machine load.
  for (const nlohmann::json& r : rows) {
    if (result.programs >= limit) break;
    code::CodeTask task;
    task.language = "python";
    task.code = r["prompt"].get<std::string>() + r["canonical_solution"].get<std::string>();
    task.test_code = r["test"].get<std::string>();
    task.entry_point = r["entry_point"].get<std::string>();
    // Exactly the program the judge assembles.
    const std::string program = absl::StrCat(task.code, "\n\n", task.test_code, "\n\ncheck(",
                                             task.entry_point, ")\n");
    const std::string path = absl::StrCat(dir, "/p", result.programs, ".py");
    std::ofstream(path) << program;

    Clock::time_point t0 = Clock::now();
    auto verdict = (*judge)->Judge(task);
    result.sandbox_s += Seconds(Clock::now() - t0);
    if (verdict.ok() && verdict->verdict == code::CodeVerdict::kAccepted) ++result.accepted;

    t0 = Clock::now();
    if (RunPlainPython(python, path)) ++result.plain_passed;
    result.plain_s += Seconds(Clock::now() - t0);
    ++result.programs;
  }
  std::filesystem::remove_all(dir);
  return result;
#endif
}

std::string DefaultDataDir() {
  if (const char* env = std::getenv("RLPOST_DATA_DIR"); env != nullptr && *env != '\0') {
    return env;
  }
  return std::string(RLPOST_BENCH_SOURCE_DIR) + "/../shared/data";
}

}  // namespace

int RunVerifierBench(const std::vector<std::string>& args) {
  bool json = false, quick = false;
  int warm_sandboxes = -1;  // the judge's default
  std::string data_dir = DefaultDataDir();
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--json") {
      json = true;
    } else if (args[i] == "--quick") {
      quick = true;
    } else if (args[i] == "--warm-sandboxes" && i + 1 < args.size() &&
               absl::SimpleAtoi(args[i + 1], &warm_sandboxes) && warm_sandboxes >= 0) {
      ++i;
    } else if (args[i] == "--data-dir" && i + 1 < args.size()) {
      data_dir = args[++i];
    } else if (args[i].rfind("--data-dir=", 0) == 0) {
      data_dir = args[i].substr(11);
    } else {
      std::fprintf(stderr,
                   "rlpost-bench verifier: unknown argument '%s'\n"
                   "usage: rlpost-bench verifier [--json] [--quick] [--warm-sandboxes N] "
                   "[--data-dir DIR]\n",
                   args[i].c_str());
      return 2;
    }
  }
  const std::string math_path = data_dir + "/math500_test.jsonl";
  const std::string code_path = data_dir + "/humaneval.jsonl";
  const std::vector<nlohmann::json> math_rows = ReadJsonl(math_path);
  if (math_rows.empty()) {
    std::fprintf(stderr,
                 "rlpost-bench verifier: no MATH-500 rows in '%s'; pass --data-dir DIR or set "
                 "RLPOST_DATA_DIR\n",
                 math_path.c_str());
    return 2;
  }
  const MathResult math = BenchMath(math_rows, quick ? 3 : 20, /*shifted=*/false);
  const MathResult wrong = BenchMath(math_rows, quick ? 3 : 20, /*shifted=*/true);
  const std::vector<nlohmann::json> code_rows = ReadJsonl(code_path);
  CodeResult code;
  if (code_rows.empty()) {
    code.missing = "no HumanEval rows in '" + code_path + "'";
  } else {
    code = BenchCode(code_rows, quick ? 20 : static_cast<int>(code_rows.size()), warm_sandboxes);
  }

  const double code_per_sec = code.sandbox_s > 0 ? code.programs / code.sandbox_s : 0;
  const double plain_per_sec = code.plain_s > 0 ? code.programs / code.plain_s : 0;
  const double ratio = code.plain_s > 0 ? code.sandbox_s / code.plain_s : 0;
  if (json) {
    nlohmann::json out;
    out["math_pairs"] = math.pairs;
    out["math_correct"] = math.correct;
    out["math_errors"] = math.errors + wrong.errors;
    out["math_pairs_per_sec_per_core"] = math.pairs_per_sec;
    out["math_p50_ms"] = math.p50_ms;
    out["math_p99_ms"] = math.p99_ms;
    out["math_mismatched_pairs_per_sec_per_core"] = wrong.pairs_per_sec;
    out["math_mismatched_p50_ms"] = wrong.p50_ms;
    out["math_mismatched_p99_ms"] = wrong.p99_ms;
    out["math_mismatched_judged_correct"] = wrong.correct;
    out["code_available"] = code.available;
    if (code.available) {
      out["code_programs"] = code.programs;
      out["code_accepted"] = code.accepted;
      out["code_plain_passed"] = code.plain_passed;
      out["code_programs_per_sec"] = code_per_sec;
      out["code_plain_programs_per_sec"] = plain_per_sec;
      out["code_sandbox_overhead_ratio"] = ratio;
      out["code_warm_sandboxes"] = code.warm_sandboxes;
    } else {
      out["code_missing"] = code.missing;
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("math (MATH-500 solutions vs gold, 1 thread, in-process CheckMathAnswer)\n");
  std::printf("  pairs                        %d (%d judged correct, %d errors)\n", math.pairs,
              math.correct, math.errors + wrong.errors);
  std::printf("  math_pairs_per_sec_per_core  %.0f   (target >= 10000)\n", math.pairs_per_sec);
  std::printf("  math_p50_ms                  %.4f\n", math.p50_ms);
  std::printf("  math_p99_ms                  %.4f\n", math.p99_ms);
  std::printf("mismatched pairs (solution i vs gold i+1: mostly wrong answers)\n");
  std::printf("  pairs/s per core             %.0f (%d judged correct)\n", wrong.pairs_per_sec,
              wrong.correct);
  std::printf("  p50_ms / p99_ms              %.4f / %.4f\n", wrong.p50_ms, wrong.p99_ms);
  if (!code.available) {
    std::printf("code: missing: %s\n", code.missing.c_str());
    return 0;
  }
  std::printf("code (HumanEval canonical solutions, 1 at a time, interleaved, %d warm sandboxes)\n",
              code.warm_sandboxes);
  std::printf("  programs                     %d (sandbox accepted %d, plain passed %d)\n",
              code.programs, code.accepted, code.plain_passed);
  std::printf("  code_programs_per_sec        %.2f   (sandbox)\n", code_per_sec);
  std::printf("  plain python3 programs/s     %.2f\n", plain_per_sec);
  std::printf("  code_sandbox_overhead_ratio  %.2f   (target <= 1.5)\n", ratio);
  return 0;
}

}  // namespace rlpost::bench
