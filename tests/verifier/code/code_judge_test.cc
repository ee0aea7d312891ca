// End-to-end tests of CodeJudge: Python and C++ programs judged in real
// bubblewrap sandboxes, every compare mode, every verdict, bad input.
#include "verifier/code/code_judge.h"

#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/verifier/code/judge_fixture.h"

namespace rlpost::code {
namespace {

using ::testing::HasSubstr;

class CodeJudgeTest : public JudgeFixture {};

CodeTask Python(std::string code, std::vector<CodeTest> tests, std::string compare = "trim") {
  CodeTask task;
  task.language = "python";
  task.code = std::move(code);
  task.tests = std::move(tests);
  task.compare = std::move(compare);
  return task;
}

CodeTask Cpp(std::string code, std::vector<CodeTest> tests, std::string compare = "trim") {
  CodeTask task = Python(std::move(code), std::move(tests), std::move(compare));
  task.language = "cpp";
  return task;
}

TEST_F(CodeJudgeTest, PythonStdioAccepted) {
  CodeResult r = MustJudge(Python("a, b = map(int, input().split())\nprint(a + b)\n",
                                  {{"1 2\n", "3\n"}, {"10 -4\n", "6"}, {"0 0", "0\n\n"}}));
  EXPECT_EQ(r.verdict, CodeVerdict::kAccepted) << r.detail;
  EXPECT_DOUBLE_EQ(r.score, 1.0);
  ASSERT_EQ(r.tests.size(), 3u);
  for (const CodeTestResult& t : r.tests) EXPECT_EQ(t.verdict, CodeVerdict::kAccepted);
}

TEST_F(CodeJudgeTest, PythonWrongAnswerScoresPartially) {
  CodeTask task = Python("n = int(input())\nprint(n * 2 if n < 5 else n)\n",
                         {{"1", "2"}, {"7", "14"}, {"3", "6"}, {"9", "18"}});
  task.stop_at_first_failure = false;
  CodeResult r = MustJudge(task);
  EXPECT_EQ(r.verdict, CodeVerdict::kWrongAnswer);
  EXPECT_DOUBLE_EQ(r.score, 0.5);
  ASSERT_EQ(r.tests.size(), 4u);
  EXPECT_EQ(r.tests[1].verdict, CodeVerdict::kWrongAnswer);
  EXPECT_THAT(r.detail, HasSubstr("test 2"));
  EXPECT_THAT(r.tests[1].detail, HasSubstr("expected \"14\""));
}

TEST_F(CodeJudgeTest, StopsAtFirstFailure) {
  CodeResult r = MustJudge(Python("print(1)", {{"", "1"}, {"", "2"}, {"", "1"}}));
  EXPECT_EQ(r.verdict, CodeVerdict::kWrongAnswer);
  EXPECT_EQ(r.tests.size(), 2u);
  EXPECT_NEAR(r.score, 1.0 / 3, 1e-12);
}

TEST_F(CodeJudgeTest, PythonCompareModes) {
  const std::string code = "print(' 1   2 ')\nprint('0.3333333')\n";
  EXPECT_EQ(MustJudge(Python(code, {{"", " 1   2 \n0.3333333\n"}}, "exact")).verdict,
            CodeVerdict::kAccepted);
  EXPECT_EQ(MustJudge(Python(code, {{"", " 1   2\n0.3333333"}}, "exact")).verdict,
            CodeVerdict::kWrongAnswer);
  EXPECT_EQ(MustJudge(Python(code, {{"", " 1   2\n0.3333333"}}, "trim")).verdict,
            CodeVerdict::kAccepted);
  EXPECT_EQ(MustJudge(Python(code, {{"", "1 2 0.3333333"}}, "trim")).verdict,
            CodeVerdict::kWrongAnswer);
  EXPECT_EQ(MustJudge(Python(code, {{"", "1 2 0.3333333"}}, "tokens")).verdict,
            CodeVerdict::kAccepted);
  EXPECT_EQ(MustJudge(Python(code, {{"", "1 2 0.3333"}}, "tokens")).verdict,
            CodeVerdict::kWrongAnswer);
  EXPECT_EQ(MustJudge(Python(code, {{"", "1 2 0.3333"}}, "float:1e-3")).verdict,
            CodeVerdict::kAccepted);
  EXPECT_EQ(MustJudge(Python(code, {{"", "1 2 0.3"}}, "float:1e-3")).verdict,
            CodeVerdict::kWrongAnswer);
}

TEST_F(CodeJudgeTest, CppStdioAllCompareModes) {
  const std::string code =
      "#include <cstdio>\nint main(){long long a,b; if (std::scanf(\"%lld %lld\", &a, &b) != 2)"
      " return 1; std::printf(\"%lld  \\n%.6f\\n\", a+b, (double)a/b);}\n";
  CodeTask task = Cpp(code, {{"1 3", "4  \n0.333333\n"}, {"10 4", "14  \n2.500000\n"}}, "exact");
  task.stop_at_first_failure = false;
  CodeResult r = MustJudge(task);
  EXPECT_EQ(r.verdict, CodeVerdict::kAccepted) << r.detail;
  EXPECT_EQ(r.tests.size(), 2u);
  task.tests = {{"1 3", "4\n0.333333"}};
  task.compare = "trim";
  EXPECT_EQ(MustJudge(task).verdict, CodeVerdict::kAccepted);
  task.tests = {{"1 3", "4 0.333333"}};
  task.compare = "tokens";
  EXPECT_EQ(MustJudge(task).verdict, CodeVerdict::kAccepted);
  task.tests = {{"1 3", "4 0.3333"}};
  task.compare = "float:1e-3";
  EXPECT_EQ(MustJudge(task).verdict, CodeVerdict::kAccepted);
  task.tests = {{"1 3", "5 0.3333"}};
  EXPECT_EQ(MustJudge(task).verdict, CodeVerdict::kWrongAnswer);
}

TEST_F(CodeJudgeTest, CppCompileError) {
  CodeResult r = MustJudge(Cpp("int main() { return undefined_name; }\n", {{"", ""}}));
  EXPECT_EQ(r.verdict, CodeVerdict::kCompileError);
  EXPECT_THAT(r.detail, HasSubstr("undefined_name"));
  EXPECT_DOUBLE_EQ(r.score, 0);
  EXPECT_TRUE(r.tests.empty());
}

TEST_F(CodeJudgeTest, CppRuntimeErrorAndExitCode) {
  CodeResult r = MustJudge(Cpp("int main() { int* p = nullptr; volatile int x = *p; return x; }",
                               {{"", ""}}));
  EXPECT_EQ(r.verdict, CodeVerdict::kRuntimeError);
  EXPECT_THAT(r.detail, HasSubstr("SIGSEGV"));
  r = MustJudge(Cpp("int main() { return 3; }", {{"", ""}}));
  EXPECT_EQ(r.verdict, CodeVerdict::kRuntimeError);
  EXPECT_THAT(r.detail, HasSubstr("exit code 3"));
}

TEST_F(CodeJudgeTest, PythonRuntimeError) {
  CodeResult r = MustJudge(Python("raise ValueError('boom')", {{"", ""}}));
  EXPECT_EQ(r.verdict, CodeVerdict::kRuntimeError);
  EXPECT_THAT(r.detail, HasSubstr("ValueError: boom"));
}

TEST_F(CodeJudgeTest, PythonTestCodeForm) {
  CodeTask task;
  task.language = "python";
  task.code = "def add(a, b):\n    return a + b\n";
  task.test_code = "def check(candidate):\n    assert candidate(1, 2) == 3\n";
  task.entry_point = "add";
  EXPECT_EQ(MustJudge(task).verdict, CodeVerdict::kAccepted);
  task.code = "def add(a, b):\n    return a - b\n";
  CodeResult r = MustJudge(task);
  EXPECT_EQ(r.verdict, CodeVerdict::kWrongAnswer);
  EXPECT_THAT(r.detail, HasSubstr("AssertionError"));
  task.code = "def add(a, b):\n    return a + undefined\n";
  EXPECT_EQ(MustJudge(task).verdict, CodeVerdict::kRuntimeError);
}

// Regression: an early exit(0) in the candidate used to skip the checks.
TEST_F(CodeJudgeTest, EarlyExitZeroIsNotAPass) {
  CodeTask task;
  task.language = "python";
  task.code = "import sys\ndef add(a, b):\n    return 0\nsys.exit(0)\n";
  task.test_code = "def check(candidate):\n    assert candidate(1, 2) == 3\n";
  task.entry_point = "add";
  CodeResult r = MustJudge(task);
  EXPECT_EQ(r.verdict, CodeVerdict::kWrongAnswer);
  EXPECT_THAT(r.detail, HasSubstr("exited before the tests finished"));
}

TEST_F(CodeJudgeTest, UnknownLanguageIsInvalidArgument) {
  CodeTask task = Python("print(1)", {{"", "1"}});
  task.language = "rust";
  absl::StatusOr<CodeResult> r = judge().Judge(task);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("language"));
  EXPECT_THAT(r.status().message(), HasSubstr("rust"));
}

TEST_F(CodeJudgeTest, UnknownCompareModeIsInvalidArgument) {
  absl::StatusOr<CodeResult> r = judge().Judge(Python("print(1)", {{"", "1"}}, "regex"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("compare"));
}

TEST_F(CodeJudgeTest, MalformedTasksAreInvalidArgument) {
  struct Case {
    std::function<void(CodeTask&)> mutate;
    const char* field;
  } cases[] = {
      {[](CodeTask& t) { t.tests.clear(); }, "tests/test_code"},
      {[](CodeTask& t) { t.test_code = "def check(c): pass"; }, "tests/test_code"},
      {[](CodeTask& t) { t.limits.time_limit_s = 0; }, "limits.time_limit_s"},
      {[](CodeTask& t) { t.limits.time_limit_s = -1; }, "limits.time_limit_s"},
      {[](CodeTask& t) { t.limits.memory_limit_mb = 1; }, "limits.memory_limit_mb"},
      {[](CodeTask& t) { t.limits.output_limit_bytes = 0; }, "limits.output_limit_bytes"},
      {[](CodeTask& t) { t.limits.max_processes = 0; }, "limits.max_processes"},
      {[](CodeTask& t) { t.limits.wall_limit_s = -2; }, "limits.wall_limit_s"},
      {[](CodeTask& t) { t.limits.max_open_files = 2; }, "limits.max_open_files"},
      {[](CodeTask& t) { t.limits.file_size_limit_bytes = -1; }, "limits.file_size_limit_bytes"},
      {[](CodeTask& t) { t.tests.clear(); t.test_code = "x"; t.entry_point = "a b"; },
       "entry_point"},
      {[](CodeTask& t) { t.language = "cpp"; t.tests.clear(); t.test_code = "x"; }, "test_code"},
  };
  for (const Case& c : cases) {
    CodeTask task = Python("print(1)", {{"", "1"}});
    c.mutate(task);
    absl::StatusOr<CodeResult> r = judge().Judge(task);
    ASSERT_FALSE(r.ok()) << c.field;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(r.status().message(), HasSubstr(c.field));
  }
}

// Property: arbitrary bytes as code, stdin or expected output always get a
// verdict about the program, never an error or a sandbox failure.
TEST_F(CodeJudgeTest, ArbitraryBytesGetAProgramVerdict) {
  std::mt19937 rng(20261122);
  auto random_bytes = [&](size_t max_len) {
    std::string out(rng() % max_len, '\0');
    for (char& c : out) c = static_cast<char>(rng() % 256);
    return out;
  };
  for (int i = 0; i < 12; ++i) {
    CodeTask task = (i % 3 == 2 ? Cpp : Python)(
        i % 2 == 0 ? random_bytes(200) : "import sys\nsys.stdout.write(sys.stdin.read())\n",
        {{random_bytes(5000), random_bytes(50)}}, i % 4 == 0 ? "exact" : "tokens");
    absl::StatusOr<CodeResult> r = judge().Judge(task);
    ASSERT_TRUE(r.ok()) << i << ": " << r.status();
    EXPECT_NE(r->verdict, CodeVerdict::kSandboxError) << i << ": " << r->detail;
    EXPECT_NE(r->verdict, CodeVerdict::kAccepted) << i;
  }
}

// The fixture's judge keeps warm sandboxes (the default); one without gives
// the same verdicts, scores and per-test results.
TEST_F(CodeJudgeTest, WarmAndColdSandboxesGiveTheSameVerdicts) {
  ASSERT_GT(judge().options().warm_sandboxes, 0);
  CodeJudgeOptions options;
  options.warm_sandboxes = 0;
  absl::StatusOr<std::unique_ptr<CodeJudge>> cold = CodeJudge::Create(options);
  ASSERT_TRUE(cold.ok()) << cold.status();
  CodeTask time_limit = Python("while True:\n    pass\n", {{"", ""}});
  time_limit.limits.time_limit_s = 1;
  CodeTask test_code = Python("def f(x):\n    return x + 1\n", {});
  test_code.test_code = "def check(g):\n    assert g(1) == 2\n    assert g(2) == 4\n";
  test_code.entry_point = "f";
  const std::vector<CodeTask> tasks = {
      Python("a, b = map(int, input().split())\nprint(a + b)\n", {{"1 2", "3"}, {"2 2", "5"}}),
      Python("import sys\nprint(sys.stdin.read().upper(), end='')\n", {{"abc\n", "ABC"}}),
      Python("raise ValueError('boom')", {{"", ""}}),
      Python("import os\nprint(sorted(os.listdir('/work')), oct(os.stat('/work/prog.py').st_mode))",
             {{"", "['prog.py'] 0o100444"}}),
      time_limit,
      test_code,
      Cpp("#include <cstdio>\nint main() { int a; std::scanf(\"%d\", &a); std::printf(\"%d\\n\", a * 2); }",
          {{"21", "42"}, {"1", "3"}}, "exact"),
  };
  for (const CodeTask& task : tasks) {
    SCOPED_TRACE(task.code);
    absl::StatusOr<CodeResult> want = (*cold)->Judge(task);
    ASSERT_TRUE(want.ok()) << want.status();
    const CodeResult got = MustJudge(task);
    EXPECT_EQ(CodeVerdictName(got.verdict), CodeVerdictName(want->verdict)) << got.detail;
    EXPECT_EQ(got.score, want->score);
    ASSERT_EQ(got.tests.size(), want->tests.size());
    for (size_t i = 0; i < got.tests.size(); ++i) {
      EXPECT_EQ(got.tests[i].verdict, want->tests[i].verdict);
      // A time limit's detail names the CPU time used, which varies.
      if (want->tests[i].verdict != CodeVerdict::kTimeLimit) {
        EXPECT_EQ(got.tests[i].detail, want->tests[i].detail);
      }
    }
  }
}

TEST(CodeVerdictNameTest, AllNames) {
  EXPECT_STREQ(CodeVerdictName(CodeVerdict::kAccepted), "accepted");
  EXPECT_STREQ(CodeVerdictName(CodeVerdict::kWrongAnswer), "wrong_answer");
  EXPECT_STREQ(CodeVerdictName(CodeVerdict::kTimeLimit), "time_limit");
  EXPECT_STREQ(CodeVerdictName(CodeVerdict::kMemoryLimit), "memory_limit");
  EXPECT_STREQ(CodeVerdictName(CodeVerdict::kOutputLimit), "output_limit");
  EXPECT_STREQ(CodeVerdictName(CodeVerdict::kRuntimeError), "runtime_error");
  EXPECT_STREQ(CodeVerdictName(CodeVerdict::kCompileError), "compile_error");
  EXPECT_STREQ(CodeVerdictName(CodeVerdict::kSandboxError), "sandbox_error");
}

TEST(CodeJudgeCreateTest, MissingBwrapSaysWhatToInstall) {
  CodeJudgeOptions options;
  options.bwrap_path = "/nonexistent/bwrap";
  absl::StatusOr<std::unique_ptr<CodeJudge>> judge = CodeJudge::Create(options);
  ASSERT_FALSE(judge.ok());
  EXPECT_EQ(judge.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(judge.status().message(), HasSubstr("bubblewrap"));
}

TEST(CodeJudgeCreateTest, WarmSandboxesOutOfRangeIsInvalidArgument) {
  CodeJudgeOptions options;
  options.warm_sandboxes = 65;
  absl::StatusOr<std::unique_ptr<CodeJudge>> judge = CodeJudge::Create(options);
  ASSERT_FALSE(judge.ok());
  EXPECT_EQ(judge.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(judge.status().message(), HasSubstr("warm_sandboxes"));
}

TEST(CodeJudgeCreateTest, MissingLauncherNamesIt) {
  CodeJudgeOptions options;
  options.launcher_path = "/nonexistent/rlpost-sandbox-exec";
  absl::StatusOr<std::unique_ptr<CodeJudge>> judge = CodeJudge::Create(options);
  ASSERT_FALSE(judge.ok());
  EXPECT_EQ(judge.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(judge.status().message(), HasSubstr("rlpost-sandbox-exec"));
}

}  // namespace
}  // namespace rlpost::code
