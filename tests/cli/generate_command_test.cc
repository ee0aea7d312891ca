// rlctl generate: flag parsing and output formats, and whole runs against a
// real rlpost-rollout worker (tiny policy, n-gram drafter) on port 0.

#include "cli/generate_command.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "cli/rlctl.h"
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_test_util.h"
#include "tests/rollout/rollout_worker_process.h"

namespace rlpost {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using nlohmann::json;

absl::StatusOr<GenerateFlags> Parse(std::vector<std::string> args) {
  return ParseGenerateFlags(args, /*random_seed=*/99);
}

TEST(ParseGenerateFlagsTest, DefaultsAndValues) {
  auto flags = Parse({"--addr", "h:1", "--prompt", "12+3="});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->addr, "h:1");
  EXPECT_FALSE(flags->json);
  EXPECT_EQ(flags->request.prompt(), "12+3=");
  EXPECT_EQ(flags->request.n(), 4);
  EXPECT_FLOAT_EQ(flags->request.params().temperature(), 0.7f);
  EXPECT_EQ(flags->request.params().max_new_tokens(), 256);
  EXPECT_EQ(flags->request.params().seed(), 99u);
  EXPECT_EQ(flags->request.token_budget(), 0);

  flags = Parse({"--addr=h:2", "--prompt=", "--n", "2", "--temperature", "0", "--top-p=0.9",
                 "--top-k", "5", "--seed", "18446744073709551615", "--max-tokens", "0",
                 "--token-budget", "7", "--json", "--timeout", "1.5"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->request.prompt(), "");
  EXPECT_EQ(flags->request.n(), 2);
  EXPECT_EQ(flags->request.params().temperature(), 0.0f);
  EXPECT_FLOAT_EQ(flags->request.params().top_p(), 0.9f);
  EXPECT_EQ(flags->request.params().top_k(), 5);
  EXPECT_EQ(flags->request.params().seed(), 18446744073709551615ull);
  EXPECT_EQ(flags->request.params().max_new_tokens(), 0);
  EXPECT_EQ(flags->request.token_budget(), 7);
  EXPECT_TRUE(flags->json);
  EXPECT_DOUBLE_EQ(flags->timeout_s, 1.5);
}

TEST(ParseGenerateFlagsTest, StopStringsAreRepeatableCommaSeparatedAndUnescaped) {
  auto flags = Parse({"--addr", "h:1", "--prompt", "x", "--stop", "ab,\\n", "--stop", "\\x2c"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_THAT(flags->request.params().stop_strings(),
              ::testing::ElementsAre("ab", "\n", ","));
}

TEST(ParseGenerateFlagsTest, ErrorsNameTheFlag) {
  auto expect_error = [](std::vector<std::string> args, const std::string& what) {
    auto flags = Parse(args);
    ASSERT_FALSE(flags.ok()) << what;
    EXPECT_EQ(flags.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(flags.status().message(), HasSubstr(what));
  };
  const std::vector<std::string> base = {"--addr", "h:1", "--prompt", "x"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  expect_error({"--prompt", "x"}, "--addr");
  expect_error({"--addr", "h:1"}, "--prompt");
  expect_error(with({"--n", "-1"}), "--n must be an integer >= 1, got '-1'");
  expect_error(with({"--n", "0"}), "--n must be");
  expect_error(with({"--n", "two"}), "--n must be");
  expect_error(with({"--temperature", "-0.5"}), "--temperature must be a number in [0, 1000]");
  expect_error(with({"--temperature", "1001"}), "--temperature");
  expect_error(with({"--temperature", "nan"}), "--temperature");
  expect_error(with({"--top-p", "1.5"}), "--top-p must be a number in [0, 1]");
  expect_error(with({"--top-k", "-2"}), "--top-k");
  expect_error(with({"--seed", "-1"}), "--seed");
  expect_error(with({"--max-tokens", "-3"}), "--max-tokens");
  expect_error(with({"--token-budget", "-1"}), "--token-budget");
  expect_error(with({"--timeout", "0"}), "--timeout");
  expect_error(with({"--stop", "a,,b"}), "--stop must be non-empty strings");
  expect_error(with({"--json=yes"}), "--json");
  expect_error(with({"--bogus", "1"}), "unknown flag '--bogus'");
  expect_error(with({"stray"}), "unexpected argument 'stray'");
  expect_error(with({"--n"}), "flag '--n' needs a value");
}

v1::Completion SampleCompletion() {
  v1::Completion c;
  c.set_sample_index(2);
  c.set_text("1+1=\"2\"\n");
  for (int t : {20, 21, 2}) c.add_token_ids(t);
  for (float l : {-0.5f, -1.0f, -0.25f}) c.add_logprobs(l);
  for (int64_t v : {3, 3, 4}) c.add_weight_versions(v);
  c.set_finish_reason(v1::FINISH_REASON_STOP);
  c.set_drafted_tokens(6);
  c.set_accepted_tokens(4);
  return c;
}

TEST(FormatCompletionTest, JsonHasEveryField) {
  json j = json::parse(FormatCompletionJson(SampleCompletion()));
  EXPECT_EQ(j["sample_index"], 2);
  EXPECT_EQ(j["text"], "1+1=\"2\"\n");
  EXPECT_EQ(j["token_ids"], json::array({20, 21, 2}));
  EXPECT_EQ(j["finish_reason"], "stop");
  EXPECT_EQ(j["logprobs"], json::array({-0.5, -1.0, -0.25}));
  EXPECT_EQ(j["weight_versions"], json::array({3, 3, 4}));
  EXPECT_EQ(j["drafted_tokens"], 6);
  EXPECT_EQ(j["accepted_tokens"], 4);
  EXPECT_EQ(j.size(), 8u);
}

TEST(FormatCompletionTest, LineHasIndexReasonCountAndQuotedText) {
  EXPECT_EQ(FormatCompletionLine(SampleCompletion()),
            "[2] stop       3 tokens  \"1+1=\\\"2\\\"\\n\"");
  EXPECT_EQ(FinishReasonWord(v1::FINISH_REASON_LENGTH), "length");
  EXPECT_EQ(FinishReasonWord(v1::FINISH_REASON_ABORT), "abort");
  EXPECT_EQ(FinishReasonWord(v1::FINISH_REASON_PARTIAL), "partial");
}

struct CommandResult {
  int code = -1;
  std::string out;
  std::string err;
};

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// One worker for the whole suite: every test here only generates, and a
// seeded group does not depend on what else the worker ran.
class GenerateCommandTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    worker_ = new testing::RolloutWorkerProcess();
    absl::Status s = worker_->Start();
    ASSERT_TRUE(s.ok()) << s;
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(worker_->Stop(), 0);
    delete worker_;
    worker_ = nullptr;
  }

  CommandResult Generate(std::vector<std::string> args) {
    args.insert(args.begin(), {"generate", "--addr", worker_->addr()});
    std::ostringstream out, err;
    CommandResult r;
    r.code = RunRlctl(args, "", out, err);
    r.out = out.str();
    r.err = err.str();
    return r;
  }

  static testing::RolloutWorkerProcess* worker_;
};

testing::RolloutWorkerProcess* GenerateCommandTest::worker_ = nullptr;

TEST_F(GenerateCommandTest, PrintsEveryCompletionWithItsFinishReasonReproducibly) {
  const std::vector<std::string> args = {"--prompt", "12+34=", "--n", "3", "--temperature",
                                         "0.9", "--max-tokens", "20", "--seed", "11"};
  CommandResult first = Generate(args);
  ASSERT_EQ(first.code, kRlctlOk) << first.err;
  std::vector<std::string> lines = Lines(first.out);
  ASSERT_EQ(lines.size(), 4u) << first.out;
  std::set<std::string> indices;
  for (int i = 0; i < 3; ++i) {
    indices.insert(lines[i].substr(0, 4));
    EXPECT_THAT(lines[i],
                ::testing::ContainsRegex("^\\[[0-2]\\] (stop|length) +[0-9]+ tokens  \""));
  }
  EXPECT_EQ(indices, (std::set<std::string>{"[0] ", "[1] ", "[2] "}));
  EXPECT_THAT(lines[3], AllOf(StartsWith("3 completions ("), HasSubstr(" tokens, "),
                              HasSubstr("seed 11")));
  EXPECT_TRUE(first.err.empty()) << first.err;

  // Completions stream in as they finish, so compare them as a set. How
  // many tokens were drafted is not reproducible (adaptive draft lengths
  // follow measured forward times, and the n-gram drafter learns from the
  // first call), so the summary is compared up to the acceptance.
  CommandResult second = Generate(args);
  ASSERT_EQ(second.code, kRlctlOk) << second.err;
  std::vector<std::string> again = Lines(second.out);
  ASSERT_EQ(again.size(), lines.size());
  auto counts = [](const std::string& summary) {
    return summary.substr(0, summary.find(" tokens, ") + 9);
  };
  EXPECT_EQ(counts(again.back()), counts(lines.back()));
  again.pop_back();
  lines.pop_back();
  std::sort(lines.begin(), lines.end());
  std::sort(again.begin(), again.end());
  EXPECT_EQ(again, lines);
}

TEST_F(GenerateCommandTest, JsonLinesCarryTokensLogprobsAndVersions) {
  CommandResult r = Generate({"--prompt", "7*8=", "--n", "4", "--max-tokens", "12", "--seed", "3",
                              "--json"});
  ASSERT_EQ(r.code, kRlctlOk) << r.err;
  std::set<int> indices;
  int64_t drafted = 0, accepted = 0;
  for (const std::string& line : Lines(r.out)) {
    json j = json::parse(line);
    for (const char* key : {"sample_index", "text", "token_ids", "finish_reason", "logprobs",
                            "weight_versions", "drafted_tokens", "accepted_tokens"}) {
      EXPECT_TRUE(j.contains(key)) << key << " in " << line;
    }
    indices.insert(j["sample_index"].get<int>());
    const size_t n = j["token_ids"].size();
    EXPECT_GE(n, 1u);
    EXPECT_LE(n, 12u);
    EXPECT_EQ(j["logprobs"].size(), n);
    EXPECT_EQ(j["weight_versions"], json(std::vector<int64_t>(n, 0)));
    const std::string reason = j["finish_reason"];
    EXPECT_TRUE(reason == "stop" || reason == "length") << reason;
    if (reason == "length") EXPECT_EQ(n, 12u);
    drafted += j["drafted_tokens"].get<int64_t>();
    accepted += j["accepted_tokens"].get<int64_t>();
    EXPECT_LE(j["accepted_tokens"].get<int64_t>(), j["drafted_tokens"].get<int64_t>());
  }
  EXPECT_EQ(indices, (std::set<int>{0, 1, 2, 3}));
  // The summary goes to stderr so stdout stays JSON lines.
  EXPECT_THAT(r.err, AllOf(StartsWith("4 completions ("), HasSubstr("seed 3")));
  if (drafted > 0) EXPECT_THAT(r.err, HasSubstr("of " + std::to_string(drafted) + " drafted"));
}

TEST_F(GenerateCommandTest, StopStringEndsTheCompletion) {
  // Greedy decoding, once without and once with a stop string taken from the
  // first answer: the second stops right after the string's first occurrence.
  CommandResult plain =
      Generate({"--prompt", "5-2=", "--n", "1", "--temperature", "0", "--max-tokens", "30",
                "--json"});
  ASSERT_EQ(plain.code, kRlctlOk) << plain.err;
  const std::string text = json::parse(Lines(plain.out).at(0))["text"];
  ASSERT_GE(text.size(), 4u) << text;
  const std::string stop = text.substr(2, 2);
  const std::string expected = text.substr(0, text.find(stop) + stop.size());

  CommandResult stopped =
      Generate({"--prompt", "5-2=", "--n", "1", "--temperature", "0", "--max-tokens", "30",
                "--json", "--stop", absl::CEscape(stop)});
  ASSERT_EQ(stopped.code, kRlctlOk) << stopped.err;
  json j = json::parse(Lines(stopped.out).at(0));
  EXPECT_EQ(j["finish_reason"], "stop");
  EXPECT_EQ(j["text"], expected);
}

TEST_F(GenerateCommandTest, TokenBudgetReturnsPartialCompletions) {
  CommandResult r = Generate({"--prompt", "9+9=", "--n", "2", "--max-tokens", "30",
                              "--token-budget", "3", "--seed", "4"});
  ASSERT_EQ(r.code, kRlctlOk) << r.err;
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;
  for (int i = 0; i < 2; ++i) EXPECT_THAT(lines[i], HasSubstr("] partial    3 tokens  "));
  EXPECT_THAT(lines[2], StartsWith("2 completions (partial 2), 6 tokens, "));
}

TEST_F(GenerateCommandTest, PromptLongerThanTheContextIsTheWorkersError) {
  CommandResult r = Generate({"--prompt", std::string(testing::kTinyContext + 10, 'a')});
  EXPECT_EQ(r.code, kRlctlRpcError);
  const std::string context = std::to_string(testing::kTinyContext);
  EXPECT_THAT(r.err, AllOf(HasSubstr("INVALID_ARGUMENT"),
                           HasSubstr("does not fit the context of " + context + " tokens")));
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST_F(GenerateCommandTest, SamplingParamsOutOfRangeAreUsageErrors) {
  CommandResult r = Generate({"--prompt", "1+1=", "--top-p", "1.5"});
  EXPECT_EQ(r.code, kRlctlUsage);
  EXPECT_THAT(r.err, HasSubstr("--top-p must be a number in [0, 1]"));
  r = Generate({"--prompt", "1+1=", "--n", "-4"});
  EXPECT_EQ(r.code, kRlctlUsage);
  EXPECT_THAT(r.err, HasSubstr("--n must be"));
  r = Generate({"--prompt", "1+1=", "--temperature", "-1"});
  EXPECT_EQ(r.code, kRlctlUsage);
  EXPECT_THAT(r.err, HasSubstr("--temperature must be"));
  // A prompt the worker's tokenizer cannot encode is the worker's error.
  r = Generate({"--prompt", "caf\xc3\xa9"});
  EXPECT_EQ(r.code, kRlctlRpcError);
  EXPECT_THAT(r.err, HasSubstr("INVALID_ARGUMENT"));
}

TEST_F(GenerateCommandTest, HelpAndMissingFlags) {
  std::ostringstream out, err;
  EXPECT_EQ(RunRlctl({"generate", "--help"}, "", out, err), kRlctlOk);
  EXPECT_THAT(out.str(), HasSubstr("usage: rlctl generate --addr HOST:PORT --prompt TEXT"));
  std::ostringstream out2, err2;
  EXPECT_EQ(RunRlctl({"--help"}, "", out2, err2), kRlctlOk);
  EXPECT_THAT(out2.str(), HasSubstr("generate"));
  std::ostringstream out3, err3;
  EXPECT_EQ(RunRlctl({"generate", "--prompt", "x"}, "", out3, err3), kRlctlUsage);
  EXPECT_THAT(err3.str(), HasSubstr("--addr"));
}

TEST_F(GenerateCommandTest, NoWorkerAtTheAddressIsUnreachable) {
  absl::StatusOr<int> port = PickFreePort();
  ASSERT_TRUE(port.ok()) << port.status();
  std::ostringstream out, err;
  EXPECT_EQ(RunRlctl({"generate", "--addr", "127.0.0.1:" + std::to_string(*port), "--prompt",
                      "1+1="},
                     "", out, err),
            kRlctlUnreachable);
  EXPECT_THAT(err.str(), HasSubstr("unreachable"));
}

TEST_F(GenerateCommandTest, TheRlctlBinaryStreamsCompletions) {
  const std::string dir = testing::MakeTempDir("rlctl_generate");
  ASSERT_FALSE(dir.empty());
  testing::ProcessResult r = testing::RunProcess(
      {testing::BinDir() + "/rlctl", "generate", "--addr", worker_->addr(), "--prompt", "3+4=",
       "--n", "2", "--max-tokens", "8", "--seed", "1"},
      dir + "/rlctl.log");
  std::filesystem::remove_all(dir);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, AllOf(HasSubstr("[0] "), HasSubstr("[1] "),
                              HasSubstr("2 completions ("), HasSubstr("seed 1\n")));
}

}  // namespace
}  // namespace rlpost
