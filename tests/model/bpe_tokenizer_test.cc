// Unit and property tests of the tokenizer.json BPE tokenizer on tiny
// hand-written tokenizers (no node, no data files). The comparison with
// independent implementations on real Qwen3 / DeepSeek-V3 files is in
// bpe_tokenizer_reference_test.cc.
#include "model/bpe_tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "common/seed.h"
#include "model/pre_tokenizer.h"
#include "model/unicode_regex.h"
#include "model/unicode_text.h"
#include "nlohmann/json.hpp"

namespace rlpost {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

MATCHER_P2(StatusIs, code, message_matcher, "") {
  const absl::Status& status = arg.status();
  if (status.code() != code) {
    *result_listener << "code is " << absl::StatusCodeToString(status.code());
    return false;
  }
  return ::testing::ExplainMatchResult(message_matcher, std::string(status.message()),
                                       result_listener);
}

// GPT-2's byte alphabet, written out independently of model/byte_level.cc:
// printable Latin-1 bytes stand for themselves, the others get U+0100 + n.
std::string ByteChar(int b) {
  static const std::vector<std::string> table = [] {
    std::vector<std::string> t(256);
    int n = 0;
    for (int i = 0; i < 256; ++i) {
      bool keep = (i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE);
      int cp = keep ? i : 0x100 + n++;
      std::string s;
      AppendUtf8(static_cast<char32_t>(cp), &s);
      t[i] = s;
    }
    return t;
  }();
  return table[b];
}

// A tiny byte-level tokenizer: ids 0..255 are the bytes, then nine merges
// spelling "hello" and " world", then two added tokens.
nlohmann::json TinyTokenizerJson(bool string_merges = false) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteChar(b)] = b;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"h", "e"}, {"l", "l"},   {"he", "ll"}, {"hell", "o"}, {"Ġ", "w"},
      {"o", "r"}, {"Ġw", "or"}, {"l", "d"},   {"Ġwor", "ld"}};
  nlohmann::json merge_list = nlohmann::json::array();
  int next_id = 256;
  for (const auto& [a, b] : merges) {
    vocab[a + b] = next_id++;
    if (string_merges) {
      merge_list.push_back(a + " " + b);
    } else {
      merge_list.push_back({a, b});
    }
  }
  nlohmann::json byte_level = {{"type", "ByteLevel"},
                               {"add_prefix_space", false},
                               {"trim_offsets", true},
                               {"use_regex", true}};
  return {
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", 265},
         {"content", "<|end|>"},
         {"special", true},
         {"normalized", false},
         {"lstrip", false},
         {"rstrip", false},
         {"single_word", false}},
        {{"id", 266},
         {"content", "<think>"},
         {"special", false},
         {"normalized", false},
         {"lstrip", false},
         {"rstrip", false},
         {"single_word", false}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", byte_level},
      {"post_processor", byte_level},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"vocab", vocab},
        {"merges", merge_list}}},
  };
}

BpeTokenizer Load(const nlohmann::json& json) {
  auto tokenizer = BpeTokenizer::FromJsonText(json.dump());
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return *std::move(tokenizer);
}

std::vector<int32_t> EncodeOk(const BpeTokenizer& tokenizer, std::string_view text) {
  auto ids = tokenizer.Encode(text);
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

TEST(BpeTokenizerTest, MergesByRankIntoExactIds) {
  BpeTokenizer tokenizer = Load(TinyTokenizerJson());
  EXPECT_EQ(tokenizer.vocab_size(), 267);
  EXPECT_THAT(EncodeOk(tokenizer, "hello world"), ElementsAre(259, 264));
  EXPECT_THAT(EncodeOk(tokenizer, "hell"), ElementsAre(258));
  // "l l" (rank 1) beats "l d" (rank 7); equal ranks merge leftmost first.
  EXPECT_THAT(EncodeOk(tokenizer, "lld"), ElementsAre(257, 'd'));
  EXPECT_THAT(EncodeOk(tokenizer, "lll"), ElementsAre(257, 'l'));
  // GPT-2 pre-tokenization keeps the space with the following word.
  EXPECT_THAT(EncodeOk(tokenizer, "hello  world"), ElementsAre(259, ' ', 264));
  EXPECT_THAT(EncodeOk(tokenizer, ""), ElementsAre());
}

TEST(BpeTokenizerTest, StringAndPairMergesAgree) {
  BpeTokenizer pairs = Load(TinyTokenizerJson(false));
  BpeTokenizer strings = Load(TinyTokenizerJson(true));
  for (std::string text : {"hello world", "hellllo wor ld", "held"}) {
    EXPECT_EQ(EncodeOk(pairs, text), EncodeOk(strings, text)) << text;
  }
}

TEST(BpeTokenizerTest, UnusualBytesUseTheirByteTokens) {
  BpeTokenizer tokenizer = Load(TinyTokenizerJson());
  // NUL, DEL and the two bytes of "ÿ" (C3 BF) have no merges: one id per byte.
  EXPECT_THAT(EncodeOk(tokenizer, std::string("hello\0\x7f", 7)), ElementsAre(259, 0, 0x7f));
  EXPECT_THAT(EncodeOk(tokenizer, "\xc3\xbf"), ElementsAre(0xC3, 0xBF));
  EXPECT_THAT(EncodeOk(tokenizer, "\xf0\x9f\x98\x80"), ElementsAre(0xF0, 0x9F, 0x98, 0x80));
  auto text = tokenizer.Decode({0, 0x7f, 0xC3, 0xBF}, false);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, std::string("\0\x7f\xc3\xbf", 4));
}

TEST(BpeTokenizerTest, AddedTokensAreSplitOutBeforePreTokenization) {
  BpeTokenizer tokenizer = Load(TinyTokenizerJson());
  EXPECT_THAT(EncodeOk(tokenizer, "hello<|end|> world"), ElementsAre(259, 265, 264));
  EXPECT_THAT(EncodeOk(tokenizer, "<think>hello<think>"), ElementsAre(266, 259, 266));
  // A partial token is plain text.
  EXPECT_THAT(EncodeOk(tokenizer, "<|end"), ElementsAre('<', '|', 'e', 'n', 'd'));
  EXPECT_EQ(tokenizer.TokenToId("<|end|>"), 265);
  EXPECT_EQ(tokenizer.TokenToId("hello"), 259);
  EXPECT_EQ(tokenizer.TokenToId("nope"), std::nullopt);
  EXPECT_EQ(tokenizer.IdToToken(266), "<think>");
  EXPECT_EQ(tokenizer.IdToToken(264), "Ġworld");
  EXPECT_THAT(tokenizer.special_token_ids(), ElementsAre(265));
  EXPECT_TRUE(tokenizer.IsSpecialToken(265));
  EXPECT_FALSE(tokenizer.IsSpecialToken(266));
}

TEST(BpeTokenizerTest, AddedTokenFlagsStripAndSingleWord) {
  nlohmann::json json = TinyTokenizerJson();
  json["added_tokens"][0]["lstrip"] = true;
  json["added_tokens"][0]["rstrip"] = true;
  json["added_tokens"][1]["single_word"] = true;
  BpeTokenizer tokenizer = Load(json);
  EXPECT_THAT(EncodeOk(tokenizer, "hello  <|end|>\t world"), ElementsAre(259, 265, 'w', 261, 263));
  EXPECT_THAT(EncodeOk(tokenizer, "he <think> he"), ElementsAre(256, ' ', 266, ' ', 256));
  // Inside a word the single_word token stays text.
  EXPECT_EQ(EncodeOk(tokenizer, "a<think>").size(), 8u);
}

TEST(BpeTokenizerTest, DecodeSkipsSpecialTokensOnRequest) {
  BpeTokenizer tokenizer = Load(TinyTokenizerJson());
  EXPECT_EQ(*tokenizer.Decode({259, 265, 264, 266}, false), "hello<|end|> world<think>");
  EXPECT_EQ(*tokenizer.Decode({259, 265, 264, 266}, true), "hello world<think>");
  // Bytes that end mid-character decode to U+FFFD.
  EXPECT_EQ(*tokenizer.Decode({'a', 0xE2, 0x82}, false), "a\xEF\xBF\xBD");
}

TEST(BpeTokenizerTest, DecodeRejectsOutOfRangeIds) {
  BpeTokenizer tokenizer = Load(TinyTokenizerJson());
  EXPECT_THAT(tokenizer.Decode({259, 5000}, false),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("5000"), HasSubstr("267"))));
  EXPECT_THAT(tokenizer.Decode({-1}, false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("-1")));
}

TEST(BpeTokenizerTest, NfcNormalizerMakesComposedAndDecomposedEqual) {
  nlohmann::json json = TinyTokenizerJson();
  json["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}}}};
  BpeTokenizer tokenizer = Load(json);
  EXPECT_EQ(EncodeOk(tokenizer, "cafe\xcc\x81"), EncodeOk(tokenizer, "caf\xc3\xa9"));
  EXPECT_EQ(*tokenizer.Decode(EncodeOk(tokenizer, "cafe\xcc\x81"), false), "caf\xc3\xa9");
}

TEST(BpeTokenizerTest, CompatibilityNormalizationForms) {
  EXPECT_EQ(*NormalizeUnicode("\xef\xac\x81", NormalizationForm::kNfkc), "fi");  // U+FB01
  EXPECT_EQ(*NormalizeUnicode("\xc3\xa9", NormalizationForm::kNfd), "e\xcc\x81");
  EXPECT_EQ(*NormalizeUnicode("\xe2\x84\xab", NormalizationForm::kNfc), "\xc3\x85");  // Å sign
  EXPECT_EQ(*NormalizeUnicode(std::string("a\0b", 3), NormalizationForm::kNfc),
            std::string("a\0b", 3));
}

TEST(BpeTokenizerTest, ByteFallbackAndUnknownTokensInACharacterLevelModel) {
  nlohmann::json json = {
      {"normalizer", nullptr},
      {"pre_tokenizer", nullptr},
      {"decoder", nullptr},
      {"model",
       {{"type", "BPE"},
        {"unk_token", "<unk>"},
        {"byte_fallback", true},
        {"fuse_unk", false},
        {"vocab", {{"<unk>", 0}, {"<0xC3>", 1}, {"<0xA9>", 2}, {"a", 3}, {"b", 4}, {"ab", 5}}},
        {"merges", {"a b"}}}}};
  BpeTokenizer tokenizer = Load(json);
  EXPECT_THAT(EncodeOk(tokenizer, "ab\xc3\xa9"), ElementsAre(5, 1, 2));
  EXPECT_THAT(EncodeOk(tokenizer, "xya"), ElementsAre(0, 0, 3));
  json["model"]["fuse_unk"] = true;
  EXPECT_THAT(EncodeOk(Load(json), "xya"), ElementsAre(0, 3));
  // Without a decoder, tokens are joined by spaces (as Hugging Face does).
  EXPECT_EQ(*tokenizer.Decode({5, 3}, false), "ab a");
}

TEST(BpeTokenizerTest, SplitBehaviorsFollowHuggingFace) {
  const std::string text = "the-final--countdown";
  auto pieces_for = [&](const std::string& behavior, bool invert = false) {
    nlohmann::json config = {{"type", "Split"},
                             {"pattern", {{"String", "-"}}},
                             {"behavior", behavior},
                             {"invert", invert}};
    auto pre = PreTokenizer::FromJson(config);
    EXPECT_TRUE(pre.ok()) << pre.status();
    std::vector<std::string> pieces;
    EXPECT_TRUE(pre->Split(text, &pieces).ok());
    return pieces;
  };
  EXPECT_THAT(pieces_for("Removed"), ElementsAre("the", "final", "countdown"));
  EXPECT_THAT(pieces_for("Isolated"), ElementsAre("the", "-", "final", "-", "-", "countdown"));
  EXPECT_THAT(pieces_for("MergedWithPrevious"), ElementsAre("the-", "final-", "-", "countdown"));
  EXPECT_THAT(pieces_for("MergedWithNext"), ElementsAre("the", "-final", "-", "-countdown"));
  EXPECT_THAT(pieces_for("Contiguous"), ElementsAre("the", "-", "final", "--", "countdown"));
  EXPECT_THAT(pieces_for("Removed", /*invert=*/true), ElementsAre("-", "-", "-"));
}

TEST(BpeTokenizerTest, MalformedJsonIsInvalidArgument) {
  EXPECT_THAT(BpeTokenizer::FromJsonText("{\"model\": "),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("malformed JSON")));
  EXPECT_THAT(BpeTokenizer::FromJsonText("[1, 2]"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not an object")));
}

TEST(BpeTokenizerTest, UnsupportedComponentsAreNamed) {
  struct Case {
    const char* field;
    nlohmann::json value;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {"model",
       {{"type", "WordPiece"}, {"vocab", nlohmann::json::object()}},
       "model type 'WordPiece'"},
      {"pre_tokenizer", {{"type", "Metaspace"}}, "pre_tokenizer type 'Metaspace'"},
      {"normalizer", {{"type", "Lowercase"}}, "normalizer type 'Lowercase'"},
      {"decoder", {{"type", "WordPiece"}}, "decoder type 'WordPiece'"},
      {"post_processor",
       {{"type", "TemplateProcessing"}},
       "post_processor type 'TemplateProcessing'"},
  };
  for (const Case& c : cases) {
    nlohmann::json json = TinyTokenizerJson();
    json[c.field] = c.value;
    EXPECT_THAT(BpeTokenizer::FromJsonText(json.dump()),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.expected)))
        << c.field;
  }
}

TEST(BpeTokenizerTest, BadModelContentsAreInvalidArgument) {
  nlohmann::json json = TinyTokenizerJson();
  json["model"]["merges"].push_back({"q", "zz"});
  EXPECT_THAT(
      BpeTokenizer::FromJsonText(json.dump()),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'zz', which is not in the vocab")));
  json = TinyTokenizerJson(true);
  json["model"]["merges"].push_back("abc");
  EXPECT_THAT(BpeTokenizer::FromJsonText(json.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'abc' is not two parts")));
  json = TinyTokenizerJson();
  json["model"]["dropout"] = 0.1;
  EXPECT_THAT(BpeTokenizer::FromJsonText(json.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dropout")));
  json = TinyTokenizerJson();
  json["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  EXPECT_THAT(BpeTokenizer::FromJsonText(json.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("(unclosed")));
  json = TinyTokenizerJson();
  json["model"]["fuse_unk"] = "yes";
  EXPECT_THAT(BpeTokenizer::FromJsonText(json.dump()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tokenizer.json")));
}

TEST(BpeTokenizerTest, MissingFileIsNotFound) {
  EXPECT_THAT(BpeTokenizer::FromJsonFile("/nonexistent/tokenizer.json"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/tokenizer.json")));
}

// Random text drawn from ranges that stress the pipeline: ASCII, controls,
// Latin-1, combining marks, CJK, emoji, unusual whitespace, added tokens.
std::string RandomValidUtf8(uint64_t* state, size_t max_chars) {
  static const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x00, 0x7F},       {0x80, 0xFF},     {0x300, 0x36F},   {0x4E00, 0x4E80},   {0x3040, 0x30FF},
      {0x1F300, 0x1F64F}, {0x2000, 0x206F}, {0xFE00, 0xFFFD}, {0x10000, 0x10FFFF}};
  auto next = [state]() { return *state = SplitMix64(*state); };
  std::string out;
  size_t n = next() % (max_chars + 1);
  for (size_t i = 0; i < n; ++i) {
    uint64_t r = next();
    if (r % 17 == 0) {
      out += (r / 17) % 2 == 0 ? "<|end|>" : "<think>";
      continue;
    }
    const auto& [lo, hi] = ranges[(r >> 8) % ranges.size()];
    char32_t cp = lo + static_cast<char32_t>((r >> 24) % (hi - lo + 1));
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';  // surrogates are not scalar values
    AppendUtf8(cp, &out);
  }
  return out;
}

TEST(BpeTokenizerTest, RandomValidUtf8RoundTrips) {
  BpeTokenizer tokenizer = Load(TinyTokenizerJson());
  uint64_t state = 20240611;
  for (int i = 0; i < 3000; ++i) {
    std::string text = RandomValidUtf8(&state, 40);
    ASSERT_TRUE(IsValidUtf8(text));
    auto ids = tokenizer.Encode(text);
    ASSERT_TRUE(ids.ok()) << ids.status();
    for (int32_t id : *ids) ASSERT_TRUE(id >= 0 && id < tokenizer.vocab_size());
    auto decoded = tokenizer.Decode(*ids, false);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ASSERT_EQ(*decoded, text) << "case " << i;
  }
}

TEST(BpeTokenizerTest, InvalidUtf8BecomesReplacementCharacters) {
  BpeTokenizer tokenizer = Load(TinyTokenizerJson());
  // Each maximal ill-formed subpart is one U+FFFD: a lone continuation byte,
  // a truncated 3-byte sequence, an overlong NUL, a surrogate, a stray 0xFF.
  auto ids = tokenizer.Encode(
      "a\x80"
      "b\xe2\x82"
      "c\xc0\x80"
      "d\xed\xa0\x80"
      "e\xff");
  ASSERT_TRUE(ids.ok());
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(*tokenizer.Decode(*ids, false),
            "a" + r + "b" + r + "c" + r + r + "d" + r + r + r + "e" + r);
  uint64_t state = 7;
  for (int i = 0; i < 3000; ++i) {
    std::string bytes;
    size_t n = (state = SplitMix64(state)) % 48;
    for (size_t k = 0; k < n; ++k)
      bytes.push_back(static_cast<char>((state = SplitMix64(state)) & 0xFF));
    auto random_ids = tokenizer.Encode(bytes);
    ASSERT_TRUE(random_ids.ok()) << random_ids.status();
    auto decoded = tokenizer.Decode(*random_ids, false);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, SanitizeUtf8(bytes)) << "case " << i;
    EXPECT_TRUE(IsValidUtf8(*decoded));
  }
}

// Regression: PCRE2's \s also matches U+180E, Oniguruma's (used by Hugging
// Face) does not but matches U+0085; \w must include marks, not No digits.
TEST(BpeTokenizerTest, RegexClassesFollowOniguruma) {
  auto matches = [](const char* pattern, const std::string& text) {
    auto regex = UnicodeRegex::Compile(pattern);
    EXPECT_TRUE(regex.ok()) << regex.status();
    std::vector<UnicodeRegex::Span> spans;
    EXPECT_TRUE(regex->FindAll(text, &spans).ok());
    return spans.size() == 1 && spans[0].first == 0 && spans[0].second == text.size();
  };
  EXPECT_TRUE(matches(R"(\s+)", " \t\n\r\x0b\f\u0085\u00a0\u2028\u3000"));
  EXPECT_FALSE(matches(R"(\s)", "\u180e"));
  EXPECT_FALSE(matches(R"(\s)", "\ufeff"));
  EXPECT_TRUE(matches(R"(\S)", "\u180e"));
  EXPECT_TRUE(matches(R"([^\s\p{L}]+)", "\u180e!"));
  EXPECT_TRUE(matches(R"(\w+)", "e\u0301_9"));
  EXPECT_FALSE(matches(R"(\w)", "\u00bd"));
  EXPECT_TRUE(matches(R"([[:alpha:]\s]+)", "ab c"));
  EXPECT_TRUE(matches(R"([]\s]+)", "] ]"));
}

TEST(BpeTokenizerTest, ConcurrentEncodesAgree) {
  BpeTokenizer tokenizer = Load(TinyTokenizerJson());
  std::vector<std::string> texts;
  uint64_t state = 99;
  for (int i = 0; i < 200; ++i) texts.push_back(RandomValidUtf8(&state, 30));
  std::vector<std::vector<int32_t>> want;
  for (const std::string& text : texts) want.push_back(EncodeOk(tokenizer, text));
  std::vector<int> wrong(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      BpeTokenizer copy = tokenizer;  // copies share tables and cache
      for (int round = 0; round < 5; ++round) {
        for (size_t i = 0; i < texts.size(); ++i) {
          auto ids = copy.Encode(texts[i]);
          if (!ids.ok() || *ids != want[i]) ++wrong[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_THAT(wrong, ElementsAre(0, 0, 0, 0));
}

}  // namespace
}  // namespace rlpost
