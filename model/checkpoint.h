#pragma once
// Hugging Face checkpoint directories: config.json plus model.safetensors or
// sharded model-0000i-of-0000n.safetensors with model.safetensors.index.json.
// A directory we write loads in Hugging Face transformers unchanged (same
// parameter names, shapes, dtypes and config fields); see docs/checkpoints.md.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "model/hf_checkpoint_io.h"
#include "model/moe_transformer.h"

namespace rlpost {

struct CheckpointWriteOptions {
  RawDType dtype = RawDType::kFloat32;           // kFloat32 or kBFloat16
  int64_t max_shard_bytes = kDefaultMaxShardBytes;  // Hugging Face's "5GB"
};

// Reads and parses dir/config.json (see ParseConfigJson).
absl::StatusOr<ModelConfig> ReadCheckpointConfig(const std::string& dir);

// Writes config.json and the weights of `model` into `dir` (created if
// missing).
absl::Status SaveCheckpoint(MoeTransformerImpl& model, const std::string& dir,
                            const CheckpointWriteOptions& options = {});

// Builds the model that config.json describes and loads its weights (fp32,
// bf16 or fp16 storage). Errors name the file, field or tensor at fault.
absl::StatusOr<MoeTransformer> LoadCheckpoint(const std::string& dir);

}  // namespace rlpost
