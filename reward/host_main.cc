// rlpost-reward-host: runs one reward plugin function in its own process and
// serves RewardHost on --listen, so that a plugin that crashes or hangs takes
// down only this process. The controller starts one per reward.plugins.<id>
// entry and restarts it after a crash or a missed deadline.
//
// --check loads the plugin, creates the function and prints what it found,
// then exits: 0 when the plugin is usable, 2 with the reason otherwise.

#include <sys/resource.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_util.h"
#include "common/logging.h"
#include "reward/plugin_loader.h"
#include "rlpost/v1/reward.grpc.pb.h"

namespace {

constexpr int kExitUsage = 2;

class RewardHostService final : public rlpost::v1::RewardHost::Service {
 public:
  explicit RewardHostService(std::unique_ptr<rlpost::PluginFunction> function)
      : function_(std::move(function)) {}

  grpc::Status Score(grpc::ServerContext*, const rlpost::v1::ScoreRequest* request,
                     rlpost::v1::ScoreResponse* response) override {
    std::vector<rlpost::PluginSample> samples(static_cast<size_t>(request->samples_size()));
    for (int i = 0; i < request->samples_size(); ++i) {
      const rlpost::v1::RewardSample& in = request->samples(i);
      rlpost::PluginSample& s = samples[static_cast<size_t>(i)];
      s.prompt = in.prompt();
      s.response = in.response();
      s.reference = in.reference();
      s.prompt_id = in.prompt_id();
      s.verdict = in.verdict();
      s.finish_reason = in.finish_reason();
      s.response_token_ids.assign(in.response_token_ids().begin(), in.response_token_ids().end());
      s.max_response_tokens = in.max_response_tokens();
      s.group = in.group();
      s.index_in_group = in.index_in_group();
      s.correct = in.correct();
      s.verifier_score = in.verifier_score();
    }
    absl::MutexLock lock(&mu_);  // one config object: never called concurrently
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<std::vector<double>> scores = function_->Score(samples);
    response->set_plugin_seconds(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (!scores.ok()) return rlpost::ToGrpcStatus(scores.status());
    for (double v : *scores) response->add_scores(v);
    ++batches_;
    return grpc::Status::OK;
  }

  grpc::Status GetInfo(grpc::ServerContext*, const rlpost::v1::RewardHostInfoRequest*,
                       rlpost::v1::RewardHostInfo* info) override {
    const rlpost::LoadedPlugin& p = function_->plugin();
    info->set_plugin_path(p.path());
    info->set_plugin_name(p.name());
    info->set_plugin_version(p.version());
    info->set_abi_major(static_cast<uint32_t>(p.abi_major()));
    info->set_abi_minor(static_cast<uint32_t>(p.abi_minor()));
    info->set_function(function_->function());
    absl::MutexLock lock(&mu_);
    info->set_batches_scored(batches_);
    return grpc::Status::OK;
  }

 private:
  absl::Mutex mu_;
  std::unique_ptr<rlpost::PluginFunction> function_ ABSL_GUARDED_BY(mu_);
  int64_t batches_ ABSL_GUARDED_BY(mu_) = 0;
};

int Fail(int code, const std::string& message) {
  std::fprintf(stderr, "rlpost-reward-host: %s\n", message.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  rlpost::InstallShutdownSignals();
  rlpost::SetLogRole("reward-host");

  std::string plugin, function, config_file, listen, port_file, memory_mb;
  const std::vector<rlpost::FlagSpec> flags = {
      {"plugin", &plugin, "the plugin's shared library (required)"},
      {"function", &function, "the reward function to run (default: the plugin's first)"},
      {"config-file", &config_file, "file whose bytes go to the plugin's config_new (optional)"},
      {"listen", &listen, "HOST:PORT to serve on (required unless --check; port 0 picks one)"},
      {"port-file", &port_file, "write the bound port to this file (optional)"},
      {"memory-limit-mb", &memory_mb,
       "cap this process's data memory (RLIMIT_DATA: heap and private mappings) before the "
       "plugin loads; an allocation past it fails (optional)"},
  };
  const std::string usage = rlpost::FlagUsage("rlpost-reward-host", flags) +
                            "  --check  load the plugin, print what it offers and exit\n"
                            "  --help   print this help\n";
  bool check = false;
  std::vector<char*> args = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::fputs(usage.c_str(), stdout);
      return 0;
    }
    if (std::strcmp(argv[i], "--check") == 0) {
      check = true;
    } else {
      args.push_back(argv[i]);
    }
  }
  std::vector<std::string> positional;
  absl::Status parsed =
      rlpost::ParseFlags(static_cast<int>(args.size()), args.data(), flags, &positional);
  if (!parsed.ok()) return Fail(kExitUsage, std::string(parsed.message()) + "\n" + usage);
  if (!positional.empty()) return Fail(kExitUsage, "unexpected argument '" + positional[0] + "'");
  if (plugin.empty()) return Fail(kExitUsage, "--plugin PATH is required\n" + usage);
  if (listen.empty() && !check) return Fail(kExitUsage, "--listen HOST:PORT is required\n" + usage);

  if (!memory_mb.empty()) {
    int64_t mb = 0;
    if (!absl::SimpleAtoi(memory_mb, &mb) || mb < 64) {
      return Fail(kExitUsage, "--memory-limit-mb must be a number of MiB >= 64, got '" + memory_mb + "'");
    }
    const rlim_t bytes = static_cast<rlim_t>(mb) << 20;
    const rlimit limit{bytes, bytes};
    if (setrlimit(RLIMIT_DATA, &limit) != 0) {
      return Fail(kExitUsage, std::string("--memory-limit-mb: setrlimit: ") + std::strerror(errno));
    }
  }
  std::string config;
  if (!config_file.empty()) {
    std::ifstream in(config_file, std::ios::binary);
    if (!in) return Fail(kExitUsage, "--config-file " + config_file + " cannot be read");
    std::stringstream text;
    text << in.rdbuf();
    config = text.str();
  }
  absl::StatusOr<std::shared_ptr<rlpost::LoadedPlugin>> loaded = rlpost::LoadedPlugin::Open(plugin);
  if (!loaded.ok()) return Fail(kExitUsage, std::string(loaded.status().message()));
  if (function.empty()) {
    if ((*loaded)->functions().empty()) {
      return Fail(kExitUsage, "reward plugin '" + (*loaded)->name() +
                                  "' lists no functions: name one with --function");
    }
    function = (*loaded)->functions().front();
  }
  absl::StatusOr<std::unique_ptr<rlpost::PluginFunction>> created =
      (*loaded)->NewFunction(function, config);
  if (!created.ok()) return Fail(kExitUsage, std::string(created.status().message()));
  if (check) {
    std::printf("plugin %s %s (ABI %d.%d) from %s\nfunctions:", (*loaded)->name().c_str(),
                (*loaded)->version().c_str(), (*loaded)->abi_major(), (*loaded)->abi_minor(),
                plugin.c_str());
    for (const std::string& f : (*loaded)->functions()) std::printf(" %s", f.c_str());
    std::printf("\nfunction %s: config accepted\n", function.c_str());
    return 0;
  }
  RewardHostService service(*std::move(created));
  loaded->reset();  // the function keeps the plugin loaded
  auto host = rlpost::ServerHost::Start(listen, {&service}, port_file, "rlpost-reward-host");
  if (!host.ok()) return Fail(kExitUsage, std::string(host.status().message()));
  rlpost::WaitForShutdown();
  (*host)->Shutdown();
  return 0;
}
