#include "model/byte_level.h"

#include "model/unicode_text.h"

namespace rlpost {

const ByteLevelAlphabet& ByteLevelAlphabet::Get() {
  static const ByteLevelAlphabet* const kAlphabet = new ByteLevelAlphabet();
  return *kAlphabet;
}

ByteLevelAlphabet::ByteLevelAlphabet() {
  char_to_byte_.fill(-1);
  // GPT-2's bytes_to_unicode(): '!'..'~', '¡'..'¬' and '®'..'ÿ' keep their
  // code point; the remaining bytes, in increasing order, get U+0100 + n.
  auto keeps_code_point = [](int b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  };
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    char32_t cp = keeps_code_point(b) ? static_cast<char32_t>(b) : next++;
    byte_to_char_[b] = cp;
    AppendUtf8(cp, &byte_to_utf8_[b]);
    char_to_byte_[cp] = static_cast<int16_t>(b);
  }
}

std::string ByteLevelAlphabet::Encode(std::string_view text) const {
  std::string out;
  out.reserve(text.size() * 2);
  for (char c : text) out.append(byte_to_utf8_[static_cast<uint8_t>(c)]);
  return out;
}

void ByteLevelAlphabet::DecodeToken(std::string_view token, std::string* out) const {
  const size_t start = out->size();
  size_t pos = 0;
  while (pos < token.size()) {
    size_t len = Utf8SequenceLength(token, pos);
    int b = len == 0 ? -1 : ByteForChar(DecodeUtf8(token, pos, len));
    if (b < 0) {
      out->resize(start);
      out->append(token);
      return;
    }
    out->push_back(static_cast<char>(b));
    pos += len;
  }
}

}  // namespace rlpost
