#pragma once
// Weight versions on the wire: splitting named tensors into WeightChunk
// messages (with CRC-32C per chunk) and assembling them back with every check
// a receiver must make before swapping weights in.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/raw_tensor.h"
#include "rlpost/v1/common.pb.h"

namespace rlpost {

// Splits `tensors` into chunks of at most chunk_bytes (0 means 1 MiB).
std::vector<v1::WeightChunk> ChunkWeights(int64_t version, const std::vector<RawTensor>& tensors,
                                          int64_t chunk_bytes);

// Collects the chunks of one version. Not thread-safe (one stream each).
class WeightAssembler {
 public:
  // Checks the chunk's checksum, version, shape/dtype consistency and offset
  // order; errors name the tensor.
  absl::Status Add(const v1::WeightChunk& chunk);
  // Checks completeness (every tensor fully received, tensor_count matched).
  absl::StatusOr<std::vector<RawTensor>> Finish();
  int64_t version() const { return version_; }
  int64_t bytes() const { return bytes_; }

 private:
  int64_t version_ = -1;
  int32_t tensor_count_ = -1;
  int64_t bytes_ = 0;
  std::vector<RawTensor> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, int64_t> expected_bytes_;
};

}  // namespace rlpost
