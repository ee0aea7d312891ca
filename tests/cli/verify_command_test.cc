// rlctl verify: line parsing, and whole runs against a real rlpost-verifier
// started on port 0.

#include "cli/verify_command.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/cli/cli_test_util.h"
#include "cli/rlctl.h"
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rlpost {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

TEST(ParseVerifyLineTest, MathLine) {
  auto item = ParseVerifyLine(
      R"j({"id": "a", "kind": "math", "gold": "0.5", "response": "\\boxed{1/2}", "mode": "full_text"})j",
      1);
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_EQ(item->id(), "a");
  EXPECT_EQ(item->kind(), "math");
  EXPECT_EQ(item->reference(), "0.5");
  EXPECT_EQ(item->response(), "\\boxed{1/2}");
  EXPECT_EQ(item->mode(), "full_text");
}

TEST(ParseVerifyLineTest, CodeLineWithTestsAndLimits) {
  auto item = ParseVerifyLine(
      R"j({"id": "c", "kind": "code", "language": "python", "code": "print(input())",
          "tests": [{"stdin": "1\n", "expected_stdout": "1\n"}], "compare": "trim",
          "limits": {"time_limit_s": 2, "memory_limit_mb": 256, "output_limit_bytes": 1048576,
                     "max_processes": 16}})j",
      3);
  ASSERT_TRUE(item.ok()) << item.status();
  ASSERT_EQ(item->code().tests_size(), 1);
  EXPECT_EQ(item->code().tests(0).expected_stdout(), "1\n");
  EXPECT_EQ(item->code().limits().time_limit_s(), 2);
  EXPECT_EQ(item->code().limits().output_limit_bytes(), 1048576);
  EXPECT_EQ(item->code().compare(), "trim");
}

TEST(ParseVerifyLineTest, ErrorsNameTheLineAndTheProblem) {
  auto expect_error = [](const std::string& line, const std::string& what) {
    auto item = ParseVerifyLine(line, 17);
    ASSERT_FALSE(item.ok()) << line;
    EXPECT_EQ(item.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(item.status().message(), HasSubstr("line 17: "));
    EXPECT_THAT(item.status().message(), HasSubstr(what)) << line;
  };
  expect_error("{not json", "not valid JSON");
  expect_error("[1, 2]", "expected a JSON object");
  expect_error(R"j({"id": "x", "gold": "1", "response": "1"})j", "field 'kind' missing");
  expect_error(R"j({"kind": "chess"})j", "field 'kind' must be \"math\" or \"code\"");
  expect_error(R"j({"kind": "math", "response": "1"})j", "field 'gold' missing");
  expect_error(R"j({"kind": "math", "gold": "1", "response": 5})j",
               "field 'response' must be a string");
  expect_error(R"j({"kind": "math", "gold": "1", "respone": "1"})j", "unknown field 'respone'");
  expect_error(R"j({"kind": "math", "gold": "1", "response": "1", "mode": "x"})j",
               "field 'mode' must be");
  expect_error(R"j({"kind": "code", "language": "rust", "code": "", "test_code": "x"})j",
               "field 'language' must be");
  expect_error(R"j({"kind": "code", "language": "python", "code": "x"})j",
               "needs 'tests' (non-empty) or 'test_code'");
  expect_error(R"j({"kind": "code", "language": "python", "code": "x", "tests": [{"stdin": ""}]})j",
               "tests[0].expected_stdout missing");
  expect_error(
      R"j({"kind": "code", "language": "python", "code": "x", "test_code": "t", "limits": {"time_limit_s": -1}})j",
      "limits.time_limit_s must be a positive number");
}

TEST(ParseVerifyLineTest, RandomBytesNeverCrash) {
  std::mt19937 rng(7);
  const std::string pieces[] = {"{", "}", "[", "]", "\"", ":", ",", "kind", "math", "code",
                                "gold", "tests", "limits", "1", "-2.5e9", "null", "\\u0000",
                                "\xff", " "};
  for (int i = 0; i < 3000; ++i) {
    std::string line;
    const int n = static_cast<int>(rng() % 30);
    for (int j = 0; j < n; ++j) line += pieces[rng() % std::size(pieces)];
    auto item = ParseVerifyLine(line, i);
    if (!item.ok()) EXPECT_THAT(item.status().message(), HasSubstr("line "));
  }
}

// A real rlpost-verifier on 127.0.0.1:0, with its metrics endpoint.
class VerifyCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("rlctl_verify");
    ASSERT_FALSE(dir_.empty());
    const std::string port_file = dir_ + "/verifier.port";
    ASSERT_TRUE(verifier_
                    .Start({testing::BinDir() + "/rlpost-verifier", "--listen", "127.0.0.1:0",
                            "--port-file", port_file, "--metrics-listen", "127.0.0.1:0",
                            "--metrics-port-file", dir_ + "/metrics.port", "--max-concurrency",
                            "2"},
                           dir_ + "/verifier.log")
                    .ok());
    absl::StatusOr<int> port =
        WaitForPortFile(port_file, &verifier_, "rlpost-verifier", std::chrono::seconds(60));
    ASSERT_TRUE(port.ok()) << port.status() << testing::ReadFile(dir_ + "/verifier.log");
    addr_ = "127.0.0.1:" + std::to_string(*port);
  }
  void TearDown() override {
    verifier_.Stop();
    std::filesystem::remove_all(dir_);
  }

  std::string WriteInput(const std::string& text) {
    const std::string path = dir_ + "/in.jsonl";
    std::ofstream(path) << text;
    return path;
  }

  std::vector<json> ParseLines(const std::string& text) {
    std::vector<json> lines;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) lines.push_back(json::parse(line));
    return lines;
  }

  std::string MetricsText() {
    return testing::HttpGet(std::stoi(testing::ReadFile(dir_ + "/metrics.port")), "/metrics");
  }

  std::string dir_;
  std::string addr_;
  Subprocess verifier_;
};

TEST_F(VerifyCommandTest, OneOutputLinePerInputLineInOrder) {
  const std::string input = WriteInput(
      R"j({"id": "right", "kind": "math", "gold": "0.5", "response": "so \\boxed{\\frac{1}{2}}"})j"
      "\n"
      R"j({"id": "wrong", "kind": "math", "gold": "4", "response": "\\boxed{3}"})j"
      "\n"
      "{broken\n"
      R"j({"id": "bare", "kind": "math", "gold": "12", "response": "12", "mode": "answer_only"})j"
      "\n"
      R"j({"id": "none", "kind": "math", "gold": "4", "response": "no idea"})j"
      "\n"
      R"j({"id": "no-gold", "kind": "math", "response": "1"})j"
      "\n"
      R"j({"id": "prog", "kind": "code", "language": "python", "code": "print(1)", "tests": [{"stdin": "", "expected_stdout": "1"}]})j"
      "\n"
      R"j({"id": "right", "kind": "math", "gold": "7", "response": "\\boxed{7}"})j"
      "\n");
  std::ostringstream out, err;
  const int code = RunRlctl({"verify", "--addr", addr_, "--input", input}, "", out, err);
  ASSERT_EQ(code, kRlctlOk) << err.str();
  std::vector<json> lines = ParseLines(out.str());
  ASSERT_EQ(lines.size(), 8u) << out.str();
  EXPECT_EQ(lines[0]["id"], "right");
  EXPECT_EQ(lines[0]["verdict"], "correct");
  EXPECT_EQ(lines[0]["score"], 1.0);
  EXPECT_THAT(lines[0]["detail"].get<std::string>(), HasSubstr("\\frac{1}{2}"));
  EXPECT_TRUE(lines[0]["latency_ms"].is_number());
  EXPECT_EQ(lines[1]["verdict"], "incorrect");
  EXPECT_EQ(lines[1]["score"], 0.0);
  EXPECT_EQ(lines[2]["id"], "line-3");
  EXPECT_EQ(lines[2]["verdict"], "error");
  EXPECT_THAT(lines[2]["detail"].get<std::string>(), HasSubstr("line 3: not valid JSON"));
  EXPECT_EQ(lines[3]["verdict"], "correct");
  EXPECT_EQ(lines[4]["verdict"], "no_answer");
  // A parsable line keeps its id in the error.
  EXPECT_EQ(lines[5]["id"], "no-gold");
  EXPECT_EQ(lines[5]["verdict"], "error");
  EXPECT_THAT(lines[5]["detail"].get<std::string>(), HasSubstr("line 6: field 'gold' missing"));
  lines.erase(lines.begin() + 5);
  EXPECT_EQ(lines[5]["id"], "prog");
  // Accepted where the sandbox works here; otherwise an error saying why.
  if (lines[5]["verdict"] != "accepted") {
    EXPECT_EQ(lines[5]["verdict"], "error");
    EXPECT_THAT(lines[5]["detail"].get<std::string>(), HasSubstr("code verifier"));
  }
  // Duplicate ids keep their own verdicts.
  EXPECT_EQ(lines[6]["id"], "right");
  EXPECT_EQ(lines[6]["verdict"], "correct");
  EXPECT_THAT(err.str(), HasSubstr("8 lines: "));
  EXPECT_THAT(err.str(), HasSubstr("correct 3"));
  EXPECT_THAT(err.str(), HasSubstr("incorrect 1"));
  EXPECT_THAT(err.str(), HasSubstr("no_answer 1"));

  const std::string metrics = MetricsText();
  EXPECT_THAT(metrics, HasSubstr("HTTP/1.0 200 OK"));
  EXPECT_THAT(metrics,
              HasSubstr("rlpost_verifier_verdicts_total{kind=\"math\",verdict=\"correct\"} 3"));
  EXPECT_THAT(metrics, HasSubstr("rlpost_verifier_latency_seconds_count{kind=\"math\"} 5"));
  EXPECT_THAT(metrics, HasSubstr("rlpost_verifier_queue_depth 0"));
}

TEST_F(VerifyCommandTest, OutputFileAndRepeatedRunsHitTheCache) {
  std::string text;
  for (int i = 0; i < 300; ++i) {
    text += json({{"id", std::to_string(i)},
                  {"kind", "math"},
                  {"gold", std::to_string(i % 10)},
                  {"response", "\\boxed{" + std::to_string(i % 7) + "}"}})
                .dump() +
            "\n";
  }
  const std::string input = WriteInput(text);
  const std::string output = dir_ + "/out.jsonl";
  std::ostringstream out, err;
  ASSERT_EQ(RunRlctl({"verify", "--addr", addr_, "--input", input, "--output", output,
                      "--max-in-flight", "8"},
                     "", out, err),
            kRlctlOk)
      << err.str();
  EXPECT_EQ(out.str(), "");
  std::vector<json> lines = ParseLines(testing::ReadFile(output));
  ASSERT_EQ(lines.size(), 300u);
  for (int i = 0; i < 300; ++i) {
    EXPECT_EQ(lines[i]["id"], std::to_string(i));
    EXPECT_EQ(lines[i]["verdict"], i % 10 == i % 7 ? "correct" : "incorrect") << i;
  }
  // 70 distinct (gold, response) pairs: the other 230 lines are cache hits.
  EXPECT_THAT(MetricsText(), HasSubstr("rlpost_verifier_cache_hits_total 230"));
}

TEST(VerifyCommandFlagsTest, UsageErrors) {
  std::ostringstream out, err;
  EXPECT_EQ(RunRlctl({"verify", "--input", "x.jsonl"}, "", out, err), kRlctlUsage);
  EXPECT_THAT(err.str(), HasSubstr("--addr HOST:PORT and --input IN.jsonl are required"));
  std::ostringstream out2, err2;
  EXPECT_EQ(RunRlctl({"verify", "--addr", "127.0.0.1:1", "--input", "/nonexistent/in.jsonl"},
                     "", out2, err2),
            kRlctlUsage);
  EXPECT_THAT(err2.str(), HasSubstr("cannot read --input '/nonexistent/in.jsonl'"));
  std::ostringstream out3, err3;
  EXPECT_EQ(RunRlctl({"verify", "--bogus", "1"}, "", out3, err3), kRlctlUsage);
  EXPECT_THAT(err3.str(), HasSubstr("unknown flag '--bogus'"));
}

TEST(VerifyCommandFlagsTest, UnreachableVerifier) {
  const std::string dir = testing::MakeTempDir("rlctl_verify_down");
  const std::string input = dir + "/in.jsonl";
  std::ofstream(input) << R"j({"id": "a", "kind": "math", "gold": "1", "response": "1"})j" << "\n";
  absl::StatusOr<int> port = PickFreePort();
  ASSERT_TRUE(port.ok());
  std::ostringstream out, err;
  EXPECT_EQ(RunRlctl({"verify", "--addr", "127.0.0.1:" + std::to_string(*port), "--input", input},
                     "", out, err),
            kRlctlUnreachable);
  EXPECT_THAT(err.str(), HasSubstr("unreachable"));
  // The line still gets its output line, with the reason.
  EXPECT_THAT(out.str(), HasSubstr("\"verdict\":\"error\""));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rlpost
