#pragma once
// Tensors as plain bytes: the form weights take on the wire (WeightChunk) and
// in safetensors files, plus exact scalar conversions between the float
// formats they may hold. No LibTorch in this header.
//
// Note for code that switches on RawDType: kFloat16 exists only so that
// Float16 checkpoints can be read and converted (ConvertDType in
// model/safetensors.h). Code that handles only F32 and BF16 must reject it
// explicitly rather than treat "not F32" as BF16.

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace rlpost {

// Values are stable (kFloat16 was appended); new dtypes go at the end.
enum class RawDType { kFloat32, kBFloat16, kFloat16 };

struct RawTensor {
  std::string name;            // Hugging Face parameter name
  RawDType dtype = RawDType::kFloat32;
  std::vector<int64_t> shape;
  std::string bytes;           // little-endian, row-major

  // Product of `shape`. Does not check for overflow; untrusted shapes go
  // through the safetensors reader, which rejects products past int64.
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

inline int64_t DTypeSize(RawDType d) {
  switch (d) {
    case RawDType::kFloat32:
      return 4;
    case RawDType::kBFloat16:
    case RawDType::kFloat16:
      return 2;
  }
  return 0;  // not reached for valid enum values
}

// The safetensors spelling of `d`: "F32", "BF16" or "F16".
inline const char* DTypeName(RawDType d) {
  switch (d) {
    case RawDType::kFloat32:
      return "F32";
    case RawDType::kBFloat16:
      return "BF16";
    case RawDType::kFloat16:
      return "F16";
  }
  return "?";
}

// ---- Scalar conversions on bit patterns (IEEE 754 binary32/binary16, bfloat16).

inline uint32_t FloatToBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

inline float BitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// Exact: every bfloat16 is a float32 with 16 zero low mantissa bits.
inline float BFloat16BitsToFloat(uint16_t b) { return BitsToFloat(static_cast<uint32_t>(b) << 16); }

// Round to nearest, ties to even; overflow gives +-inf. A NaN stays a NaN with
// its sign and top payload bits (the quiet bit is set only if truncation would
// otherwise turn it into an infinity), so bf16 -> f32 -> bf16 is the identity
// on every bit pattern.
inline uint16_t FloatBitsToBFloat16Bits(uint32_t u) {
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    uint16_t b = static_cast<uint16_t>(u >> 16);
    if ((b & 0x7fu) == 0) b |= 0x40u;
    return b;
  }
  uint32_t rounding_bias = 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>((u + rounding_bias) >> 16);
}

inline uint16_t FloatToBFloat16Bits(float f) { return FloatBitsToBFloat16Bits(FloatToBits(f)); }

// Exact, including subnormals, infinities and NaN payloads.
inline uint32_t HalfBitsToFloatBits(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return sign | 0x7f800000u | (mant << 13);  // inf / NaN
  if (exp == 0) {
    if (mant == 0) return sign;  // +-0
    // Subnormal: mant * 2^-24. Normalise so the leading 1 becomes implicit.
    int32_t e = 127 - 15 + 1;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --e;
    }
    return sign | (static_cast<uint32_t>(e) << 23) | ((mant & 0x3ffu) << 13);
  }
  return sign | ((exp + 127 - 15) << 23) | (mant << 13);
}

inline float HalfBitsToFloat(uint16_t h) { return BitsToFloat(HalfBitsToFloatBits(h)); }

// Round to nearest, ties to even, with half subnormals; magnitudes from 65520
// up give +-inf. NaN keeps its sign and top payload bits (quiet bit set only
// when needed to stay a NaN), so f16 -> f32 -> f16 is the identity.
inline uint16_t FloatBitsToHalfBits(uint32_t u) {
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t x = u & 0x7fffffffu;
  if (x > 0x7f800000u) {
    uint16_t payload = static_cast<uint16_t>((x >> 13) & 0x3ffu);
    if (payload == 0) payload = 0x200u;
    return static_cast<uint16_t>(sign | 0x7c00u | payload);
  }
  if (x >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // inf or rounds to inf
  uint32_t e = x >> 23;
  if (x < 0x38800000u) {  // below 2^-14: half subnormal or zero
    if (e < 102) return sign;  // below 2^-25 (incl. f32 subnormals): rounds to 0
    uint32_t m = (x & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e;  // 14..24
    uint32_t h = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = ((e - 112) << 10) | ((x >> 13) & 0x3ffu);
  uint32_t rem = x & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // carry may bump the exponent
  return static_cast<uint16_t>(sign | h);
}

inline uint16_t FloatToHalfBits(float f) { return FloatBitsToHalfBits(FloatToBits(f)); }

}  // namespace rlpost
