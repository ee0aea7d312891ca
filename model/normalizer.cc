#include "model/normalizer.h"

#include "absl/strings/str_cat.h"

namespace rlpost {

absl::Status Normalizer::AddSteps(const nlohmann::json& config,
                                  std::vector<NormalizationForm>* steps) {
  if (config.is_null()) return absl::OkStatus();
  if (!config.is_object() || !config.contains("type") || !config["type"].is_string()) {
    return absl::InvalidArgumentError("tokenizer.json: normalizer without a 'type'");
  }
  const std::string& type = config["type"].get_ref<const std::string&>();
  if (type == "NFC") {
    steps->push_back(NormalizationForm::kNfc);
  } else if (type == "NFD") {
    steps->push_back(NormalizationForm::kNfd);
  } else if (type == "NFKC") {
    steps->push_back(NormalizationForm::kNfkc);
  } else if (type == "NFKD") {
    steps->push_back(NormalizationForm::kNfkd);
  } else if (type == "Sequence") {
    auto list = config.find("normalizers");
    if (list == config.end() || !list->is_array()) {
      return absl::InvalidArgumentError(
          "tokenizer.json: normalizer Sequence without a 'normalizers' list");
    }
    for (const nlohmann::json& step : *list) {
      absl::Status status = AddSteps(step, steps);
      if (!status.ok()) return status;
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.json: unsupported normalizer type '", type,
                     "' (supported: NFC, NFD, NFKC, NFKD, Sequence, null)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Normalizer> Normalizer::FromJson(const nlohmann::json& config) {
  Normalizer normalizer;
  absl::Status status = AddSteps(config, &normalizer.steps_);
  if (!status.ok()) return status;
  return normalizer;
}

absl::StatusOr<std::string> Normalizer::Apply(std::string_view text) const {
  std::string out(text);
  for (NormalizationForm form : steps_) {
    auto next = NormalizeUnicode(out, form);
    if (!next.ok()) return next.status();
    out = *std::move(next);
  }
  return out;
}

}  // namespace rlpost
