#pragma once
// The rollout engine: batched autoregressive sampling from the policy with a
// KV cache, per-sample seeds and per-token logprobs, plus atomic weight
// swaps. The public API has no LibTorch types, so the gRPC service builds
// without LibTorch headers.
//
// Thread-safety: Generate() may run concurrently from many threads; each call
// sees one weight version for its whole duration. LoadWeights() waits for
// running calls and blocks new ones while it swaps.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/run_config.h"
#include "model/raw_tensor.h"
#include "rollout/sampler.h"

namespace rlpost {

enum class FinishKind { kStop, kLength };

struct Generation {
  std::vector<int> tokens;       // generated ids (stop token included)
  std::vector<float> logprobs;   // one per token
  FinishKind finish = FinishKind::kLength;
  uint64_t seed = 0;
  int64_t weight_version = 0;    // version that produced every token
};

class PolicyEngine {
 public:
  // A freshly initialised policy of the given shape (seeded), version 0.
  static absl::StatusOr<std::unique_ptr<PolicyEngine>> Create(const ModelShape& shape,
                                                              int64_t vocab_size);
  ~PolicyEngine();

  // One continuation per prompt (prompt ids include BOS), row i seeded with
  // seeds[i]. Generation stops at an EOS/stop token or after max_new_tokens.
  absl::StatusOr<std::vector<Generation>> Generate(
      const std::vector<std::vector<int>>& prompts, const std::vector<uint64_t>& seeds,
      const SamplingOptions& options, int eos_token);

  // Validates then swaps in a full set of weights as `version`.
  absl::Status LoadWeights(int64_t version, const std::vector<RawTensor>& tensors);
  std::vector<RawTensor> ExportWeights() const;

  int64_t weight_version() const;
  std::string Describe() const;
  int64_t max_seq_len() const;

 private:
  struct Impl;
  explicit PolicyEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rlpost
