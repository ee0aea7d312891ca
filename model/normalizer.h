#pragma once
// The "normalizer" of a Hugging Face tokenizer.json: null, NFC, NFD, NFKC,
// NFKD, or a Sequence of those. Internal to model/. Immutable; thread-safe.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "model/unicode_text.h"
#include "nlohmann/json.hpp"

namespace rlpost {

class Normalizer {
 public:
  // Any other type is InvalidArgument naming it.
  static absl::StatusOr<Normalizer> FromJson(const nlohmann::json& config);

  // Applies the steps in order to valid UTF-8 text.
  absl::StatusOr<std::string> Apply(std::string_view text) const;
  bool is_identity() const { return steps_.empty(); }

 private:
  static absl::Status AddSteps(const nlohmann::json& config, std::vector<NormalizationForm>* steps);
  std::vector<NormalizationForm> steps_;
};

}  // namespace rlpost
