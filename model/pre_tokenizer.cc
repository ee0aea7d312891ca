#include "model/pre_tokenizer.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "model/byte_level.h"

namespace rlpost {
namespace {

// GPT-2's pre-tokenization regex, used by ByteLevel when use_regex is true.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

bool BoolField(const nlohmann::json& config, const char* key, bool fallback) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  return it->get<bool>();
}

// [begin, end) and whether the pattern matched there, covering the text.
using Part = std::tuple<size_t, size_t, bool>;

std::vector<Part> MatchesToParts(size_t text_size, const std::vector<UnicodeRegex::Span>& matches,
                                 bool invert) {
  std::vector<Part> parts;
  if (text_size == 0) {
    parts.emplace_back(0, 0, invert);
    return parts;
  }
  size_t prev = 0;
  for (const auto& [begin, end] : matches) {
    if (prev != begin) parts.emplace_back(prev, begin, invert);
    parts.emplace_back(begin, end, !invert);
    prev = end;
  }
  if (prev != text_size) parts.emplace_back(prev, text_size, invert);
  return parts;
}

}  // namespace

absl::Status PreTokenizer::AddSteps(const nlohmann::json& config, std::vector<Step>* steps) {
  if (config.is_null()) return absl::OkStatus();
  if (!config.is_object() || !config.contains("type") || !config["type"].is_string()) {
    return absl::InvalidArgumentError("tokenizer.json: pre_tokenizer without a 'type'");
  }
  const std::string& type = config["type"].get_ref<const std::string&>();
  if (type == "Sequence") {
    auto list = config.find("pretokenizers");
    if (list == config.end() || !list->is_array()) {
      return absl::InvalidArgumentError(
          "tokenizer.json: pre_tokenizer Sequence without a 'pretokenizers' list");
    }
    for (const nlohmann::json& step : *list) {
      absl::Status status = AddSteps(step, steps);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }
  if (type == "ByteLevel") {
    Step step;
    step.kind = Step::Kind::kByteLevel;
    step.add_prefix_space = BoolField(config, "add_prefix_space", true);
    step.use_regex = BoolField(config, "use_regex", true);
    if (step.use_regex) {
      auto regex = UnicodeRegex::Compile(kGpt2Pattern);
      if (!regex.ok()) return regex.status();
      step.pattern.push_back(*std::move(regex));
    }
    steps->push_back(std::move(step));
    return absl::OkStatus();
  }
  if (type == "Split") {
    Step step;
    step.kind = Step::Kind::kSplit;
    auto pattern = config.find("pattern");
    absl::StatusOr<UnicodeRegex> regex = absl::InvalidArgumentError(
        "tokenizer.json: Split pre_tokenizer needs a pattern with "
        "a 'Regex' or 'String' string");
    if (pattern != config.end() && pattern->is_object()) {
      if (pattern->contains("Regex") && (*pattern)["Regex"].is_string()) {
        regex = UnicodeRegex::Compile((*pattern)["Regex"].get<std::string>());
      } else if (pattern->contains("String") && (*pattern)["String"].is_string()) {
        regex = UnicodeRegex::Compile((*pattern)["String"].get<std::string>(), /*literal=*/true);
      }
    }
    if (!regex.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.json: Split pre_tokenizer: ", regex.status().message()));
    }
    step.pattern.push_back(*std::move(regex));
    std::string behavior = config.value("behavior", std::string("Isolated"));
    if (behavior == "Removed") {
      step.behavior = Behavior::kRemoved;
    } else if (behavior == "Isolated") {
      step.behavior = Behavior::kIsolated;
    } else if (behavior == "MergedWithPrevious") {
      step.behavior = Behavior::kMergedWithPrevious;
    } else if (behavior == "MergedWithNext") {
      step.behavior = Behavior::kMergedWithNext;
    } else if (behavior == "Contiguous") {
      step.behavior = Behavior::kContiguous;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.json: Split pre_tokenizer: unknown behavior '", behavior, "'"));
    }
    step.invert = BoolField(config, "invert", false);
    steps->push_back(std::move(step));
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("tokenizer.json: unsupported pre_tokenizer type '", type,
                   "' (supported: Sequence, Split, ByteLevel, null)"));
}

absl::StatusOr<PreTokenizer> PreTokenizer::FromJson(const nlohmann::json& config) {
  PreTokenizer pre;
  absl::Status status = AddSteps(config, &pre.steps_);
  if (!status.ok()) return status;
  for (const Step& step : pre.steps_) {
    if (step.kind == Step::Kind::kByteLevel) pre.byte_level_ = true;
  }
  return pre;
}

absl::Status PreTokenizer::SplitPiece(const Step& step, const std::string& piece,
                                      std::vector<std::string>* out) {
  if (step.kind == Step::Kind::kByteLevel) {
    const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::Get();
    std::string text = piece;
    if (step.add_prefix_space && (text.empty() || text[0] != ' ')) text.insert(0, " ");
    if (!step.use_regex) {
      out->push_back(alphabet.Encode(text));
      return absl::OkStatus();
    }
    std::vector<UnicodeRegex::Span> matches;
    absl::Status status = step.pattern[0].FindAll(text, &matches);
    if (!status.ok()) return status;
    for (const Part& part : MatchesToParts(text.size(), matches, false)) {
      auto [begin, end, is_match] = part;
      if (begin != end)
        out->push_back(alphabet.Encode(std::string_view(text).substr(begin, end - begin)));
    }
    return absl::OkStatus();
  }

  std::vector<UnicodeRegex::Span> matches;
  absl::Status status = step.pattern[0].FindAll(piece, &matches);
  if (!status.ok()) return status;
  std::vector<Part> parts = MatchesToParts(piece.size(), matches, step.invert);
  // Each behavior as in Hugging Face's NormalizedString::split; the bool of
  // `kept` says whether the part is dropped.
  std::vector<Part> kept;
  switch (step.behavior) {
    case Behavior::kIsolated:
      for (auto [b, e, m] : parts) kept.emplace_back(b, e, false);
      break;
    case Behavior::kRemoved:
      kept = parts;
      break;
    case Behavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (auto [b, e, m] : parts) {
        if (m && !previous_match && !kept.empty()) {
          std::get<1>(kept.back()) = e;
        } else {
          kept.emplace_back(b, e, false);
        }
        previous_match = m;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        auto [b, e, m] = *it;
        if (m && !previous_match && !kept.empty()) {
          std::get<0>(kept.back()) = b;
        } else {
          kept.emplace_back(b, e, false);
        }
        previous_match = m;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    }
    case Behavior::kContiguous: {
      bool previous_match = false;
      for (auto [b, e, m] : parts) {
        if (m == previous_match && !kept.empty()) {
          std::get<1>(kept.back()) = e;
        } else {
          kept.emplace_back(b, e, false);
        }
        previous_match = m;
      }
      break;
    }
  }
  for (auto [b, e, drop] : kept) {
    if (!drop && b != e) out->push_back(piece.substr(b, e - b));
  }
  return absl::OkStatus();
}

absl::Status PreTokenizer::Split(std::string_view text, std::vector<std::string>* pieces) const {
  pieces->clear();
  pieces->emplace_back(text);
  std::vector<std::string> next;
  for (const Step& step : steps_) {
    next.clear();
    for (const std::string& piece : *pieces) {
      absl::Status status = SplitPiece(step, piece, &next);
      if (!status.ok()) return status;
    }
    pieces->swap(next);
  }
  if (pieces->size() == 1 && (*pieces)[0].empty()) pieces->clear();
  return absl::OkStatus();
}

}  // namespace rlpost
