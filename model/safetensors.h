#pragma once
// Reading and writing the safetensors format (an 8-byte little-endian header
// length, a JSON header of name -> {dtype, shape, data_offsets}, then the raw
// bytes). No LibTorch. Writes are atomic: temporary file, then rename.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/raw_tensor.h"

namespace rlpost {

absl::Status WriteSafetensors(const std::string& path, const std::vector<RawTensor>& tensors);
absl::StatusOr<std::vector<RawTensor>> ReadSafetensors(const std::string& path);

}  // namespace rlpost
