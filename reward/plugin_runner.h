#pragma once
// The controller's side of a reward plugin: starts rlpost-reward-host for one
// configured plugin function, scores batches through it with a deadline, and
// contains its failures. A batch whose plugin crashed, missed the deadline,
// failed, or returned a number of scores other than the batch size fails
// every sample of the batch; a non-finite score fails its sample. Each failed
// sample gets a reason naming the plugin. After a crash or a missed deadline
// the host is killed and started again before the next batch.
//
// Not thread-safe: one caller at a time.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/run_config.h"
#include "common/subprocess.h"
#include "rlpost/v1/reward.grpc.pb.h"

namespace rlpost {

class RewardPluginRunner {
 public:
  struct Options {
    RewardPluginConfig plugin;
    std::string host_binary;  // empty: rlpost-reward-host beside this executable
    std::string work_dir;     // the host's log and config file go here
    std::chrono::milliseconds start_timeout{20000};
  };

  // Resolves the plugin path, starts the host and waits until it serves. An
  // error carries the host's own message (a missing file, an ABI mismatch, a
  // config the plugin refused) and names the config key.
  static absl::StatusOr<std::unique_ptr<RewardPluginRunner>> Start(Options options);
  // Whether Start would succeed: starts a host in a scratch directory under
  // `options.work_dir` (the system temp directory when empty), then stops it
  // and removes the directory. Start's error when not.
  static absl::Status Check(Options options);
  ~RewardPluginRunner();

  struct Result {
    std::vector<double> scores;         // per sample; 0 where failed
    std::vector<std::string> failures;  // per sample; empty where scored
  };
  Result Score(const std::vector<v1::RewardSample>& samples);

  const RewardPluginConfig& plugin() const { return options_.plugin; }
  const v1::RewardHostInfo& info() const { return info_; }
  int64_t restarts() const { return restarts_; }
  int64_t failed_batches() const { return failed_batches_; }

  // A bare file name is looked up in <exe>/../lib/rlpost, <exe>/../lib and
  // <exe>; any other path is used as given. Exposed for tests.
  static std::string ResolvePluginPath(const std::string& path);

 private:
  explicit RewardPluginRunner(Options options) : options_(std::move(options)) {}
  absl::Status Launch();
  void Kill();
  // Why the host failed to start: its last own error line in its log, else
  // the log's last line.
  std::string StartError() const;

  Options options_;
  std::string log_path_, config_path_, port_path_;
  std::unique_ptr<Subprocess> host_;
  std::unique_ptr<v1::RewardHost::Stub> stub_;
  v1::RewardHostInfo info_;
  int64_t restarts_ = 0, failed_batches_ = 0;
};

}  // namespace rlpost
