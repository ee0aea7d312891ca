// Every rlpost process serves Prometheus text on /metrics: the real verifier,
// learner and rollout worker serve a short job driven by the real controller,
// then their endpoints show the RPCs they handled and their own figures; an
// idle controller counts the control API calls rlctl makes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "tests/cli/cli_test_util.h"

namespace rlpost {
namespace {

using ::rlpost::testing::BinDir;
using ::rlpost::testing::HttpGet;
using ::rlpost::testing::MetricValue;
using ::rlpost::testing::RunProcess;
using ::rlpost::testing::SourceDir;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = ::rlpost::testing::MakeTempDir("rlpost_metrics_e2e"); }
  void TearDown() override {
    for (auto& p : processes_) p->Stop(2000ms);
    std::filesystem::remove_all(dir_);
  }

  // Starts `binary` serving on a free port with its metrics endpoint;
  // returns {grpc port, metrics port}.
  std::pair<int, int> Serve(const std::string& name, const std::string& binary,
                            std::vector<std::string> extra) {
    const std::string port_file = dir_ + "/" + name + ".port";
    const std::string metrics_file = dir_ + "/" + name + ".metrics.port";
    std::vector<std::string> argv = {BinDir() + "/" + binary, "--listen", "127.0.0.1:0",
                                     "--port-file", port_file, "--metrics-listen", "127.0.0.1:0",
                                     "--metrics-port-file", metrics_file};
    argv.insert(argv.end(), extra.begin(), extra.end());
    processes_.push_back(std::make_unique<Subprocess>());
    Subprocess* p = processes_.back().get();
    EXPECT_TRUE(p->Start(argv, dir_ + "/" + name + ".log").ok());
    absl::StatusOr<int> port = WaitForPortFile(port_file, p, name, 60s);
    EXPECT_TRUE(port.ok()) << port.status() << "\n" << ::rlpost::testing::ReadFile(dir_ + "/" + name + ".log");
    // The metrics port is written before the gRPC one.
    std::ifstream in(metrics_file);
    int metrics_port = 0;
    in >> metrics_port;
    return {port.ok() ? *port : 0, metrics_port};
  }

  std::vector<std::string> Config() const {
    return {"--config", SourceDir() + "/configs/arith_grpo_quick.yaml", "run.output_dir=" + dir_,
            "sft.steps=2", "rl.steps=2", "eval.size=4", "rl.skip_uniform_groups=false"};
  }

  std::string dir_;
  std::vector<std::unique_ptr<Subprocess>> processes_;
};

TEST_F(MetricsTest, EveryProcessServesItsFiguresAndHandledRpcs) {
  auto [verifier, verifier_metrics] = Serve("verifier", "rlpost-verifier", {});
  auto [learner, learner_metrics] = Serve("learner", "rlpost-learner", Config());
  auto [rollout, rollout_metrics] = Serve("rollout", "rlpost-rollout", Config());
  ASSERT_GT(verifier_metrics, 0);
  ASSERT_GT(learner_metrics, 0);
  ASSERT_GT(rollout_metrics, 0);

  std::vector<std::string> controller = {
      BinDir() + "/rlpost-controller", "--listen", "127.0.0.1:0",
      "--rollout", absl::StrCat("127.0.0.1:", rollout),
      "--verifier", absl::StrCat("127.0.0.1:", verifier),
      "--learner", absl::StrCat("127.0.0.1:", learner),
      "--metrics-listen", "127.0.0.1:0"};
  for (const std::string& a : Config()) controller.push_back(a);
  auto run = RunProcess(controller, dir_ + "/controller.log", 300s);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("controller metrics on http://127.0.0.1:"));

  const std::string v = HttpGet(verifier_metrics, "/metrics");
  EXPECT_THAT(v, HasSubstr("HTTP/1.0 200 OK"));
  EXPECT_GE(MetricValue(v, "rlpost_grpc_server_handled_total{grpc_service=\"rlpost.v1.VerifierService\","
                           "grpc_method=\"Verify\",grpc_code=\"OK\"}"),
            2);  // held-out evals and RL steps
  EXPECT_GT(MetricValue(v, "rlpost_verifier_latency_seconds_count{kind=\"math\"}"), 0);

  const std::string l = HttpGet(learner_metrics, "/metrics");
  // 2 SFT + 2 RL steps, every one applied.
  EXPECT_EQ(MetricValue(l, "rlpost_grpc_server_handled_total{grpc_service=\"rlpost.v1.LearnerService\","
                           "grpc_method=\"Train\",grpc_code=\"OK\"}"),
            4);
  EXPECT_EQ(MetricValue(l, "rlpost_learner_steps_total{result=\"applied\"}"), 4);
  EXPECT_EQ(MetricValue(l, "rlpost_learner_weight_version"), 4);
  EXPECT_GT(MetricValue(l, "rlpost_learner_tokens_total"), 0);
  EXPECT_GE(MetricValue(l, "rlpost_learner_entropy"), 0);

  const std::string r = HttpGet(rollout_metrics, "/metrics");
  EXPECT_GE(MetricValue(r, "rlpost_grpc_server_handled_total{grpc_service=\"rlpost.v1.RolloutService\","
                           "grpc_method=\"Generate\",grpc_code=\"OK\"}"),
            1);
  EXPECT_EQ(MetricValue(r, "rlpost_grpc_server_handled_total{grpc_service=\"rlpost.v1.RolloutService\","
                           "grpc_method=\"UpdateWeights\",grpc_code=\"OK\"}"),
            3);  // after SFT and after each RL step
  EXPECT_EQ(MetricValue(r, "rlpost_rollout_weight_version"), 4);
  EXPECT_GT(MetricValue(r, "rlpost_rollout_tokens_generated_total"), 0);
  EXPECT_EQ(MetricValue(r, "rlpost_rollout_running"), 0);
  EXPECT_THAT(HttpGet(rollout_metrics, "/other"), HasSubstr("404"));

  // An idle controller counts the control API calls.
  auto [control, control_metrics] = Serve("controller_idle", "rlpost-controller", {});
  auto status = RunProcess({BinDir() + "/rlctl", "--addr", absl::StrCat("127.0.0.1:", control),
                            "status"},
                           dir_ + "/rlctl.log", 60s);
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_EQ(MetricValue(HttpGet(control_metrics, "/metrics"),
                        "rlpost_grpc_server_handled_total{grpc_service=\"rlpost.v1.ControlService\","
                        "grpc_method=\"GetStatus\",grpc_code=\"OK\"}"),
            1);
}

TEST_F(MetricsTest, ABadMetricsAddressIsAUsageError) {
  for (const char* binary : {"rlpost-controller", "rlpost-verifier"}) {
    auto r = RunProcess({BinDir() + "/" + binary, "--listen", "127.0.0.1:0", "--metrics-listen",
                         "nowhere"},
                        dir_ + "/bad.log", 60s);
    EXPECT_EQ(r.exit_code, 2) << binary << ": " << r.output;
    EXPECT_THAT(r.output, HasSubstr("--metrics-listen must be HOST:PORT")) << binary;
  }
}

}  // namespace
}  // namespace rlpost
