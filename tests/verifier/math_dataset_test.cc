// The checker against real data: MATH-500 solutions must agree with their
// gold answers (and disagree with other problems' answers), and GSM8K worked
// solutions ("#### N") with their own final numbers.
//
// Data comes from $RLPOST_DATA_DIR (ctest sets it); the tests skip when the
// files are absent.

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "verifier/math/math_checker.h"

namespace rlpost {
namespace {

// Agreement reached by this checker version; the tests allow a small margin
// so that a harmless change does not fail them, but a regression does.
constexpr double kMath500Agreement = 1.0;
constexpr double kGsm8kAgreement = 1.0;
constexpr double kMargin = 0.005;

std::optional<std::string> DataFile(const std::string& name) {
  const char* dir = std::getenv("RLPOST_DATA_DIR");
  if (dir == nullptr || *dir == '\0') return std::nullopt;
  std::string path = std::string(dir) + "/" + name;
  if (!std::ifstream(path).good()) return std::nullopt;
  return path;
}

// Reads the JSONL file; a malformed line fails the test with its number.
std::vector<nlohmann::json> ReadJsonl(const std::string& path) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(path);
  std::string line;
  int line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty()) continue;
    nlohmann::json row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (row.is_discarded()) {
      ADD_FAILURE() << path << " line " << line_number << ": not valid JSON";
      continue;
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

// An oracle independent of the checker for plain numeric gold answers:
// integers and decimals after removing LaTeX thousands separators, degree
// marks and spaces; nullopt for anything else.
std::optional<long double> PlainNumber(std::string text) {
  for (const char* junk : {",\\!", "\\!", "^\\circ", "\\$", " "}) {
    for (size_t at; (at = text.find(junk)) != std::string::npos;) {
      text.erase(at, std::string(junk).size());
    }
  }
  static const std::regex kNumber(R"(-?\d+(\.\d+)?)");
  static const std::regex kThousands(R"(-?\d{1,3}(,\d{3})+)");
  if (std::regex_match(text, kThousands)) {
    text.erase(std::remove(text.begin(), text.end(), ','), text.end());
  }
  if (!std::regex_match(text, kNumber)) return std::nullopt;
  return std::stold(text);
}

TEST(Math500Test, SolutionsAgreeWithGoldAnswers) {
  std::optional<std::string> path = DataFile("math500_test.jsonl");
  if (!path) GTEST_SKIP() << "math500_test.jsonl not found: set RLPOST_DATA_DIR to the data folder";
  std::vector<nlohmann::json> rows = ReadJsonl(*path);
  ASSERT_EQ(rows.size(), 500u);
  int agreed = 0;
  for (const nlohmann::json& row : rows) {
    const std::string solution = row.value("solution", "");
    const std::string answer = row.value("answer", "");
    MathVerdict v = CheckMathAnswer(solution, answer);
    if (v.status == MathVerdict::Status::kOk && v.correct) {
      ++agreed;
    } else {
      std::cout << "disagree: " << row.value("unique_id", "?") << " gold '" << answer
                << "' extracted '" << v.extracted << "': " << v.reason << "\n";
    }
  }
  double fraction = static_cast<double>(agreed) / rows.size();
  std::cout << "MATH-500 agreement: " << agreed << "/" << rows.size() << " = " << fraction << "\n";
  RecordProperty("math500_agreement", std::to_string(fraction));
  EXPECT_GE(fraction, kMath500Agreement - kMargin);
}

// Benign re-spellings a model might produce for the same gold answer.
std::string Respell(std::string answer) {
  auto replace_all = [&answer](const std::string& from, const std::string& to) {
    for (size_t at = 0; (at = answer.find(from, at)) != std::string::npos; at += to.size()) {
      answer.replace(at, from.size(), to);
    }
  };
  replace_all("\\dfrac", "\\frac");
  replace_all("\\frac", "\\dfrac");
  replace_all("^\\circ", "^{\\circ}");
  replace_all("\\left", "");
  replace_all("\\right", "");
  return "$ " + answer + " $.";
}

TEST(Math500Test, SolutionsAgreeWithRespelledGoldAnswers) {
  std::optional<std::string> path = DataFile("math500_test.jsonl");
  if (!path) GTEST_SKIP() << "math500_test.jsonl not found: set RLPOST_DATA_DIR to the data folder";
  std::vector<nlohmann::json> rows = ReadJsonl(*path);
  int agreed = 0;
  for (const nlohmann::json& row : rows) {
    const std::string respelled = Respell(row.value("answer", ""));
    MathVerdict v = CheckMathAnswer(row.value("solution", ""), respelled);
    if (v.status == MathVerdict::Status::kOk && v.correct) {
      ++agreed;
    } else {
      std::cout << "disagree: " << row.value("unique_id", "?") << " respelled gold '"
                << respelled << "' extracted '" << v.extracted << "': " << v.reason << "\n";
    }
  }
  double fraction = static_cast<double>(agreed) / rows.size();
  std::cout << "MATH-500 agreement (re-spelled gold): " << agreed << "/" << rows.size() << " = "
            << fraction << "\n";
  EXPECT_GE(fraction, kMath500Agreement - kMargin);
}

TEST(Math500Test, AnswersOfDifferentProblemsDiffer) {
  std::optional<std::string> path = DataFile("math500_test.jsonl");
  if (!path) GTEST_SKIP() << "math500_test.jsonl not found: set RLPOST_DATA_DIR to the data folder";
  struct Numeric {
    std::string solution;
    std::string answer;
    long double value;
  };
  std::vector<Numeric> numeric;
  for (const nlohmann::json& row : ReadJsonl(*path)) {
    std::string answer = row.value("answer", "");
    if (std::optional<long double> value = PlainNumber(answer)) {
      numeric.push_back({row.value("solution", ""), answer, *value});
    }
  }
  ASSERT_GT(numeric.size(), 200u);
  std::mt19937 rng(500);
  std::uniform_int_distribution<size_t> pick(0, numeric.size() - 1);
  int unequal_pairs = 0;
  for (int n = 0; n < 3000; ++n) {
    const Numeric& a = numeric[pick(rng)];
    const Numeric& b = numeric[pick(rng)];
    const bool expected = a.value == b.value;  // e.g. "10,\!080" and "10080"
    unequal_pairs += expected ? 0 : 1;
    MathVerdict v = CheckMathAnswer(a.solution, b.answer);
    ASSERT_EQ(v.status, MathVerdict::Status::kOk) << a.answer;
    EXPECT_EQ(v.correct, expected) << "'" << a.answer << "' vs '" << b.answer << "'";
    EXPECT_EQ(MathAnswersEquivalent(a.answer, b.answer), expected)
        << "'" << a.answer << "' vs '" << b.answer << "'";
  }
  EXPECT_GT(unequal_pairs, 2500);
}

// Every solution against the next problem's gold answer, whatever its form
// (expressions, tuples, text): this is where the symbolic stage must not
// call different answers equal. The few pairs judged equal are problems
// whose answers really coincide ("5" and "x=5").
TEST(Math500Test, SolutionsDisagreeWithTheNextProblemsAnswer) {
  std::optional<std::string> path = DataFile("math500_test.jsonl");
  if (!path) GTEST_SKIP() << "math500_test.jsonl not found: set RLPOST_DATA_DIR to the data folder";
  std::vector<nlohmann::json> rows = ReadJsonl(*path);
  ASSERT_EQ(rows.size(), 500u);
  int unequal = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string next_answer = rows[(i + 1) % rows.size()].value("answer", "");
    MathVerdict v = CheckMathAnswer(rows[i].value("solution", ""), next_answer);
    ASSERT_EQ(v.status, MathVerdict::Status::kOk) << rows[i].value("unique_id", "?");
    if (!v.correct) {
      ++unequal;
    } else {
      std::cout << "equal to the next answer: '" << rows[i].value("answer", "") << "' vs '"
                << next_answer << "': " << v.reason << "\n";
    }
  }
  std::cout << "MATH-500 unequal to the next problem's answer: " << unequal << "/500\n";
  EXPECT_GE(unequal, 495);
}

struct Gsm8kRow {
  std::string solution;  // worked solution ending in "#### N"
  std::string number;    // N as written
};

std::vector<Gsm8kRow> ReadGsm8k(const std::string& path) {
  std::vector<Gsm8kRow> rows;
  for (const nlohmann::json& row : ReadJsonl(path)) {
    std::string solution = row.value("answer", "");
    size_t hashes = solution.rfind("####");
    if (hashes == std::string::npos) {
      ADD_FAILURE() << "GSM8K row without '####': " << solution.substr(0, 80);
      continue;
    }
    std::string number = solution.substr(hashes + 4);
    number.erase(0, number.find_first_not_of(" \n"));
    number.erase(number.find_last_not_of(" \n") + 1);
    rows.push_back({solution, number});
  }
  return rows;
}

TEST(Gsm8kTest, SolutionsAgreeWithTheirOwnNumber) {
  std::optional<std::string> path = DataFile("gsm8k_test.jsonl");
  if (!path) GTEST_SKIP() << "gsm8k_test.jsonl not found: set RLPOST_DATA_DIR to the data folder";
  std::vector<Gsm8kRow> rows = ReadGsm8k(*path);
  ASSERT_EQ(rows.size(), 1319u);
  int agreed = 0;
  for (const Gsm8kRow& row : rows) {
    // As written ("1,450,000") and without separators ("1450000").
    std::string plain = row.number;
    plain.erase(std::remove(plain.begin(), plain.end(), ','), plain.end());
    MathVerdict written = CheckMathAnswer(row.solution, row.number);
    MathVerdict stripped = CheckMathAnswer(row.solution, plain);
    bool ok = written.status == MathVerdict::Status::kOk && written.correct &&
              stripped.status == MathVerdict::Status::kOk && stripped.correct;
    if (ok) {
      ++agreed;
    } else {
      std::cout << "disagree: '" << row.number << "': " << written.reason << " / "
                << stripped.reason << "\n";
    }
  }
  double fraction = static_cast<double>(agreed) / rows.size();
  std::cout << "GSM8K agreement: " << agreed << "/" << rows.size() << " = " << fraction << "\n";
  RecordProperty("gsm8k_agreement", std::to_string(fraction));
  EXPECT_GE(fraction, kGsm8kAgreement - kMargin);
}

TEST(Gsm8kTest, OtherProblemsNumbersDiffer) {
  std::optional<std::string> path = DataFile("gsm8k_test.jsonl");
  if (!path) GTEST_SKIP() << "gsm8k_test.jsonl not found: set RLPOST_DATA_DIR to the data folder";
  std::vector<Gsm8kRow> rows = ReadGsm8k(*path);
  ASSERT_FALSE(rows.empty());
  std::mt19937 rng(8);
  std::uniform_int_distribution<size_t> pick(0, rows.size() - 1);
  for (int n = 0; n < 3000; ++n) {
    const Gsm8kRow& a = rows[pick(rng)];
    const Gsm8kRow& b = rows[pick(rng)];
    std::optional<long double> va = PlainNumber(a.number);
    std::optional<long double> vb = PlainNumber(b.number);
    ASSERT_TRUE(va && vb) << a.number << " / " << b.number;
    MathVerdict v = CheckMathAnswer(a.solution, b.number);
    ASSERT_EQ(v.status, MathVerdict::Status::kOk);
    EXPECT_EQ(v.correct, *va == *vb) << "'" << a.number << "' vs '" << b.number << "'";
  }
}

}  // namespace
}  // namespace rlpost
