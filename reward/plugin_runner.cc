#include "reward/plugin_runner.h"

#include <atomic>

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"

namespace rlpost {
namespace {

std::string PluginKey(const RewardPluginConfig& p, const char* field) {
  return absl::StrCat("reward.plugins.", p.id, ".", field);
}

}  // namespace

std::string RewardPluginRunner::ResolvePluginPath(const std::string& path) {
  if (path.find('/') != std::string::npos) return path;
  const std::string exe = ExecutableDir();
  for (const std::string& dir : {exe + "/../lib/rlpost", exe + "/../lib", exe}) {
    const std::string candidate = dir + "/" + path;
    if (std::filesystem::exists(candidate)) return candidate;
  }
  return path;  // not found beside the binaries: reported when it fails to load
}

absl::StatusOr<std::unique_ptr<RewardPluginRunner>> RewardPluginRunner::Start(Options options) {
  if (options.host_binary.empty()) options.host_binary = ExecutableDir() + "/rlpost-reward-host";
  options.plugin.path = ResolvePluginPath(options.plugin.path);
  std::unique_ptr<RewardPluginRunner> r(new RewardPluginRunner(std::move(options)));
  const RewardPluginConfig& p = r->options_.plugin;
  if (access(r->options_.host_binary.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the reward plugin host ", r->options_.host_binary,
        " is missing or not executable (set reward.host_binary)"));
  }
  if (!std::filesystem::exists(p.path)) {
    return absl::InvalidArgumentError(absl::StrCat("config key '", PluginKey(p, "path"), "': ",
                                                   p.path, " does not exist"));
  }
  std::error_code ec;
  std::filesystem::create_directories(r->options_.work_dir, ec);
  const std::string base = absl::StrCat(r->options_.work_dir, "/reward-", p.id);
  r->log_path_ = base + ".log";
  r->config_path_ = base + ".config";
  r->port_path_ = base + ".port";
  {
    std::ofstream out(r->config_path_, std::ios::binary | std::ios::trunc);
    out << p.config;
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", r->config_path_));
  }
  absl::Status s = r->Launch();
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("reward plugin '", p.id, "' (", p.path,
                                               "): ", s.message()));
  }
  return r;
}

absl::Status RewardPluginRunner::Check(Options options) {
  static std::atomic<int> serial{0};
  const std::filesystem::path parent = options.work_dir.empty()
                                           ? std::filesystem::temp_directory_path()
                                           : std::filesystem::path(options.work_dir);
  const std::filesystem::path scratch =
      parent / absl::StrCat("reward-check-", getpid(), "-", serial++);
  options.work_dir = scratch.string();
  absl::Status s = Start(std::move(options)).status();  // the runner stops its host here
  std::error_code ec;
  std::filesystem::remove_all(scratch, ec);
  return s;
}

RewardPluginRunner::~RewardPluginRunner() {
  if (host_ != nullptr && host_->running()) host_->Stop(std::chrono::milliseconds(2000));
}

std::string RewardPluginRunner::StartError() const {
  constexpr std::string_view kPrefix = "rlpost-reward-host: ";
  std::ifstream in(log_path_);
  std::string line, host_error, last;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    last = line;
    if (line.compare(0, kPrefix.size(), kPrefix) == 0) host_error = line.substr(kPrefix.size());
  }
  return host_error.empty() ? last : host_error;
}

absl::Status RewardPluginRunner::Launch() {
  std::remove(port_path_.c_str());
  host_ = std::make_unique<Subprocess>();
  std::vector<std::string> argv = {options_.host_binary, "--plugin", options_.plugin.path,
                                   "--config-file", config_path_, "--listen", "127.0.0.1:0",
                                   "--port-file", port_path_};
  if (!options_.plugin.function.empty()) {
    argv.push_back("--function");
    argv.push_back(options_.plugin.function);
  }
  if (options_.plugin.memory_mb > 0) {
    argv.push_back("--memory-limit-mb");
    argv.push_back(std::to_string(options_.plugin.memory_mb));
  }
  absl::Status s = host_->Start(argv, log_path_);
  if (!s.ok()) return s;
  absl::StatusOr<int> port =
      WaitForPortFile(port_path_, host_.get(), "rlpost-reward-host", options_.start_timeout);
  if (!port.ok()) {
    const std::string why = StartError();
    Kill();
    return why.empty() ? port.status()
                       : absl::FailedPreconditionError(absl::StrCat(why, " (log: ", log_path_, ")"));
  }
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", *port),
                                     grpc::InsecureChannelCredentials());
  stub_ = v1::RewardHost::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + options_.start_timeout);
  ctx.set_wait_for_ready(true);
  v1::RewardHostInfo info;
  grpc::Status st = stub_->GetInfo(&ctx, v1::RewardHostInfoRequest(), &info);
  if (!st.ok()) {
    Kill();
    return absl::UnavailableError(
        absl::StrCat("rlpost-reward-host did not answer: ", st.error_message()));
  }
  info_ = info;
  return absl::OkStatus();
}

void RewardPluginRunner::Kill() {
  if (host_ != nullptr && host_->running()) {
    host_->Signal(SIGKILL);
    host_->Wait(std::chrono::milliseconds(5000));
  }
  host_.reset();
  stub_.reset();
}

RewardPluginRunner::Result RewardPluginRunner::Score(const std::vector<v1::RewardSample>& samples) {
  Result out;
  out.scores.assign(samples.size(), 0.0);
  out.failures.assign(samples.size(), "");
  if (samples.empty()) return out;
  const std::string who = absl::StrCat("reward plugin '", options_.plugin.id, "'");
  auto fail_all = [&](const std::string& why) {
    ++failed_batches_;
    RLPOST_LOG(WARNING) << who << ": " << why << " (" << samples.size() << " samples failed)";
    for (std::string& f : out.failures) f = absl::StrCat(who, ": ", why);
    return out;
  };
  if (stub_ == nullptr) {
    ++restarts_;
    absl::Status s = Launch();
    if (!s.ok()) return fail_all(absl::StrCat("restart failed: ", s.message()));
    RLPOST_LOG(INFO) << who << ": host restarted (" << restarts_ << " so far)";
  }
  v1::ScoreRequest request;
  for (const v1::RewardSample& s : samples) *request.add_samples() = s;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(options_.plugin.deadline_ms));
  v1::ScoreResponse response;
  grpc::Status st = stub_->Score(&ctx, request, &response);
  if (!st.ok()) {
    if (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      Kill();  // a hung plugin: the next batch gets a fresh host
      return fail_all(absl::StrCat("deadline of ", options_.plugin.deadline_ms,
                                   " ms exceeded (", PluginKey(options_.plugin, "deadline_ms"),
                                   "); host restarted"));
    }
    // Did the host die (a crashing plugin)? Its connection breaks first,
    // so give the exit a moment to be seen.
    if (host_ != nullptr && host_->Wait(std::chrono::milliseconds(500))) {
      const int code = host_->exit_code();
      Kill();
      return fail_all(absl::StrCat("plugin host ",
                                   code > 128 ? absl::StrCat("crashed (signal ", code - 128, ")")
                                              : absl::StrCat("exited with status ", code),
                                   " while scoring; restarted"));
    }
    if (st.error_code() == grpc::StatusCode::UNAVAILABLE) {
      Kill();
      return fail_all(absl::StrCat("host unreachable (", st.error_message(), "); restarted"));
    }
    return fail_all(absl::StrCat("failed: ", st.error_message()));  // the plugin's own error
  }
  if (response.scores_size() != static_cast<int>(samples.size())) {
    return fail_all(absl::StrCat("returned ", response.scores_size(), " scores for ",
                                 samples.size(), " samples"));
  }
  for (size_t i = 0; i < samples.size(); ++i) {
    const double v = response.scores(static_cast<int>(i));
    if (!std::isfinite(v)) {
      out.failures[i] = absl::StrCat(who, ": returned a non-finite score (", absl::StrFormat("%g", v),
                                     ")");
    } else {
      out.scores[i] = v;
    }
  }
  return out;
}

}  // namespace rlpost
