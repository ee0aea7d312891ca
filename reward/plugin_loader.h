#pragma once
// Loads a reward plugin (a shared library speaking reward_plugin.h) into this
// process and calls it. Used by rlpost-reward-host, the process that isolates
// plugins from the controller; never loaded into the controller itself.
//
// Open() dlopens the library, calls its entry symbol, checks the ABI version
// before any hook (a different major version is an error naming both), then
// calls init. Each PluginFunction holds one config object and keeps its
// plugin loaded. Not thread-safe: one caller at a time per object.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rlpost {

// One sample as the host process hands it to a plugin.
struct PluginSample {
  std::string prompt, response, reference, prompt_id, verdict, finish_reason;
  std::vector<int32_t> response_token_ids;
  uint32_t max_response_tokens = 0;
  uint32_t group = 0, index_in_group = 0;
  bool correct = false;
  double verifier_score = 0.0;
};

class PluginFunction;

class LoadedPlugin : public std::enable_shared_from_this<LoadedPlugin> {
 public:
  static absl::StatusOr<std::shared_ptr<LoadedPlugin>> Open(const std::string& path);
  ~LoadedPlugin();  // fini, then dlclose
  LoadedPlugin(const LoadedPlugin&) = delete;
  LoadedPlugin& operator=(const LoadedPlugin&) = delete;

  const std::string& path() const { return path_; }
  const std::string& name() const { return name_; }
  const std::string& version() const { return version_; }
  int abi_major() const { return abi_major_; }
  int abi_minor() const { return abi_minor_; }
  const std::vector<std::string>& functions() const { return functions_; }

  // config_new(function, config).
  absl::StatusOr<std::unique_ptr<PluginFunction>> NewFunction(const std::string& function,
                                                              const std::string& config);

 private:
  friend class PluginFunction;
  LoadedPlugin() = default;
  struct Tables;
  std::string path_, name_, version_;
  int abi_major_ = 0, abi_minor_ = 0;
  std::vector<std::string> functions_;
  void* handle_ = nullptr;
  std::unique_ptr<Tables> tables_;
  bool initialised_ = false;
};

class PluginFunction {
 public:
  ~PluginFunction();  // config_destroy
  PluginFunction(const PluginFunction&) = delete;
  PluginFunction& operator=(const PluginFunction&) = delete;

  // score_batch over `samples`: the plugin's scores as written (their count
  // and finiteness are the caller's to check), or its error.
  absl::StatusOr<std::vector<double>> Score(const std::vector<PluginSample>& samples);

  const std::string& function() const { return function_; }
  const LoadedPlugin& plugin() const { return *plugin_; }

 private:
  friend class LoadedPlugin;
  PluginFunction(std::shared_ptr<LoadedPlugin> plugin, std::string function, void* config)
      : plugin_(std::move(plugin)), function_(std::move(function)), config_(config) {}
  std::shared_ptr<LoadedPlugin> plugin_;
  std::string function_;
  void* config_;
};

}  // namespace rlpost
