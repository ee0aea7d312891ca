// Runs the real rlpost-verifier, rlpost-learner (one and two ranks) and two
// rlpost-rollout workers on loopback port 0, drives three GRPO steps with
// rlpost-controller, then asks every worker which weight version it holds.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/grpc_util.h"
#include "common/subprocess.h"
#include "rlpost/v1/learner.grpc.pb.h"
#include "rlpost/v1/rollout.grpc.pb.h"

namespace rlpost {
namespace {

using namespace std::chrono_literals;

std::string Bin(const std::string& name) {
  const char* dir = std::getenv("RLPOST_BIN_DIR");
  return std::string(dir ? dir : ".") + "/" + name;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A small, fast job: 2 SFT steps, 3 GRPO steps, tiny evaluations.
const std::vector<std::string> kOverrides = {
    "sft.steps=2",        "rl.steps=3",           "rl.prompts_per_step=4",
    "rl.group_size=4",    "rl.max_new_tokens=24", "eval.size=8",
    "task.train_size=64", "task.heldout_size=8",  "rl.skip_uniform_groups=false"};

class RealServersTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/real_servers_" + std::to_string(GetParam());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }

  // Starts a server and returns "127.0.0.1:PORT".
  std::string StartServer(Subprocess* p, const std::string& binary, const std::string& name,
                          std::vector<std::string> extra) {
    std::string port_file = dir_ + "/" + name + ".port";
    std::vector<std::string> argv = {Bin(binary), "--listen", "127.0.0.1:0", "--port-file",
                                     port_file};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.insert(argv.end(), kOverrides.begin(), kOverrides.end());
    EXPECT_TRUE(p->Start(argv, dir_ + "/" + name + ".log").ok());
    absl::StatusOr<int> port = WaitForPortFile(port_file, p, name, 120s);
    EXPECT_TRUE(port.ok()) << port.status() << "\n" << ReadFile(dir_ + "/" + name + ".log");
    return "127.0.0.1:" + std::to_string(port.ok() ? *port : 0);
  }

  std::string dir_;
};

TEST_P(RealServersTest, ThreeStepsEndWithEveryWorkerOnTheLatestVersion) {
  const int world = GetParam();
  Subprocess verifier, rollout0, rollout1, controller;
  std::vector<std::unique_ptr<Subprocess>> ranks;
  std::string verifier_addr = StartServer(&verifier, "rlpost-verifier", "verifier", {});
  int master_port = *PickFreePort();
  std::string learner_addr;
  for (int r = world - 1; r >= 0; --r) {
    ranks.push_back(std::make_unique<Subprocess>());
    std::vector<std::string> extra = {"--rank",        std::to_string(r),
                                      "--world-size",  std::to_string(world),
                                      "--master-port", std::to_string(master_port)};
    if (r > 0) {
      std::vector<std::string> argv = {Bin("rlpost-learner")};
      argv.insert(argv.end(), extra.begin(), extra.end());
      argv.insert(argv.end(), kOverrides.begin(), kOverrides.end());
      ASSERT_TRUE(ranks.back()->Start(argv, dir_ + "/learner-" + std::to_string(r) + ".log").ok());
    } else {
      learner_addr = StartServer(ranks.back().get(), "rlpost-learner", "learner-0", extra);
    }
  }
  std::string r0 = StartServer(&rollout0, "rlpost-rollout", "rollout-0", {});
  std::string r1 = StartServer(&rollout1, "rlpost-rollout", "rollout-1", {});

  std::vector<std::string> argv = {Bin("rlpost-controller"), "--listen", "127.0.0.1:0",
                                   "--rollout", r0 + "," + r1, "--verifier", verifier_addr,
                                   "--learner", learner_addr,
                                   "run.output_dir=" + dir_, "run.name=it"};
  argv.insert(argv.end(), kOverrides.begin(), kOverrides.end());
  ASSERT_TRUE(controller.Start(argv, dir_ + "/controller.log").ok());
  ASSERT_TRUE(controller.Wait(600s)) << ReadFile(dir_ + "/controller.log");
  ASSERT_EQ(controller.exit_code(), 0) << ReadFile(dir_ + "/controller.log");

  // The learner took 2 SFT + 3 GRPO steps at most (a step whose groups were
  // all dropped is skipped), and every rollout worker holds its latest version.
  auto learner = v1::LearnerService::NewStub(MakeChannel(learner_addr));
  grpc::ClientContext lctx;
  v1::LearnerInfo linfo;
  ASSERT_TRUE(learner->GetInfo(&lctx, v1::GetInfoRequest(), &linfo).ok());
  EXPECT_EQ(linfo.world_size(), world);
  EXPECT_EQ(linfo.weight_version(), 5);
  for (const std::string& addr : {r0, r1}) {
    auto rollout = v1::RolloutService::NewStub(MakeChannel(addr));
    grpc::ClientContext ctx;
    v1::RolloutInfo info;
    ASSERT_TRUE(rollout->GetInfo(&ctx, v1::GetInfoRequest(), &info).ok()) << addr;
    EXPECT_EQ(info.weight_version(), linfo.weight_version()) << addr;
    EXPECT_GT(info.completions_generated(), 0) << addr;
  }

  std::ifstream metrics(dir_ + "/it/metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(metrics, line)) {
    nlohmann::json j = nlohmann::json::parse(line);
    EXPECT_EQ(j["step"].get<int>(), ++lines);
  }
  EXPECT_EQ(lines, 3);
  nlohmann::json summary = nlohmann::json::parse(ReadFile(dir_ + "/it/summary.json"));
  EXPECT_EQ(summary["steps"].get<int>(), 3);
  for (const char* key : {"heldout_accuracy_before", "heldout_accuracy_after", "wall_seconds"}) {
    EXPECT_TRUE(summary.contains(key)) << key;
  }
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/it/checkpoint/model.safetensors"));

  // Graceful shutdown on SIGTERM: every server exits 0.
  for (Subprocess* p : {&rollout0, &rollout1, &verifier}) EXPECT_EQ(p->Stop(10s), 0);
  for (auto& r : ranks) EXPECT_EQ(r->Stop(10s), 0);
  if (world > 1) return;

  // A new learner resumes from the run's checkpoint at its version, and
  // writes keep-last checkpoints that carry the caller's state.
  const std::string checkpoint = dir_ + "/it/checkpoint";
  Subprocess resumed;
  std::string addr = StartServer(&resumed, "rlpost-learner", "learner-resumed",
                                 {"--resume", checkpoint});
  auto stub = v1::LearnerService::NewStub(MakeChannel(addr));
  {
    grpc::ClientContext ctx;
    v1::LearnerInfo info;
    ASSERT_TRUE(stub->GetInfo(&ctx, v1::GetInfoRequest(), &info).ok());
    EXPECT_EQ(info.weight_version(), 5);
    EXPECT_EQ(info.resumed_from(), checkpoint);
  }
  // Retained versions are served in fp32 or bf16 (half the bytes, same
  // tensors); an unretained version is NOT_FOUND.
  int64_t bytes[2] = {0, 0};
  for (v1::DType dtype : {v1::DTYPE_FLOAT32, v1::DTYPE_BFLOAT16}) {
    grpc::ClientContext ctx;
    v1::GetWeightsRequest request;
    request.set_version(5);
    request.set_dtype(dtype);
    auto reader = stub->GetWeights(&ctx, request);
    v1::WeightChunk chunk;
    while (reader->Read(&chunk)) {
      EXPECT_EQ(chunk.dtype(), dtype);
      EXPECT_EQ(chunk.version(), 5);
      bytes[dtype == v1::DTYPE_BFLOAT16] += static_cast<int64_t>(chunk.data().size());
    }
    ASSERT_TRUE(reader->Finish().ok());
  }
  EXPECT_GT(bytes[0], 0);
  EXPECT_EQ(bytes[1] * 2, bytes[0]);
  {
    grpc::ClientContext ctx;
    v1::GetWeightsRequest request;
    request.set_version(3);
    auto reader = stub->GetWeights(&ctx, request);
    v1::WeightChunk chunk;
    while (reader->Read(&chunk)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  }
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext ctx;
    v1::SaveCheckpointRequest request;
    request.set_directory(dir_ + "/ckpts");
    request.set_keep_last(2);
    request.set_client_state("cursor " + std::to_string(i));
    v1::SaveCheckpointResponse response;
    ASSERT_TRUE(stub->SaveCheckpoint(&ctx, request, &response).ok());
    EXPECT_EQ(response.directory(), dir_ + "/ckpts/version-000000005");
  }
  EXPECT_EQ(resumed.Stop(10s), 0);
  Subprocess again;
  addr = StartServer(&again, "rlpost-learner", "learner-again", {"--resume", dir_ + "/ckpts"});
  {
    auto s2 = v1::LearnerService::NewStub(MakeChannel(addr));
    grpc::ClientContext ctx;
    v1::LearnerInfo info;
    ASSERT_TRUE(s2->GetInfo(&ctx, v1::GetInfoRequest(), &info).ok());
    EXPECT_EQ(info.client_state(), "cursor 2");
  }
  EXPECT_EQ(again.Stop(10s), 0);

  // A damaged checkpoint stops the learner with a message naming the file.
  std::filesystem::resize_file(checkpoint + "/optimizer.safetensors", 10);
  Subprocess broken;
  std::vector<std::string> broken_argv = {Bin("rlpost-learner"), "--listen", "127.0.0.1:0",
                                          "--resume", checkpoint};
  broken_argv.insert(broken_argv.end(), kOverrides.begin(), kOverrides.end());
  ASSERT_TRUE(broken.Start(broken_argv, dir_ + "/learner-broken.log").ok());
  ASSERT_TRUE(broken.Wait(60s));
  EXPECT_EQ(broken.exit_code(), 1);
  EXPECT_NE(ReadFile(dir_ + "/learner-broken.log").find("optimizer.safetensors is corrupt"),
            std::string::npos)
      << ReadFile(dir_ + "/learner-broken.log");
}

INSTANTIATE_TEST_SUITE_P(LearnerRanks, RealServersTest, ::testing::Values(1, 2),
                         [](const auto& info) { return std::to_string(info.param) + "_rank"; });

}  // namespace
}  // namespace rlpost
