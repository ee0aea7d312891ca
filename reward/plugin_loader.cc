#include "reward/plugin_loader.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "rlpost/reward_plugin.h"

namespace rlpost {
namespace {

constexpr size_t kErrorCapacity = 1024;
constexpr const char* kHostVersion = "0.1.0";

void HostLog(void* /*context*/, int level, const char* message) {
  const char* tag = level >= RLPOST_REWARD_LOG_ERROR     ? "E"
                    : level == RLPOST_REWARD_LOG_WARNING ? "W"
                                                         : "I";
  std::fprintf(stderr, "%s reward-plugin] %s\n", tag, message == nullptr ? "" : message);
}

const rlpost_reward_host kHost = {sizeof(rlpost_reward_host), RLPOST_REWARD_ABI_MAJOR,
                                  RLPOST_REWARD_ABI_MINOR,   kHostVersion,
                                  &HostLog,                  nullptr};

const char* StatusName(rlpost_reward_status s) {
  switch (s) {
    case RLPOST_REWARD_OK: return "OK";
    case RLPOST_REWARD_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case RLPOST_REWARD_UNSUPPORTED: return "UNSUPPORTED";
    case RLPOST_REWARD_INTERNAL: return "INTERNAL";
  }
  return "unknown status";
}

// The plugin's error as a Status of the matching code.
absl::Status HookError(rlpost_reward_status code, const char* hook, const std::string& plugin,
                       const char* message) {
  std::string text = absl::StrCat("reward plugin '", plugin, "': ", hook, " failed (",
                                  StatusName(code), ")");
  if (message[0] != '\0') absl::StrAppend(&text, ": ", message);
  switch (code) {
    case RLPOST_REWARD_INVALID_ARGUMENT: return absl::InvalidArgumentError(text);
    case RLPOST_REWARD_UNSUPPORTED: return absl::FailedPreconditionError(text);
    default: return absl::InternalError(text);
  }
}

}  // namespace

struct LoadedPlugin::Tables {
  rlpost_reward_plugin plugin;
};

absl::StatusOr<std::shared_ptr<LoadedPlugin>> LoadedPlugin::Open(const std::string& path) {
  std::shared_ptr<LoadedPlugin> p(new LoadedPlugin());
  p->path_ = path;
  p->handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (p->handle_ == nullptr) {
    const char* why = dlerror();
    return absl::InvalidArgumentError(absl::StrCat("cannot load reward plugin ", path, ": ",
                                                   why == nullptr ? "unknown error" : why));
  }
  void* sym = dlsym(p->handle_, RLPOST_REWARD_ENTRY_NAME);
  if (sym == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reward plugin ", path, " does not export ", RLPOST_REWARD_ENTRY_NAME,
        " (declare it extern \"C\" with RLPOST_REWARD_EXPORT, or use RLPOST_REWARD_PLUGIN)"));
  }
  auto entry = reinterpret_cast<rlpost_reward_entry_fn>(sym);
  p->tables_ = std::make_unique<Tables>();
  rlpost_reward_plugin& t = p->tables_->plugin;
  std::memset(&t, 0, sizeof(t));
  t.struct_size = sizeof(t);
  const rlpost_reward_status entered = entry(&kHost, &t);
  // The version is checked before anything else the plugin wrote is used.
  if (t.abi_major != RLPOST_REWARD_ABI_MAJOR) {
    return absl::FailedPreconditionError(absl::StrCat(
        "reward plugin ", path, " was built for reward ABI ", t.abi_major, ".", t.abi_minor,
        "; this rlpost speaks ", RLPOST_REWARD_ABI_MAJOR, ".", RLPOST_REWARD_ABI_MINOR,
        " (rebuild the plugin against this rlpost's reward_plugin.h)"));
  }
  p->abi_major_ = t.abi_major;
  p->abi_minor_ = t.abi_minor;
  if (entered != RLPOST_REWARD_OK) {
    return absl::FailedPreconditionError(absl::StrCat(
        "reward plugin ", path, ": ", RLPOST_REWARD_ENTRY_NAME, " returned ", StatusName(entered),
        entered == RLPOST_REWARD_UNSUPPORTED ? " (it needs a newer rlpost)" : ""));
  }
  if (t.config_new == nullptr || t.score_batch == nullptr || t.config_destroy == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reward plugin ", path, " leaves config_new, score_batch or config_destroy unset"));
  }
  p->name_ = t.name != nullptr ? t.name : path;
  p->version_ = t.version != nullptr ? t.version : "";
  if (t.functions != nullptr) {
    for (const char* const* f = t.functions; *f != nullptr; ++f) p->functions_.push_back(*f);
  }
  if (t.init != nullptr) {
    char message[kErrorCapacity] = {0};
    rlpost_reward_error error{message, sizeof(message)};
    const rlpost_reward_status s = t.init(&kHost, &error);
    if (s != RLPOST_REWARD_OK) return HookError(s, "init", p->name_, message);
  }
  p->initialised_ = true;
  return p;
}

LoadedPlugin::~LoadedPlugin() {
  if (initialised_ && tables_->plugin.fini != nullptr) tables_->plugin.fini();
  if (handle_ != nullptr) dlclose(handle_);
}

absl::StatusOr<std::unique_ptr<PluginFunction>> LoadedPlugin::NewFunction(
    const std::string& function, const std::string& config) {
  if (!functions_.empty()) {
    bool known = false;
    for (const std::string& f : functions_) known = known || f == function;
    if (!known) {
      std::string list;
      for (const std::string& f : functions_) absl::StrAppend(&list, list.empty() ? "" : ", ", f);
      return absl::InvalidArgumentError(absl::StrCat("reward plugin '", name_,
                                                     "' has no function '", function,
                                                     "' (it offers: ", list, ")"));
    }
  }
  char message[kErrorCapacity] = {0};
  rlpost_reward_error error{message, sizeof(message)};
  void* object = nullptr;
  const rlpost_reward_status s = tables_->plugin.config_new(function.c_str(), config.c_str(),
                                                            config.size(), &object, &error);
  if (s != RLPOST_REWARD_OK) return HookError(s, "config_new", name_, message);
  return std::unique_ptr<PluginFunction>(
      new PluginFunction(shared_from_this(), function, object));
}

PluginFunction::~PluginFunction() { plugin_->tables_->plugin.config_destroy(config_); }

absl::StatusOr<std::vector<double>> PluginFunction::Score(
    const std::vector<PluginSample>& samples) {
  std::vector<rlpost_reward_sample> c(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    const PluginSample& s = samples[i];
    rlpost_reward_sample& o = c[i];
    std::memset(&o, 0, sizeof(o));
    o.prompt = s.prompt.c_str();
    o.prompt_size = s.prompt.size();
    o.response = s.response.c_str();
    o.response_size = s.response.size();
    o.reference = s.reference.c_str();
    o.reference_size = s.reference.size();
    o.prompt_id = s.prompt_id.c_str();
    o.prompt_id_size = s.prompt_id.size();
    o.response_token_ids = s.response_token_ids.data();
    o.response_token_count = s.response_token_ids.size();
    o.max_response_tokens = s.max_response_tokens;
    o.group = s.group;
    o.index_in_group = s.index_in_group;
    o.correct = s.correct ? 1 : 0;
    o.verifier_score = s.verifier_score;
    o.verdict = s.verdict.c_str();
    o.verdict_size = s.verdict.size();
    o.finish_reason = s.finish_reason.c_str();
    o.finish_reason_size = s.finish_reason.size();
  }
  rlpost_reward_batch batch{sizeof(rlpost_reward_sample), c.size(), c.data()};
  std::vector<double> scores(samples.size(), 0.0);
  size_t written = 0;
  char message[kErrorCapacity] = {0};
  rlpost_reward_error error{message, sizeof(message)};
  const rlpost_reward_status s = plugin_->tables_->plugin.score_batch(
      config_, &batch, scores.data(), scores.size(), &written, &error);
  if (s != RLPOST_REWARD_OK) return HookError(s, "score_batch", plugin_->name_, message);
  if (written > scores.size()) written = scores.size();
  scores.resize(written);
  return scores;
}

}  // namespace rlpost
