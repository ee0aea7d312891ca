#include "controller/dataset.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace rlpost {
namespace {

// A JSON value as answer text: strings as they are, numbers printed (GSM8K-like
// files sometimes store the answer as a number).
bool ValueAsText(const nlohmann::json& value, std::string* out) {
  if (value.is_string()) {
    *out = value.get<std::string>();
    return true;
  }
  if (value.is_number_integer()) {
    *out = std::to_string(value.get<int64_t>());
    return true;
  }
  if (value.is_number()) {
    *out = value.dump();
    return true;
  }
  return false;
}

// Splits a GSM8K answer "worked text\n#### 18" into ("18", "worked text").
// Returns false when there is no "####" marker.
bool SplitGsm8kAnswer(const std::string& text, std::string* answer, std::string* solution) {
  size_t marker = text.rfind("####");
  if (marker == std::string::npos) return false;
  *answer = std::string(absl::StripAsciiWhitespace(text.substr(marker + 4)));
  *solution = std::string(absl::StripAsciiWhitespace(text.substr(0, marker)));
  // GSM8K numbers may carry thousands separators ("1,000").
  answer->erase(std::remove(answer->begin(), answer->end(), ','), answer->end());
  return true;
}

absl::Status LineError(const std::string& path, int64_t line, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, " line ", line, ": ", what));
}

}  // namespace

absl::StatusOr<std::vector<Problem>> LoadJsonlProblems(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read dataset file '", path, "'"));
  const std::string stem = std::filesystem::path(path).stem().string();
  std::vector<Problem> problems;
  std::string text;
  int64_t line = 0;
  while (std::getline(in, text)) {
    ++line;
    if (absl::StripAsciiWhitespace(text).empty()) continue;
    nlohmann::json row = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (row.is_discarded()) return LineError(path, line, "not valid JSON");
    if (!row.is_object()) return LineError(path, line, "not a JSON object");
    Problem p;
    bool has_prompt = false;
    for (const char* field : {"prompt", "question", "problem"}) {
      auto it = row.find(field);
      if (it == row.end()) continue;
      if (!it->is_string()) {
        return LineError(path, line, absl::StrCat("field '", field, "' must be a string"));
      }
      p.prompt = it->get<std::string>();
      has_prompt = true;
      break;
    }
    if (!has_prompt) {
      return LineError(path, line, "field 'prompt' missing (also looked for 'question', 'problem')");
    }
    auto answer = row.find("answer");
    if (answer == row.end()) return LineError(path, line, "field 'answer' missing");
    std::string answer_text;
    if (!ValueAsText(*answer, &answer_text)) {
      return LineError(path, line, "field 'answer' must be a string or a number");
    }
    std::string gsm_answer, gsm_solution;
    if (SplitGsm8kAnswer(answer_text, &gsm_answer, &gsm_solution)) {
      if (gsm_answer.empty()) return LineError(path, line, "field 'answer' has nothing after '####'");
      p.answer = gsm_answer;
      p.solution = gsm_solution;
    } else {
      p.answer = std::string(absl::StripAsciiWhitespace(answer_text));
    }
    if (p.answer.empty()) return LineError(path, line, "field 'answer' is empty");
    auto solution = row.find("solution");
    if (solution != row.end()) {
      if (!solution->is_string()) return LineError(path, line, "field 'solution' must be a string");
      p.solution = solution->get<std::string>();
    }
    auto id = row.find("id");
    if (id != row.end()) {
      if (!ValueAsText(*id, &p.id)) {
        return LineError(path, line, "field 'id' must be a string or a number");
      }
    } else {
      p.id = absl::StrCat(stem, "-", line);
    }
    problems.push_back(std::move(p));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading '", path, "'"));
  return problems;
}

absl::StatusOr<std::vector<Problem>> LoadProblems(const RunConfig& config, Split split) {
  if (config.task_kind == "arith") {
    int64_t count = split == Split::kTrain ? config.task_train_size : config.task_heldout_size;
    return GenerateArithProblems(config.seed, count, config.task_max_operand, split);
  }
  if (config.task_kind == "jsonl") {
    const std::string& path =
        split == Split::kTrain ? config.task_train_path : config.task_heldout_path;
    return LoadJsonlProblems(path);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("config key 'task.kind' must be 'arith' or 'jsonl', got '", config.task_kind, "'"));
}

}  // namespace rlpost
