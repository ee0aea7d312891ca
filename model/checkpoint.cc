#include "model/checkpoint.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "model/hf_checkpoint_io.h"

namespace rlpost {

absl::StatusOr<ModelConfig> ReadCheckpointConfig(const std::string& dir) {
  absl::StatusOr<ModelConfig> config = ReadConfigJsonFile(dir + "/config.json");
  if (absl::IsNotFound(config.status())) {
    return absl::NotFoundError(absl::StrCat(config.status().message(),
                                            ": a checkpoint directory needs a config.json"));
  }
  return config;
}

absl::Status SaveCheckpoint(MoeTransformerImpl& model, const std::string& dir,
                            const CheckpointWriteOptions& options) {
  if (options.dtype != RawDType::kFloat32 && options.dtype != RawDType::kBFloat16) {
    return absl::InvalidArgumentError("checkpoint dtype must be float32 or bfloat16");
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create '", dir, "': ", ec.message()));
  absl::Status s =
      WriteCheckpointWeights(dir, model.ExportWeights(options.dtype), options.max_shard_bytes);
  if (!s.ok()) return s;
  std::string path = dir + "/config.json", tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << model.config().ToConfigJson(options.dtype == RawDType::kBFloat16 ? "bfloat16"
                                                                            : "float32")
        << "\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write '", tmp, "'"));
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename '", tmp, "': ", ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<MoeTransformer> LoadCheckpoint(const std::string& dir) {
  absl::StatusOr<ModelConfig> config = ReadCheckpointConfig(dir);
  if (!config.ok()) return config.status();
  absl::StatusOr<std::vector<RawTensor>> weights = ReadCheckpointWeights(dir);
  if (!weights.ok()) return weights.status();
  MoeTransformer model(*config);
  absl::Status s = model->ImportWeights(*weights);
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat(dir, ": ", s.message()));
  return model;
}

}  // namespace rlpost
