#include "model/bpe_model.h"

#include <queue>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "model/unicode_text.h"

namespace rlpost {
namespace {

constexpr char32_t kSmallCharLimit = 0x400;
// Pieces this long are rare enough that caching them only costs memory.
constexpr size_t kMaxCachedPieceBytes = 256;
constexpr size_t kMaxCacheEntries = 200000;

std::string OptionalString(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return "";
  return it->get<std::string>();
}

bool OptionalBool(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return false;
  return it->get<bool>();
}

// Splits one merge into its two parts: [a, b] pairs (tokenizers >= 0.20) or
// "a b" strings with exactly one space (older files).
absl::StatusOr<std::pair<std::string, std::string>> MergeParts(const nlohmann::json& merge,
                                                               size_t index) {
  if (merge.is_array()) {
    if (merge.size() != 2 || !merge[0].is_string() || !merge[1].is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.json: model.merges[", index, "] is not a pair of strings"));
    }
    return std::make_pair(merge[0].get<std::string>(), merge[1].get<std::string>());
  }
  if (!merge.is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.json: model.merges[", index, "] is neither \"a b\" nor [a, b]"));
  }
  const std::string& text = merge.get_ref<const std::string&>();
  size_t space = text.find(' ');
  if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.json: model.merges[", index, "] '", text, "' is not two parts"));
  }
  return std::make_pair(text.substr(0, space), text.substr(space + 1));
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const nlohmann::json& model) {
  if (!model.is_object()) {
    return absl::InvalidArgumentError("tokenizer.json: 'model' is missing or not an object");
  }
  std::string type = OptionalString(model, "type");
  if (type != "BPE") {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: unsupported model type '", type,
                                                   "' (only BPE is supported)"));
  }
  auto dropout = model.find("dropout");
  if (dropout != model.end() && !dropout->is_null() && dropout->get<double>() != 0.0) {
    return absl::InvalidArgumentError(
        "tokenizer.json: BPE dropout is not supported (encoding must be deterministic)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (!OptionalString(model, key).empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.json: BPE ", key, " is not supported"));
    }
  }
  auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) {
    return absl::InvalidArgumentError("tokenizer.json: model.vocab is missing or not an object");
  }

  std::unique_ptr<BpeModel> bpe(new BpeModel());
  bpe->token_to_id_.reserve(vocab->size());
  int64_t max_id = -1;
  for (const auto& [token, id_json] : vocab->items()) {
    if (!id_json.is_number_integer() || id_json.get<int64_t>() < 0 ||
        id_json.get<int64_t>() >= (int64_t{1} << 31) - 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.json: model.vocab['", token, "'] is not an id in [0, 2^31-1)"));
    }
    int64_t id = id_json.get<int64_t>();
    bpe->token_to_id_[token] = static_cast<int32_t>(id);
    if (id > max_id) max_id = id;
  }
  bpe->id_to_token_.resize(static_cast<size_t>(max_id + 1));
  bpe->has_token_.assign(static_cast<size_t>(max_id + 1), false);
  bpe->small_char_id_.assign(kSmallCharLimit, -1);
  for (const auto& [token, id] : bpe->token_to_id_) {
    bpe->id_to_token_[id] = token;
    bpe->has_token_[id] = true;
    size_t len = Utf8SequenceLength(token, 0);
    if (!token.empty() && len == token.size()) {
      char32_t cp = DecodeUtf8(token, 0, len);
      if (cp < kSmallCharLimit) bpe->small_char_id_[cp] = id;
    }
  }

  auto merges = model.find("merges");
  if (merges != model.end() && !merges->is_null()) {
    if (!merges->is_array()) {
      return absl::InvalidArgumentError("tokenizer.json: model.merges is not a list");
    }
    bpe->merges_.reserve(merges->size());
    for (size_t i = 0; i < merges->size(); ++i) {
      auto parts = MergeParts((*merges)[i], i);
      if (!parts.ok()) return parts.status();
      const auto& [a, b] = *parts;
      int32_t a_id = bpe->TokenToId(a);
      int32_t b_id = bpe->TokenToId(b);
      int32_t new_id = bpe->TokenToId(a + b);
      for (const auto& [part, id] :
           {std::make_pair(a, a_id), std::make_pair(b, b_id), std::make_pair(a + b, new_id)}) {
        if (id < 0) {
          return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: model.merges[", i,
                                                         "] uses '", part,
                                                         "', which is not in the vocab"));
        }
      }
      // A repeated merge keeps its last rank, as in Hugging Face's map.
      bpe->merges_[PairKey(a_id, b_id)] = Merge{static_cast<int32_t>(i), new_id};
    }
  }

  std::string unk = OptionalString(model, "unk_token");
  if (!unk.empty()) {
    bpe->unk_id_ = bpe->TokenToId(unk);
    if (bpe->unk_id_ < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.json: model.unk_token '", unk, "' is not in the vocab"));
    }
  }
  bpe->fuse_unk_ = OptionalBool(model, "fuse_unk");
  bpe->byte_fallback_ = OptionalBool(model, "byte_fallback");
  bpe->ignore_merges_ = OptionalBool(model, "ignore_merges");
  bpe->byte_fallback_ids_.assign(256, -1);
  for (int b = 0; b < 256; ++b) {
    bpe->byte_fallback_ids_[b] = bpe->TokenToId(absl::StrFormat("<0x%02X>", b));
  }
  return bpe;
}

int32_t BpeModel::TokenToId(std::string_view token) const {
  auto it = token_to_id_.find(absl::string_view(token.data(), token.size()));
  return it == token_to_id_.end() ? -1 : it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || id >= id_limit() || !has_token_[id]) return nullptr;
  return &id_to_token_[id];
}

int32_t BpeModel::CharToId(char32_t cp, std::string_view utf8) const {
  if (cp < kSmallCharLimit) return small_char_id_[cp];
  return TokenToId(utf8);
}

void BpeModel::InitialSymbols(std::string_view piece, std::vector<int32_t>* symbols) const {
  bool pending_unk = false;
  size_t pos = 0;
  while (pos < piece.size()) {
    size_t len = Utf8SequenceLength(piece, pos);
    if (len == 0) len = 1;  // cannot happen for sanitized text; stay in bounds
    std::string_view ch = piece.substr(pos, len);
    pos += len;
    int32_t id = CharToId(DecodeUtf8(ch, 0, ch.size()), ch);
    if (id >= 0) {
      if (pending_unk) symbols->push_back(unk_id_);
      pending_unk = false;
      symbols->push_back(id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : ch) all = all && byte_fallback_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all) {
        if (pending_unk) symbols->push_back(unk_id_);
        pending_unk = false;
        for (char c : ch) symbols->push_back(byte_fallback_ids_[static_cast<uint8_t>(c)]);
        continue;
      }
    }
    if (unk_id_ >= 0) {
      if (pending_unk && !fuse_unk_) symbols->push_back(unk_id_);
      pending_unk = true;
    }
    // Without an unk token the character is dropped, as Hugging Face does.
  }
  if (pending_unk) symbols->push_back(unk_id_);
}

void BpeModel::MergeSymbols(std::vector<int32_t>* symbols) const {
  const int n = static_cast<int>(symbols->size());
  if (n < 2) return;
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::vector<int32_t>& id = *symbols;
  std::vector<int32_t> prev(n), next(n);
  std::vector<bool> alive(n, true);
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto push_pair = [&](int left) {
    int right = next[left];
    if (right < 0) return;
    auto it = merges_.find(PairKey(id[left], id[right]));
    if (it != merges_.end()) queue.push({it->second.rank, left, it->second.new_id});
  };
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  for (int i = 0; i + 1 < n; ++i) push_pair(i);
  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    int left = top.pos;
    if (!alive[left] || next[left] < 0) continue;
    int right = next[left];
    // Stale entry: the pair at `left` changed since it was queued.
    auto it = merges_.find(PairKey(id[left], id[right]));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;
    id[left] = top.new_id;
    alive[right] = false;
    next[left] = next[right];
    if (next[left] >= 0) prev[next[left]] = left;
    if (prev[left] >= 0) push_pair(prev[left]);
    push_pair(left);
  }
  int out = 0;
  for (int i = 0; i >= 0 && i < n; i = next[i]) id[out++] = id[i];
  id.resize(out);
}

void BpeModel::EncodePiece(std::string_view piece, std::vector<int32_t>* ids) const {
  if (piece.empty()) return;
  if (ignore_merges_) {
    int32_t whole = TokenToId(piece);
    if (whole >= 0) {
      ids->push_back(whole);
      return;
    }
  }
  const bool cacheable = piece.size() < kMaxCachedPieceBytes;
  if (cacheable) {
    absl::ReaderMutexLock lock(&cache_mu_);
    auto it = cache_.find(absl::string_view(piece.data(), piece.size()));
    if (it != cache_.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> symbols;
  symbols.reserve(piece.size());
  InitialSymbols(piece, &symbols);
  MergeSymbols(&symbols);
  ids->insert(ids->end(), symbols.begin(), symbols.end());
  if (cacheable) {
    absl::MutexLock lock(&cache_mu_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(piece, std::move(symbols));
  }
}

}  // namespace rlpost
