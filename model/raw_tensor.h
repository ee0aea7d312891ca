#pragma once
// Tensors as plain bytes: the form weights take on the wire (WeightChunk) and
// in safetensors files. No LibTorch in this header.

#include <cstdint>
#include <string>
#include <vector>

namespace rlpost {

enum class RawDType { kFloat32, kBFloat16 };

struct RawTensor {
  std::string name;            // Hugging Face parameter name
  RawDType dtype = RawDType::kFloat32;
  std::vector<int64_t> shape;
  std::string bytes;           // little-endian, row-major

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

inline int64_t DTypeSize(RawDType d) { return d == RawDType::kFloat32 ? 4 : 2; }

}  // namespace rlpost
