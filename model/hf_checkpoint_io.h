#pragma once
// The weights of a Hugging Face checkpoint directory, in either layout HF
// uses: one `model.safetensors`, or shards `model-00001-of-00003.safetensors`
// ... listed by `model.safetensors.index.json`
//   {"metadata": {"total_size": N}, "weight_map": {"tensor.name":
//   "model-00001-of-00003.safetensors", ...}}
// No LibTorch. Sharding rule, stale-file handling and errors: docs/checkpoints.md.
//
// Functions share no state; concurrent calls on different directories are
// fine. A reader running while a writer replaces the same directory may see
// an error (never a silent mix, except in the case documented on
// WriteCheckpointWeights).

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/raw_tensor.h"
#include "model/safetensors.h"

namespace rlpost {

inline constexpr char kSingleWeightsFileName[] = "model.safetensors";
inline constexpr char kWeightsIndexFileName[] = "model.safetensors.index.json";

// The shard size transformers uses by default (`max_shard_size="5GB"`).
inline constexpr int64_t kDefaultMaxShardBytes = 5'000'000'000;

// "model-00002-of-00003.safetensors" for shard 2 (1-based) of 3.
std::string ShardFileName(int shard, int num_shards);

// Writes `tensors` (in order) to checkpoint directory `dir`, creating it if
// needed. Tensors are packed into shards in order; a shard is closed when the
// next tensor would take its tensor bytes past `max_shard_bytes`, so a tensor
// larger than that gets a shard of its own. With one shard the result is
// `dir/model.safetensors` and no index; otherwise n shard files plus the index,
// whose metadata.total_size is the sum of all tensor bytes.
//
// Files of the other layout are removed once the new one is in place (an old
// index when writing one file; an old model.safetensors when writing shards),
// as are shard files named like HF shards that the new index does not list, so
// no loader picks up stale weights. Each file is written atomically; shards
// are all written under temporary names first, then renamed, then the index
// is replaced. The directory as a whole is not atomic: if the new layout has
// the same shard count as the old one, a crash during the renames leaves old
// and new shards under the old index. Write each checkpoint to a fresh
// directory when that matters.
//
// kInvalidArgument (nothing written) if max_shard_bytes <= 0, a tensor name is
// repeated, or a tensor is malformed (see WriteSafetensors); kInternal on I/O
// failure.
absl::Status WriteCheckpointWeights(const std::string& dir, const std::vector<RawTensor>& tensors,
                                    int64_t max_shard_bytes = kDefaultMaxShardBytes);

// Reads all weights of checkpoint directory `dir`: through the index when
// `model.safetensors.index.json` exists, else from `model.safetensors`.
// Returns tensors shard by shard in file-name order, each shard in data order
// (for checkpoints we write, the order given to WriteCheckpointWeights).
//
// With an index, every file it names must exist (kNotFound naming the index,
// the file and a tensor mapped to it), every tensor it maps must be in the
// file it names, and every tensor in a listed shard must be mapped to that
// shard (kDataLoss naming the tensor). metadata.total_size is not checked.
// kNotFound naming `dir` and both file names if neither file exists.
absl::StatusOr<std::vector<RawTensor>> ReadCheckpointWeights(
    const std::string& dir, const SafetensorsReadOptions& options = {});

}  // namespace rlpost
