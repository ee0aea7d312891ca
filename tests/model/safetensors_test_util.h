#pragma once
// Helpers shared by the safetensors and checkpoint tests: a status matcher,
// hand-built safetensors byte strings, and bit-pattern tensors.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/raw_tensor.h"

namespace rlpost {
namespace testing_util {

inline absl::Status GetStatus(const absl::Status& s) { return s; }
template <typename T>
absl::Status GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

// Matches an absl::Status (or the status of a StatusOr) with `code` whose
// message matches `message_matcher`.
MATCHER_P2(StatusIs, code, message_matcher, "") {
  absl::Status s = GetStatus(arg);
  if (s.code() != code) {
    *result_listener << "status is " << s;
    return false;
  }
  return ::testing::ExplainMatchResult(message_matcher, std::string(s.message()), result_listener);
}

// 8-byte little-endian length + `header` + `data`: a safetensors file with
// whatever header the test wants.
inline std::string SafetensorsBytes(const std::string& header, const std::string& data) {
  std::string out;
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(n >> (8 * i)));
  return out + header + data;
}

inline void WriteFileBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

inline std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Little-endian bytes of 32-bit / 16-bit patterns.
inline std::string Bytes32(const std::vector<uint32_t>& words) {
  std::string out;
  for (uint32_t w : words) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(w >> (8 * i)));
  }
  return out;
}

inline std::string Bytes16(const std::vector<uint16_t>& halves) {
  std::string out;
  for (uint16_t h : halves) {
    out.push_back(static_cast<char>(h));
    out.push_back(static_cast<char>(h >> 8));
  }
  return out;
}

inline std::vector<uint16_t> Halves(const std::string& bytes) {
  std::vector<uint16_t> out;
  for (size_t i = 0; i + 1 < bytes.size(); i += 2) {
    out.push_back(static_cast<uint16_t>(static_cast<unsigned char>(bytes[i]) |
                                        static_cast<unsigned char>(bytes[i + 1]) << 8));
  }
  return out;
}

inline std::vector<uint32_t> Words(const std::string& bytes) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i + 3 < bytes.size(); i += 4) {
    uint32_t w = 0;
    for (int k = 0; k < 4; ++k)
      w |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + k])) << (8 * k);
    out.push_back(w);
  }
  return out;
}

// A tensor of `dtype` and `shape` filled with deterministic bytes.
inline RawTensor PatternTensor(const std::string& name, RawDType dtype, std::vector<int64_t> shape,
                               int seed) {
  RawTensor t{name, dtype, std::move(shape), ""};
  t.bytes.resize(static_cast<size_t>(t.numel() * DTypeSize(dtype)));
  for (size_t i = 0; i < t.bytes.size(); ++i) {
    t.bytes[i] = static_cast<char>((i * 131 + static_cast<size_t>(seed) * 17 + 7) & 0xff);
  }
  return t;
}

}  // namespace testing_util
}  // namespace rlpost
