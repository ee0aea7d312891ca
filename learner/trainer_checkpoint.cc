// Trainer checkpoints: save and exact resume (docs/checkpoints.md).
#include <ATen/CPUGeneratorImpl.h>
#include <torch/types.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/crc32c.h"
#include "learner/trainer.h"
#include "learner/trainer_impl.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "model/torch_compat.h"

namespace rlpost {
namespace {

namespace fs = std::filesystem;

constexpr char kStateFile[] = "trainer_state.json";
constexpr char kOptimizerFile[] = "optimizer.safetensors";
constexpr char kReferenceFile[] = "reference.safetensors";
constexpr char kCriticFile[] = "critic.safetensors";
constexpr char kCriticOptimizerFile[] = "critic_optimizer.safetensors";
constexpr char kLatestFile[] = "latest";
constexpr int kFormat = 1;

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (!in.good() && !in.eof()) return absl::DataLossError(absl::StrCat("error reading ", path));
  return buf.str();
}

// Size and CRC-32C of every file in `dir` except the state file.
absl::StatusOr<nlohmann::json> Manifest(const std::string& dir) {
  nlohmann::json files = nlohmann::json::object();
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().filename() != kStateFile) {
      names.push_back(entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    absl::StatusOr<std::string> bytes = ReadFile(dir + "/" + name);
    if (!bytes.ok()) return bytes.status();
    files[name] = {{"bytes", bytes->size()}, {"crc32c", Crc32c(*bytes)}};
  }
  return files;
}

// False unless `hex` is an even number of hex digits.
bool FromHex(absl::string_view hex, std::string* bytes) {
  if (hex.size() % 2 != 0) return false;
  for (char c : hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  *bytes = absl::HexStringToBytes(hex);
  return true;
}

using AdamStateKey = std::decay_t<
    decltype(std::declval<const torch::optim::AdamW&>().state())>::key_type;

AdamStateKey StateKey(const at::Tensor& p) {
  return torch_compat::OptimizerStateKey<AdamStateKey>(p);
}

// A float32 tensor on `device`, owning its memory.
at::Tensor FromRaw(const RawTensor& raw, const c10::Device& device) {
  return at::from_blob(const_cast<char*>(raw.bytes.data()), raw.shape, at::kFloat).to(device, at::kFloat, false, /*copy=*/true);
}

using NamedParams = std::vector<std::pair<std::string, at::Tensor>>;

NamedParams PolicyParams(const MoeTransformer& model) {
  NamedParams out;
  for (const auto& item : model->named_parameters()) {
    out.emplace_back(model->HfName(item.key()), item.value());
  }
  return out;
}

// AdamW moments under the parameters' names into `path`; returns the step
// counts (for the state file).
absl::StatusOr<nlohmann::json> SaveAdam(const torch::optim::AdamW& optimizer,
                                        const NamedParams& params, const std::string& path) {
  std::vector<RawTensor> moments;
  nlohmann::json steps = nlohmann::json::object();
  const auto& state = optimizer.state();
  for (const auto& [name, param] : params) {
    auto it = state.find(StateKey(param));
    if (it == state.end()) continue;
    const auto& st = static_cast<const torch::optim::AdamWParamState&>(*it->second);
    moments.push_back(ToRawTensor(name + ".exp_avg", st.exp_avg()));
    moments.push_back(ToRawTensor(name + ".exp_avg_sq", st.exp_avg_sq()));
    steps[name] = st.step();
  }
  absl::Status s = WriteSafetensors(path, moments);
  if (!s.ok()) return s;
  return steps;
}

struct AdamEntry {
  at::Tensor param;
  int64_t step;
  at::Tensor exp_avg;
  at::Tensor exp_avg_sq;
};

// Reads and checks the AdamW state SaveAdam wrote (nothing is applied).
absl::StatusOr<std::vector<AdamEntry>> ReadAdam(const std::string& dir, const std::string& file,
                                                const nlohmann::json& steps,
                                                const NamedParams& params) {
  absl::StatusOr<std::vector<RawTensor>> moments = ReadSafetensors(absl::StrCat(dir, "/", file));
  if (!moments.ok()) return moments.status();
  std::map<std::string, const RawTensor*> by_name;
  for (const RawTensor& t : *moments) by_name[t.name] = &t;
  std::vector<AdamEntry> out;
  for (const auto& [name, param] : params) {
    auto count = steps.find(name);
    if (count == steps.end()) continue;  // no optimizer state yet
    auto a = by_name.find(name + ".exp_avg"), b = by_name.find(name + ".exp_avg_sq");
    if (a == by_name.end() || b == by_name.end() || !count->is_number_integer()) {
      return absl::DataLossError(
          absl::StrCat("checkpoint ", dir, ": ", file, " lacks the AdamW state of ", name));
    }
    for (const RawTensor* t : {a->second, b->second}) {
      if (t->dtype != RawDType::kFloat32 || t->shape != param.sizes().vec()) {
        return absl::DataLossError(absl::StrCat("checkpoint ", dir, ": ", file, " tensor ",
                                                t->name, " does not match the parameter's shape"));
      }
    }
    out.push_back({param, count->get<int64_t>(), FromRaw(*a->second, param.device()),
                   FromRaw(*b->second, param.device())});
  }
  return out;
}

void ApplyAdam(torch::optim::AdamW& optimizer, const std::vector<AdamEntry>& entries) {
  auto& state = optimizer.state();
  state.clear();
  for (const AdamEntry& e : entries) {
    auto adam = std::make_unique<torch::optim::AdamWParamState>();
    adam->step(e.step);
    adam->exp_avg(e.exp_avg);
    adam->exp_avg_sq(e.exp_avg_sq);
    state[StateKey(e.param)] = std::move(adam);
  }
}

// "version-000000042" directories under a keep_last root, oldest first.
std::vector<std::pair<int64_t, std::string>> VersionDirs(const std::string& root) {
  static const std::regex kName("version-([0-9]{9,18})");
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && std::regex_match(name, m, kName)) {
      out.emplace_back(std::stoll(m[1].str()), name);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Writes `text` to path.tmp, syncs, renames over path.
absl::Status WriteText(const std::string& path, const std::string& text) {
  return WriteFileAtomically(path, {absl::string_view(text)});
}

}  // namespace

absl::StatusOr<std::string> Trainer::SaveCheckpoint(const std::string& dir_arg,
                                                    const CheckpointOptions& options) const {
  std::string root = dir_arg;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (options.keep_last < 0) {
    return absl::InvalidArgumentError(absl::StrCat("keep_last must be >= 0, got ", options.keep_last));
  }
  const std::string name = absl::StrFormat("version-%09d", impl_->version);
  const std::string dir = options.keep_last > 0 ? absl::StrCat(root, "/", name) : root;
  // Atomic: everything goes into a sibling temporary directory, which then
  // replaces `dir` by rename; a crash leaves either the old checkpoint or
  // the new one, never a mix (and at worst a stale temporary directory).
  const std::string tmp = absl::StrCat(dir, ".tmp");
  const std::string old = absl::StrCat(dir, ".old");
  std::error_code ec;
  fs::remove_all(tmp, ec);
  if (options.keep_last > 0) fs::create_directories(root, ec);
  try {
    absl::Status s = rlpost::SaveCheckpoint(*impl_->model, tmp);
    if (!s.ok()) return s;
    // AdamW moments under the parameters' Hugging Face names; the step
    // counts go to the state file.
    absl::StatusOr<nlohmann::json> adam_steps = SaveAdam(
        impl_->optimizer, PolicyParams(impl_->model), tmp + "/" + kOptimizerFile);
    if (!adam_steps.ok()) return adam_steps.status();
    nlohmann::json critic_steps = nullptr;
    if (impl_->critic != nullptr) {
      s = WriteSafetensors(tmp + "/" + kCriticFile, impl_->critic->ExportWeights());
      if (!s.ok()) return s;
      absl::StatusOr<nlohmann::json> steps =
          SaveAdam(impl_->critic->optimizer(), impl_->critic->named_parameters(),
                   tmp + "/" + kCriticOptimizerFile);
      if (!steps.ok()) return steps.status();
      critic_steps = *steps;
    }
    if (!impl_->reference.is_empty()) {
      s = WriteSafetensors(tmp + "/" + kReferenceFile, impl_->reference->ExportWeights());
      if (!s.ok()) return s;
    }
    at::Tensor rng;
    {
      at::CPUGeneratorImpl* gen = at::check_generator<at::CPUGeneratorImpl>(
          at::detail::getDefaultCPUGenerator());
      std::lock_guard<std::mutex> lock(gen->mutex_);
      rng = at::Tensor(gen->get_state());
    }
    absl::StatusOr<nlohmann::json> files = Manifest(tmp);
    if (!files.ok()) return files.status();
    nlohmann::json st = {
        {"format", kFormat},
        {"weight_version", impl_->version},
        {"optimizer_steps", impl_->steps},
        {"model", impl_->model->config().Describe()},
        {"adam_steps", *adam_steps},
        {"critic_adam_steps", critic_steps},
        {"rng_cpu", absl::BytesToHexString(absl::string_view(
                        static_cast<const char*>(rng.data_ptr()), rng.numel()))},
        {"client_state", absl::BytesToHexString(options.client_state)},
        {"files", *files},
    };
    s = WriteText(tmp + "/" + kStateFile, st.dump(2) + "\n");
    if (!s.ok()) return s;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("checkpoint ", dir, ": ", e.what_without_backtrace()));
  }
  fs::remove_all(old, ec);
  if (fs::exists(dir)) {
    fs::rename(dir, old, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot move ", dir, " aside: ", ec.message()));
  }
  fs::rename(tmp, dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", dir, ": ", ec.message()));
  fs::remove_all(old, ec);
  if (options.keep_last > 0) {
    absl::Status s = WriteText(absl::StrCat(root, "/", kLatestFile), name + "\n");
    if (!s.ok()) return s;
    auto versions = VersionDirs(root);
    for (size_t i = 0; i + static_cast<size_t>(options.keep_last) < versions.size(); ++i) {
      if (versions[i].second != name) fs::remove_all(absl::StrCat(root, "/", versions[i].second), ec);
    }
  }
  return dir;
}

absl::StatusOr<ResumePoint> Trainer::LoadCheckpoint(const std::string& dir_arg) {
  std::string dir = dir_arg;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (!fs::exists(dir + "/" + kStateFile)) {
    // A keep_last root: `latest`, else the newest version directory.
    absl::StatusOr<std::string> latest = ReadFile(absl::StrCat(dir, "/", kLatestFile));
    std::string name = latest.ok() ? std::string(absl::StripAsciiWhitespace(*latest)) : "";
    if (name.empty()) {
      auto versions = VersionDirs(dir);
      if (versions.empty() && fs::exists(absl::StrCat(dir, "/config.json"))) {
        return absl::NotFoundError(absl::StrCat(
            dir, " holds Hugging Face weights without ", kStateFile,
            " (no optimizer state or counters) and cannot resume training; start a run "
            "from it instead"));
      }
      if (versions.empty()) {
        return absl::NotFoundError(absl::StrCat(
            "no trainer checkpoint at ", dir, ": neither ", kStateFile, " nor a ", kLatestFile,
            " file or version-N directory (write one with SaveCheckpoint)"));
      }
      name = versions.back().second;
    }
    if (name.find('/') != std::string::npos) {
      return absl::DataLossError(absl::StrCat(dir, "/", kLatestFile, " names '", name,
                                              "', not a checkpoint directory"));
    }
    dir = absl::StrCat(dir, "/", name);
  }
  const std::string state_path = absl::StrCat(dir, "/", kStateFile);
  absl::StatusOr<std::string> text = ReadFile(state_path);
  if (!text.ok()) {
    return absl::NotFoundError(absl::StrCat("no trainer checkpoint at ", dir, ": ", kStateFile,
                                            " missing (a Hugging Face directory without it holds "
                                            "weights only and cannot resume training)"));
  }
  nlohmann::json st = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!st.is_object() || !st.contains("format") || !st.contains("files") ||
      !st["files"].is_object() || !st.contains("weight_version") ||
      !st.contains("optimizer_steps") || !st.contains("adam_steps")) {
    return absl::DataLossError(absl::StrCat(state_path, " is corrupt (not the JSON object ",
                                            "SaveCheckpoint writes)"));
  }
  if (st["format"] != kFormat) {
    return absl::FailedPreconditionError(absl::StrCat(state_path, ": format ", st["format"].dump(),
                                                      ", this build reads format ", kFormat));
  }
  // Every file must match its recorded size and checksum.
  for (const auto& [name, meta] : st["files"].items()) {
    absl::StatusOr<std::string> bytes = ReadFile(absl::StrCat(dir, "/", name));
    if (!bytes.ok()) {
      return absl::DataLossError(absl::StrCat("checkpoint ", dir, ": ", name, " is missing"));
    }
    if (!meta.is_object() || meta.value("bytes", int64_t{-1}) != static_cast<int64_t>(bytes->size()) ||
        meta.value("crc32c", int64_t{-1}) != static_cast<int64_t>(Crc32c(*bytes))) {
      return absl::DataLossError(absl::StrCat("checkpoint ", dir, ": ", name,
                                              " is corrupt (size or CRC-32C differs from ",
                                              kStateFile, ")"));
    }
  }
  const std::string want = impl_->model->config().Describe();
  if (st.value("model", std::string()) != want) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint ", dir, " holds model '", st.value("model", std::string()),
        "' but this learner is configured for '", want, "'; resume with the run's model config"));
  }
  std::string client_state, rng_bytes;
  if (!FromHex(st.value("client_state", std::string()), &client_state) ||
      !FromHex(st.value("rng_cpu", std::string()), &rng_bytes)) {
    return absl::DataLossError(absl::StrCat(state_path, ": client_state or rng_cpu is not hex"));
  }

  // Read and check everything before changing the trainer.
  absl::StatusOr<std::vector<RawTensor>> weights = ReadCheckpointWeights(dir);
  if (!weights.ok()) return weights.status();
  absl::StatusOr<std::vector<AdamEntry>> adam =
      ReadAdam(dir, kOptimizerFile, st["adam_steps"], PolicyParams(impl_->model));
  if (!adam.ok()) return adam.status();
  // The critic is rebuilt from the checkpoint's weights and optimizer state.
  std::unique_ptr<Critic> critic;
  std::vector<AdamEntry> critic_adam;
  if (st.contains("critic_adam_steps") && !st["critic_adam_steps"].is_null()) {
    absl::StatusOr<std::vector<RawTensor>> critic_weights =
        ReadSafetensors(absl::StrCat(dir, "/", kCriticFile));
    if (!critic_weights.ok()) return critic_weights.status();
    try {
      critic = std::make_unique<Critic>(impl_->model, impl_->weight_decay);
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("cannot build the critic: ", e.what_without_backtrace()));
    }
    absl::Status s = critic->ImportWeights(*critic_weights);
    if (!s.ok()) return absl::DataLossError(absl::StrCat("checkpoint ", dir, ": ", kCriticFile, ": ", s.message()));
    absl::StatusOr<std::vector<AdamEntry>> entries = ReadAdam(
        dir, kCriticOptimizerFile, st["critic_adam_steps"], critic->named_parameters());
    if (!entries.ok()) return entries.status();
    critic_adam = std::move(*entries);
  }
  absl::StatusOr<std::vector<RawTensor>> reference;
  const bool has_reference = fs::exists(absl::StrCat(dir, "/", kReferenceFile));
  if (has_reference) {
    reference = ReadSafetensors(absl::StrCat(dir, "/", kReferenceFile));
    if (!reference.ok()) return reference.status();
  }
  try {
    MoeTransformer new_reference{nullptr};
    if (has_reference) {
      torch::NoGradGuard no_grad;
      new_reference = Impl::Placed(MoeTransformer(impl_->model->config()), impl_->device);
      absl::Status s = new_reference->ImportWeights(*reference);
      if (!s.ok()) return absl::DataLossError(absl::StrCat(kReferenceFile, ": ", s.message()));
      new_reference->eval();
    }
    absl::Status s = impl_->model->ImportWeights(*weights);
    if (!s.ok()) return s;
    ApplyAdam(impl_->optimizer, *adam);
    if (critic != nullptr) ApplyAdam(critic->optimizer(), critic_adam);
    impl_->critic = std::move(critic);
    impl_->reference = new_reference;
    if (!rng_bytes.empty()) {
      at::Tensor rng = at::empty({static_cast<int64_t>(rng_bytes.size())}, at::kByte);
      std::memcpy(rng.data_ptr(), rng_bytes.data(), rng_bytes.size());
      at::CPUGeneratorImpl* gen = at::check_generator<at::CPUGeneratorImpl>(
          at::detail::getDefaultCPUGenerator());
      std::lock_guard<std::mutex> lock(gen->mutex_);
      gen->set_state(*rng.unsafeGetTensorImpl());
    }
  } catch (const c10::Error& e) {
    return absl::DataLossError(absl::StrCat("checkpoint ", dir, ": ", e.what_without_backtrace()));
  }
  impl_->version = st["weight_version"].get<int64_t>();
  impl_->steps = st["optimizer_steps"].get<int64_t>();
  ResumePoint point;
  point.directory = dir;
  point.weight_version = impl_->version;
  point.optimizer_steps = impl_->steps;
  point.client_state = std::move(client_state);
  return point;
}

}  // namespace rlpost
