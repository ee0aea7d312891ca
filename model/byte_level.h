#pragma once
// The GPT-2 byte-level alphabet used by byte-level BPE tokenizers: each of the
// 256 byte values is shown as one printable Unicode character (printable
// Latin-1 bytes as themselves, the other 68 as U+0100 onwards), so a BPE
// vocabulary over these characters can spell any byte string. Internal to
// model/. Immutable after construction; thread-safe.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace rlpost {

class ByteLevelAlphabet {
 public:
  // The process-wide instance.
  static const ByteLevelAlphabet& Get();

  // The character that stands for `byte`.
  char32_t CharForByte(uint8_t byte) const { return byte_to_char_[byte]; }
  // The UTF-8 spelling of that character (1 or 2 bytes).
  std::string_view Utf8ForByte(uint8_t byte) const { return byte_to_utf8_[byte]; }
  // The byte that `cp` stands for, or -1 when `cp` is not in the alphabet.
  int ByteForChar(char32_t cp) const { return cp < kTableSize ? char_to_byte_[cp] : -1; }

  // Maps every byte of `text` to its character (the ByteLevel pre-tokenizer).
  std::string Encode(std::string_view text) const;
  // Appends the bytes that `token` spells when every character of it is in
  // the alphabet; otherwise appends the token's own UTF-8 bytes (what the
  // Hugging Face ByteLevel decoder does for added tokens such as
  // "<｜begin▁of▁sentence｜>"). `token` must be valid UTF-8.
  void DecodeToken(std::string_view token, std::string* out) const;

 private:
  ByteLevelAlphabet();

  static constexpr char32_t kTableSize = 0x144;  // the highest character is U+0143
  std::array<char32_t, 256> byte_to_char_{};
  std::array<std::string, 256> byte_to_utf8_;
  std::array<int16_t, kTableSize> char_to_byte_{};
};

}  // namespace rlpost
