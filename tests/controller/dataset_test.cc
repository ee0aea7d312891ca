#include "controller/dataset.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

namespace rlpost {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string DataFile(const std::string& name) {
  const char* dir = std::getenv("RLPOST_DATA_DIR");
  if (dir == nullptr) return "";
  std::string path = std::string(dir) + "/" + name;
  return std::filesystem::exists(path) ? path : "";
}

class JsonlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/dataset_test_XXXXXX";
    ASSERT_NE(mkdtemp(dir_.data()), nullptr);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::trunc) << text;
    return path;
  }
  std::string dir_;
};

TEST(DatasetFilesTest, Gsm8kTestSetLoadsWithNumericAnswersAndSolutions) {
  const std::string path = DataFile("gsm8k_test.jsonl");
  if (path.empty()) GTEST_SKIP() << "gsm8k_test.jsonl not found under $RLPOST_DATA_DIR";
  absl::StatusOr<std::vector<Problem>> problems = LoadJsonlProblems(path);
  ASSERT_TRUE(problems.ok()) << problems.status();
  ASSERT_EQ(problems->size(), 1319u);
  const Problem& first = problems->front();
  EXPECT_EQ(first.id, "gsm8k_test-1");
  EXPECT_THAT(first.prompt, StartsWith("Janet"));
  EXPECT_EQ(first.answer, "18");
  EXPECT_THAT(first.solution, HasSubstr("duck eggs"));
  EXPECT_THAT(first.solution, ::testing::Not(HasSubstr("####")));
  for (const Problem& p : *problems) {
    EXPECT_FALSE(p.answer.empty()) << p.id;
    EXPECT_EQ(p.answer.find(','), std::string::npos) << p.id;
  }
}

TEST(DatasetFilesTest, Math500LoadsProblemsAnswersAndSolutions) {
  const std::string path = DataFile("math500_test.jsonl");
  if (path.empty()) GTEST_SKIP() << "math500_test.jsonl not found under $RLPOST_DATA_DIR";
  absl::StatusOr<std::vector<Problem>> problems = LoadJsonlProblems(path);
  ASSERT_TRUE(problems.ok()) << problems.status();
  ASSERT_EQ(problems->size(), 500u);
  const Problem& first = problems->front();
  EXPECT_EQ(first.id, "math500_test-1");
  EXPECT_THAT(first.prompt, HasSubstr("polar coordinates"));
  EXPECT_EQ(first.answer, "\\left( 3, \\frac{\\pi}{2} \\right)");
  EXPECT_THAT(first.solution, HasSubstr("\\boxed{"));
}

TEST_F(JsonlTest, ReadsPromptAliasesIdsAndNumericAnswers) {
  const std::string path = Write("mixed.jsonl",
                                 "{\"prompt\": \"1+1=\", \"answer\": \"2\"}\n"
                                 "\n"
                                 "{\"question\": \"q\", \"answer\": 42, \"id\": \"q42\"}\n"
                                 "{\"problem\": \"p\", \"answer\": \"x\", \"solution\": \"s\"}\n"
                                 "{\"question\": \"g\", \"answer\": \"a lot\\n#### 1,234\"}\n");
  absl::StatusOr<std::vector<Problem>> problems = LoadJsonlProblems(path);
  ASSERT_TRUE(problems.ok()) << problems.status();
  ASSERT_EQ(problems->size(), 4u);
  EXPECT_EQ((*problems)[0].id, "mixed-1");
  EXPECT_EQ((*problems)[0].prompt, "1+1=");
  EXPECT_EQ((*problems)[0].answer, "2");
  EXPECT_EQ((*problems)[0].solution, "");
  EXPECT_EQ((*problems)[1].id, "q42");
  EXPECT_EQ((*problems)[1].answer, "42");
  EXPECT_EQ((*problems)[2].id, "mixed-4");  // the empty line still counts
  EXPECT_EQ((*problems)[2].solution, "s");
  EXPECT_EQ((*problems)[3].answer, "1234");
  EXPECT_EQ((*problems)[3].solution, "a lot");
}

TEST_F(JsonlTest, MalformedLineNamesFileAndLineNumber) {
  const std::string path = Write("bad.jsonl",
                                 "{\"prompt\": \"1+1=\", \"answer\": \"2\"}\n"
                                 "\n"
                                 "{\"prompt\": \"2+2=\", \"answer\": \n");
  absl::StatusOr<std::vector<Problem>> problems = LoadJsonlProblems(path);
  ASSERT_FALSE(problems.ok());
  EXPECT_EQ(problems.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(problems.status().message()), HasSubstr(path + " line 3: "));
  EXPECT_THAT(std::string(problems.status().message()), HasSubstr("not valid JSON"));
}

TEST_F(JsonlTest, MissingAnswerNamesTheField) {
  const std::string path = Write("noanswer.jsonl",
                                 "{\"prompt\": \"1+1=\", \"answer\": \"2\"}\n"
                                 "{\"prompt\": \"2+2=\"}\n");
  absl::StatusOr<std::vector<Problem>> problems = LoadJsonlProblems(path);
  ASSERT_FALSE(problems.ok());
  EXPECT_EQ(problems.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(problems.status().message()), HasSubstr("line 2: field 'answer' missing"));
}

TEST_F(JsonlTest, MissingPromptAndWrongTypesAreNamed) {
  EXPECT_THAT(std::string(LoadJsonlProblems(Write("a.jsonl", "{\"answer\": \"2\"}\n"))
                              .status()
                              .message()),
              HasSubstr("line 1: field 'prompt' missing"));
  EXPECT_THAT(std::string(LoadJsonlProblems(Write("b.jsonl", "[1, 2]\n")).status().message()),
              HasSubstr("line 1: not a JSON object"));
  EXPECT_THAT(std::string(LoadJsonlProblems(Write("c.jsonl", "{\"prompt\": 3, \"answer\": \"2\"}\n"))
                              .status()
                              .message()),
              HasSubstr("field 'prompt' must be a string"));
  EXPECT_THAT(std::string(LoadJsonlProblems(Write("d.jsonl", "{\"prompt\": \"x\", \"answer\": \"a\\n####  \"}\n"))
                              .status()
                              .message()),
              HasSubstr("nothing after '####'"));
}

TEST_F(JsonlTest, MissingFileIsNotFound) {
  absl::StatusOr<std::vector<Problem>> problems = LoadJsonlProblems("/nonexistent/x.jsonl");
  EXPECT_EQ(problems.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(problems.status().message()), HasSubstr("/nonexistent/x.jsonl"));
}

// Fuzz-style property: corrupting a valid file byte by byte never crashes the
// loader; it either loads or names the line it rejects.
TEST_F(JsonlTest, CorruptedLinesAreLoadedOrRejectedWithTheirLineNumber) {
  const std::string valid =
      "{\"question\": \"How many?\", \"answer\": \"so\\n#### 12\", \"id\": \"x\"}";
  std::mt19937 rng(1234);
  const std::string alphabet = "{}[]\",:#\\ n0a\x01\xff";
  for (int trial = 0; trial < 300; ++trial) {
    std::string line = valid;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % line.size();
      switch (rng() % 3) {
        case 0: line[at] = alphabet[rng() % alphabet.size()]; break;
        case 1: line.erase(at, 1); break;
        default: line.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
      }
    }
    const std::string path = Write("fuzz.jsonl", valid + "\n" + line + "\n");
    absl::StatusOr<std::vector<Problem>> problems = LoadJsonlProblems(path);
    if (problems.ok()) {
      EXPECT_LE(problems->size(), 2u);
    } else {
      EXPECT_EQ(problems.status().code(), absl::StatusCode::kInvalidArgument) << line;
      EXPECT_THAT(std::string(problems.status().message()), HasSubstr(" line 2: ")) << line;
    }
  }
}

TEST(LoadProblemsTest, BuiltInTaskFollowsTheConfig) {
  RunConfig config;
  config.task_train_size = 30;
  config.task_heldout_size = 7;
  absl::StatusOr<std::vector<Problem>> train = LoadProblems(config, Split::kTrain);
  absl::StatusOr<std::vector<Problem>> heldout = LoadProblems(config, Split::kHeldout);
  ASSERT_TRUE(train.ok() && heldout.ok());
  EXPECT_EQ(train->size(), 30u);
  EXPECT_EQ(heldout->size(), 7u);
  EXPECT_THAT(train->front().solution, HasSubstr("\\boxed{"));
}

TEST(LoadProblemsTest, JsonlTaskReadsEachSplitsFile) {
  const std::string path = DataFile("gsm8k_test.jsonl");
  if (path.empty()) GTEST_SKIP() << "gsm8k_test.jsonl not found under $RLPOST_DATA_DIR";
  RunConfig config;
  config.task_kind = "jsonl";
  config.task_train_path = path;
  config.task_heldout_path = "/nonexistent/heldout.jsonl";
  EXPECT_TRUE(LoadProblems(config, Split::kTrain).ok());
  EXPECT_EQ(LoadProblems(config, Split::kHeldout).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace rlpost
