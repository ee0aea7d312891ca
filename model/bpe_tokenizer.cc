#include "model/bpe_tokenizer.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/added_tokens.h"
#include "model/bpe_model.h"
#include "model/byte_level.h"
#include "model/normalizer.h"
#include "model/pre_tokenizer.h"
#include "model/unicode_text.h"
#include "nlohmann/json.hpp"

namespace rlpost {

struct BpeTokenizer::State {
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  std::unique_ptr<BpeModel> model;
  bool byte_level_decoder = false;
  std::vector<AddedToken> added_tokens;
  absl::flat_hash_map<int32_t, size_t> added_by_id;  // id -> index in added_tokens
  absl::flat_hash_map<std::string, int32_t> added_by_content;
  AddedTokenMatcher raw_matcher;         // normalized == false
  AddedTokenMatcher normalized_matcher;  // normalized == true, contents normalized
  std::vector<int32_t> special_ids;
  int32_t vocab_size = 0;
};

namespace {

std::string TypeOf(const nlohmann::json& component) {
  if (component.is_object() && component.contains("type") && component["type"].is_string()) {
    return component["type"].get<std::string>();
  }
  return "";
}

absl::StatusOr<std::vector<AddedToken>> ParseAddedTokens(const nlohmann::json& root) {
  std::vector<AddedToken> tokens;
  auto list = root.find("added_tokens");
  if (list == root.end() || list->is_null()) return tokens;
  if (!list->is_array()) {
    return absl::InvalidArgumentError("tokenizer.json: 'added_tokens' is not a list");
  }
  for (size_t i = 0; i < list->size(); ++i) {
    const nlohmann::json& entry = (*list)[i];
    if (!entry.is_object() || !entry.contains("content") || !entry["content"].is_string() ||
        !entry.contains("id") || !entry["id"].is_number_integer() ||
        entry["id"].get<int64_t>() < 0 || entry["id"].get<int64_t>() >= (int64_t{1} << 31) - 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.json: added_tokens[", i,
                       "] needs a string 'content' and an id in [0, 2^31-1)"));
    }
    AddedToken token;
    token.content = entry["content"].get<std::string>();
    token.id = static_cast<int32_t>(entry["id"].get<int64_t>());
    if (!IsValidUtf8(token.content) || token.content.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: added_tokens[", i,
                                                     "] content is empty or not valid UTF-8"));
    }
    token.special = entry.value("special", false);
    token.lstrip = entry.value("lstrip", false);
    token.rstrip = entry.value("rstrip", false);
    token.single_word = entry.value("single_word", false);
    // Hugging Face's default: special tokens are not normalized.
    token.normalized = entry.value("normalized", !token.special);
    tokens.push_back(std::move(token));
  }
  return tokens;
}

absl::StatusOr<std::shared_ptr<BpeTokenizer::State>> BuildState(const nlohmann::json& root) {
  auto state = std::make_shared<BpeTokenizer::State>();
  if (!root.is_object()) {
    return absl::InvalidArgumentError("tokenizer.json: the top level is not an object");
  }
  auto model = BpeModel::FromJson(root.contains("model") ? root["model"] : nlohmann::json());
  if (!model.ok()) return model.status();
  state->model = *std::move(model);

  auto normalizer =
      Normalizer::FromJson(root.contains("normalizer") ? root["normalizer"] : nlohmann::json());
  if (!normalizer.ok()) return normalizer.status();
  state->normalizer = *std::move(normalizer);

  auto pre_tokenizer = PreTokenizer::FromJson(root.contains("pre_tokenizer") ? root["pre_tokenizer"]
                                                                             : nlohmann::json());
  if (!pre_tokenizer.ok()) return pre_tokenizer.status();
  state->pre_tokenizer = *std::move(pre_tokenizer);

  nlohmann::json post = root.contains("post_processor") ? root["post_processor"] : nlohmann::json();
  if (!post.is_null() && TypeOf(post) != "ByteLevel") {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.json: unsupported post_processor type '", TypeOf(post),
                     "' (supported: ByteLevel, null; Encode never adds special tokens)"));
  }
  nlohmann::json decoder = root.contains("decoder") ? root["decoder"] : nlohmann::json();
  if (!decoder.is_null() && TypeOf(decoder) != "ByteLevel") {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: unsupported decoder type '",
                                                   TypeOf(decoder),
                                                   "' (supported: ByteLevel, null)"));
  }
  state->byte_level_decoder = !decoder.is_null();

  auto added = ParseAddedTokens(root);
  if (!added.ok()) return added.status();
  state->added_tokens = *std::move(added);
  std::vector<AddedToken> raw, normalized;
  int32_t max_id = state->model->id_limit() - 1;
  for (size_t i = 0; i < state->added_tokens.size(); ++i) {
    const AddedToken& token = state->added_tokens[i];
    state->added_by_id.emplace(token.id, i);
    state->added_by_content.emplace(token.content, token.id);
    if (token.special) state->special_ids.push_back(token.id);
    max_id = std::max(max_id, token.id);
    if (token.normalized) {
      // Matched in normalized text, so its content is normalized too.
      AddedToken copy = token;
      auto content = state->normalizer.Apply(token.content);
      if (!content.ok()) return content.status();
      copy.content = *std::move(content);
      normalized.push_back(std::move(copy));
    } else {
      raw.push_back(token);
    }
  }
  std::sort(state->special_ids.begin(), state->special_ids.end());
  state->special_ids.erase(std::unique(state->special_ids.begin(), state->special_ids.end()),
                           state->special_ids.end());
  state->raw_matcher = AddedTokenMatcher(raw);
  state->normalized_matcher = AddedTokenMatcher(normalized);
  state->vocab_size = max_id + 1;
  return state;
}

}  // namespace

absl::StatusOr<BpeTokenizer> BpeTokenizer::FromJsonText(std::string_view json_text) {
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: malformed JSON: ", e.what()));
  }
  try {
    auto state = BuildState(root);
    if (!state.ok()) return state.status();
    return BpeTokenizer(*std::move(state));
  } catch (const nlohmann::json::exception& e) {
    // A field of the wrong JSON type (e.g. a string where a bool belongs).
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", e.what()));
  }
}

absl::StatusOr<BpeTokenizer> BpeTokenizer::FromJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open tokenizer file '", path, "'"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  auto tokenizer = FromJsonText(buffer.str());
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat(path, ": ", tokenizer.status().message()));
  }
  return tokenizer;
}

absl::StatusOr<std::vector<int32_t>> BpeTokenizer::Encode(std::string_view text) const {
  const State& s = *state_;
  const std::string clean = SanitizeUtf8(text);
  std::vector<int32_t> ids;
  ids.reserve(clean.size() / 3 + 4);
  std::vector<AddedTokenMatcher::Segment> raw_segments, normalized_segments;
  std::vector<std::string> pieces;
  s.raw_matcher.Split(clean, &raw_segments);
  for (const auto& raw : raw_segments) {
    if (raw.token_id >= 0) {
      ids.push_back(raw.token_id);
      continue;
    }
    auto normalized = s.normalizer.Apply(raw.text);
    if (!normalized.ok()) return normalized.status();
    s.normalized_matcher.Split(*normalized, &normalized_segments);
    for (const auto& segment : normalized_segments) {
      if (segment.token_id >= 0) {
        ids.push_back(segment.token_id);
        continue;
      }
      absl::Status status = s.pre_tokenizer.Split(segment.text, &pieces);
      if (!status.ok()) return status;
      for (const std::string& piece : pieces) s.model->EncodePiece(piece, &ids);
    }
  }
  return ids;
}

absl::StatusOr<std::string> BpeTokenizer::Decode(const std::vector<int32_t>& ids,
                                                 bool skip_special_tokens) const {
  const State& s = *state_;
  std::vector<const std::string*> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= s.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("decode: id ", id, " is outside the vocab [0, ", s.vocab_size, ")"));
    }
    auto added = s.added_by_id.find(id);
    if (added != s.added_by_id.end()) {
      const AddedToken& token = s.added_tokens[added->second];
      if (!(skip_special_tokens && token.special)) tokens.push_back(&token.content);
      continue;
    }
    const std::string* token = s.model->IdToToken(id);
    if (token == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("decode: id ", id, " has no token (vocab size ", s.vocab_size, ")"));
    }
    tokens.push_back(token);
  }
  if (!s.byte_level_decoder) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) out.push_back(' ');
      out.append(*tokens[i]);
    }
    return out;
  }
  const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::Get();
  std::string bytes;
  for (const std::string* token : tokens) alphabet.DecodeToken(*token, &bytes);
  return SanitizeUtf8(bytes);
}

int32_t BpeTokenizer::vocab_size() const { return state_->vocab_size; }

std::optional<int32_t> BpeTokenizer::TokenToId(std::string_view token) const {
  auto added = state_->added_by_content.find(absl::string_view(token.data(), token.size()));
  if (added != state_->added_by_content.end()) return added->second;
  int32_t id = state_->model->TokenToId(token);
  if (id < 0) return std::nullopt;
  return id;
}

std::optional<std::string> BpeTokenizer::IdToToken(int32_t id) const {
  auto added = state_->added_by_id.find(id);
  if (added != state_->added_by_id.end()) return state_->added_tokens[added->second].content;
  const std::string* token = state_->model->IdToToken(id);
  if (token == nullptr) return std::nullopt;
  return *token;
}

const std::vector<int32_t>& BpeTokenizer::special_token_ids() const { return state_->special_ids; }

bool BpeTokenizer::IsSpecialToken(int32_t id) const {
  return std::binary_search(state_->special_ids.begin(), state_->special_ids.end(), id);
}

}  // namespace rlpost
