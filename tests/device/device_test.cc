// Device placement (rollout.device, learner.device): the settings a build or a
// host cannot honour are refused with what to change, on every build; and the
// rollout engine and the trainer on the GPU give what they give on the CPU.
// Without a GPU (this build or this host) the parity tests compare the CPU
// with itself: the harness still runs, and the CPU must be deterministic.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "common/run_config.h"
#include "learner/packed_batch.h"
#include "learner/trainer.h"
#include "model/device.h"
#include "model/moe_transformer.h"
#include "rollout/engine.h"
#include "tests/learner/tiny_run_config.h"

namespace rlpost {
namespace {

using ::testing::HasSubstr;

bool HaveCuda() { return BuiltWithCuda() && torch::cuda::is_available(); }

// The device the parity tests compare the CPU with.
std::string OtherDevice() {
  if (HaveCuda()) return "cuda";
  std::cout << "note: no GPU (" << (BuiltWithCuda() ? "none visible on this host" : "CPU-only build")
            << "): comparing the CPU with itself\n";
  return "cpu";
}

TEST(DeviceSpecTest, SpellingsOtherThanCpuCudaAndCudaNAreRefusedWithTheKeyNamed) {
  for (const char* ok : {"cpu", "cuda", "cuda:0", "cuda:7"}) {
    EXPECT_TRUE(CheckDeviceSpec("rollout.device", ok).ok()) << ok;
  }
  for (const char* bad : {"", "gpu", "CUDA", "cuda:", "cuda:-1", "cuda:x", "cuda:1:2", "cpu:0",
                          " cuda"}) {
    absl::Status s = CheckDeviceSpec("learner.device", bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << "'" << bad << "'";
    EXPECT_THAT(s.message(), HasSubstr("config key 'learner.device' must be cpu, cuda or cuda:N"));
    EXPECT_EQ(OpenDevice("learner.device", bad).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST(DeviceSpecTest, RunConfigChecksDevicesAndTheBackend) {
  absl::StatusOr<RunConfig> r = LoadRunConfig("", {"rollout.device=cuda:1", "learner.device=cuda"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rollout_device, "cuda:1");
  EXPECT_EQ(r->learner_device, "cuda");
  EXPECT_EQ(r->learner_backend, "auto");

  r = LoadRunConfig("", {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rollout_device, "cpu");
  EXPECT_EQ(r->learner_device, "cpu");

  EXPECT_THAT(LoadRunConfig("", {"rollout.device=gpu"}).status().message(),
              HasSubstr("config key 'rollout.device' must be cpu, cuda or cuda:N"));
  EXPECT_THAT(LoadRunConfig("", {"learner.backend=nccl"}).status().message(),
              HasSubstr("learner.backend' is nccl but learner.device is cpu"));
  EXPECT_THAT(LoadRunConfig("", {"learner.backend=mpi"}).status().message(),
              HasSubstr("'learner.backend' must be auto, gloo or nccl, got 'mpi'"));
  EXPECT_TRUE(LoadRunConfig("", {"learner.backend=nccl", "learner.device=cuda"}).ok());
}

TEST(OpenDeviceTest, CpuOpensEverywhere) {
  absl::StatusOr<c10::Device> d = OpenDevice("rollout.device", "cpu");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->is_cpu());
}

TEST(OpenDeviceTest, ADeviceTheBuildOrHostLacksSaysWhatToChange) {
  // Past any host's devices: refused by every build.
  absl::Status far = OpenDevice("rollout.device", "cuda:999").status();
  EXPECT_EQ(far.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(far.message(), HasSubstr("config key 'rollout.device'"));
  if (!BuiltWithCuda()) {
    absl::Status s = OpenDevice("learner.device", "cuda").status();
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(s.message(), HasSubstr("built without CUDA"));
    EXPECT_THAT(s.message(), HasSubstr("set learner.device=cpu"));
    EXPECT_THAT(s.message(), HasSubstr("Dockerfile.cuda"));
  } else if (torch::cuda::is_available()) {
    EXPECT_THAT(far.message(), HasSubstr("visible"));
    absl::StatusOr<c10::Device> d = OpenDevice("learner.device", "cuda", /*default_index=*/0);
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->str(), "cuda:0");
  }
}

TEST(OpenDeviceTest, OnDeviceLeavesATensorAlreadyThereAlone) {
  at::Tensor t = at::arange(6, at::kLong);
  at::Tensor same = OnDevice(t, c10::Device(c10::kCPU));
  EXPECT_EQ(same.data_ptr(), t.data_ptr());
  EXPECT_FALSE(OnDevice(at::Tensor(), c10::Device(c10::kCPU)).defined());
}

TEST(EngineDeviceTest, CreateRefusesADeviceItCannotOpen) {
  ModelConfig c = ModelConfig::FromShape(TinyRunConfig().model, 32);
  EngineOptions o;
  o.background_thread = false;
  o.device = "cuda:999";
  EXPECT_EQ(RolloutEngine::Create(c, o).status().code(), absl::StatusCode::kFailedPrecondition);
  o.device = "gpu0";
  EXPECT_EQ(RolloutEngine::Create(c, o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TrainerDeviceTest, CreateRefusesADeviceItCannotOpen) {
  RunConfig rc = TinyRunConfig();
  rc.learner_device = "cuda:999";
  absl::Status s = Trainer::Create(rc, 40, nullptr).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("learner.device"));
}

TEST(PackedRowDeviceTest, MoveToDeviceMovesEveryTensorAndKeepsValues) {
  ModelConfig config = ModelConfig::FromShape(TinyRunConfig().model, 40);
  TrainExample a, b;
  a.prompt = {1, 5, 6};
  a.response = {7, 8, 2};
  a.old_logprobs = {-0.5f, -0.25f, -1.0f};
  a.advantage = 1.0f;
  b.prompt = {1, 9};
  b.response = {10, 2};
  b.old_logprobs = {-0.1f, -0.2f};
  b.advantage = -1.0f;
  const PackedRow cpu = PackExamples({&a, &b}, config);
  PackedRow moved = cpu;
  const c10::Device target = HaveCuda() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  MoveToDevice(&moved, target);
  for (const at::Tensor* t : {&moved.tokens, &moved.positions, &moved.key_mask, &moved.logit_rows,
                              &moved.targets, &moved.slots, &moved.mask, &moved.old_logprobs,
                              &moved.advantages, &moved.positive, &moved.mtp_next}) {
    EXPECT_EQ(t->device(), target);
  }
  EXPECT_TRUE(at::equal(moved.tokens.cpu(), cpu.tokens));
  EXPECT_TRUE(at::equal(moved.old_logprobs.cpu(), cpu.old_logprobs));
  EXPECT_EQ(moved.segments, cpu.segments);
}

// ---- Parity with the GPU (the CPU with itself where there is none) ----

// The tiny learner policy, two layers deep, with an MTP block and room for
// 12 prompt + 40 generated tokens.
ModelConfig EngineConfig() {
  RunConfig rc = TinyRunConfig();
  rc.model.n_layers = 2;
  rc.model.max_seq_len = 96;
  rc.model.mtp_layers = 1;
  return ModelConfig::FromShape(rc.model, 32);
}

std::vector<SampleOutput> Generate(const std::string& device, DrafterKind drafter) {
  EngineOptions o;
  o.background_thread = false;
  o.float64 = true;
  o.kv_block_size = 8;
  o.device = device;
  o.speculation.drafter = drafter;
  o.speculation.adaptive = false;
  auto e = RolloutEngine::Create(EngineConfig(), o);
  EXPECT_TRUE(e.ok()) << e.status();
  if (!e.ok()) return {};
  std::vector<SampleOutput> out(4);
  std::mt19937_64 rng(3);
  for (int r = 0; r < 2; ++r) {
    GenerationRequest req;
    for (int i = 0; i < 12; ++i) req.prompt.push_back(static_cast<int>(rng() % 32));
    req.sampling.temperature = r == 0 ? 0.0 : 1.0;  // greedy, then seeded sampling
    req.sampling.max_new_tokens = 40;
    req.seed = 11 + r;
    req.n = 2;
    auto id = (*e)->Submit(req, [&out, r](const SampleOutput& s) { out[r * 2 + s.sample_index] = s; });
    EXPECT_TRUE(id.ok()) << id.status();
  }
  (*e)->RunUntilIdle();
  return out;
}

TEST(DeviceParityTest, TheEngineGeneratesTheSameSamplesOnTheGpu) {
  const std::string other = OtherDevice();
  for (DrafterKind drafter : {DrafterKind::kNone, DrafterKind::kMtp, DrafterKind::kNgram}) {
    const std::vector<SampleOutput> cpu = Generate("cpu", drafter);
    const std::vector<SampleOutput> gpu = Generate(other, drafter);
    ASSERT_EQ(cpu.size(), gpu.size());
    for (size_t i = 0; i < cpu.size(); ++i) {
      // float64 forwards: the same tokens; logprobs to rounding.
      ASSERT_FALSE(cpu[i].tokens.empty()) << "sample " << i;
      EXPECT_EQ(cpu[i].tokens, gpu[i].tokens) << "sample " << i;
      ASSERT_EQ(cpu[i].logprobs.size(), gpu[i].logprobs.size());
      for (size_t j = 0; j < cpu[i].logprobs.size(); ++j) {
        EXPECT_NEAR(cpu[i].logprobs[j], gpu[i].logprobs[j], 1e-4) << "sample " << i << " token " << j;
      }
    }
  }
}

std::vector<TrainExample> PgBatch() {
  std::vector<TrainExample> b;
  for (int i = 0; i < 6; ++i) {
    TrainExample ex;
    ex.prompt = {1, 10 + i, 11};
    ex.response = {20 + i, 21, 22 + i % 3, 2};
    ex.old_logprobs.assign(ex.response.size(), -3.5f);
    ex.advantage = i % 2 == 0 ? 1.0f : -1.0f;
    ex.reward = i % 2 == 0 ? 1.0f : 0.0f;
    b.push_back(ex);
  }
  return b;
}

struct TrainTrace {
  std::vector<double> losses;
  std::vector<RawTensor> weights;
};

TrainTrace Train(const std::string& device, bool critic, const std::string& save_to = "") {
  RunConfig rc = TinyRunConfig();
  rc.model.mtp_layers = 1;
  rc.learner_device = device;
  auto t = Trainer::Create(rc, 40, nullptr);
  EXPECT_TRUE(t.ok()) << t.status();
  TrainTrace trace;
  if (!t.ok()) return trace;
  StepOptions sft;
  sft.objective = TrainObjective::kSft;
  sft.lr = 1e-2;
  StepOptions pg;
  pg.lr = 1e-2;
  pg.kl_coef = 0.05;
  pg.critic.enabled = critic;
  for (int s = 0; s < 4; ++s) {
    auto stats = (*t)->Step(PgBatch(), s == 0 ? sft : pg);
    EXPECT_TRUE(stats.ok()) << stats.status();
    if (!stats.ok()) return trace;
    EXPECT_FALSE(stats->skipped);
    trace.losses.push_back(stats->loss);
  }
  if (!save_to.empty()) {
    auto saved = (*t)->SaveCheckpoint(save_to, CheckpointOptions());
    EXPECT_TRUE(saved.ok()) << saved.status();
  }
  trace.weights = (*t)->ExportWeights();
  return trace;
}

double MaxAbsDiff(const std::vector<RawTensor>& a, const std::vector<RawTensor>& b) {
  double worst = 0.0;
  EXPECT_EQ(a.size(), b.size());
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    const float* x = reinterpret_cast<const float*>(a[i].bytes.data());
    const float* y = reinterpret_cast<const float*>(b[i].bytes.data());
    for (size_t j = 0; j < a[i].bytes.size() / sizeof(float); ++j) {
      worst = std::max(worst, static_cast<double>(std::fabs(x[j] - y[j])));
    }
  }
  return worst;
}

TEST(DeviceParityTest, TheTrainerTakesTheSameStepsOnTheGpu) {
  const std::string other = OtherDevice();
  for (bool critic : {false, true}) {
    const TrainTrace cpu = Train("cpu", critic);
    const TrainTrace gpu = Train(other, critic);
    ASSERT_EQ(cpu.losses.size(), 4u);
    ASSERT_EQ(cpu.losses.size(), gpu.losses.size());
    for (size_t i = 0; i < cpu.losses.size(); ++i) {
      EXPECT_NEAR(cpu.losses[i], gpu.losses[i], 1e-3 * (1.0 + std::fabs(cpu.losses[i])))
          << "step " << i << (critic ? " (critic)" : "");
    }
    EXPECT_LT(MaxAbsDiff(cpu.weights, gpu.weights), 1e-3) << (critic ? "critic" : "plain");
  }
}

// A checkpoint written on the GPU (policy, AdamW state, reference policy,
// critic) resumes on the CPU and on the GPU, and both take the same next step
// (with the KL term and the critic, so the resumed reference and critic are
// used on their device).
TEST(DeviceParityTest, ACheckpointWrittenOnTheGpuResumesOnEitherDevice) {
  const std::string other = OtherDevice();
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("rlpost_device_ckpt_" + std::to_string(getpid())))
          .string();
  const TrainTrace gpu = Train(other, /*critic=*/true, dir);
  ASSERT_FALSE(gpu.weights.empty());
  std::vector<double> next_loss;
  for (const std::string& device : {std::string("cpu"), other}) {
    RunConfig rc = TinyRunConfig();
    rc.model.mtp_layers = 1;
    rc.learner_device = device;
    auto resumed = Trainer::Create(rc, 40, nullptr);
    ASSERT_TRUE(resumed.ok()) << resumed.status();
    auto point = (*resumed)->LoadCheckpoint(dir);
    ASSERT_TRUE(point.ok()) << point.status();
    EXPECT_EQ(MaxAbsDiff(gpu.weights, (*resumed)->ExportWeights()), 0.0) << device;
    StepOptions pg;
    pg.lr = 1e-2;
    pg.kl_coef = 0.05;
    pg.critic.enabled = true;
    auto step = (*resumed)->Step(PgBatch(), pg);
    ASSERT_TRUE(step.ok()) << device << ": " << step.status();
    next_loss.push_back(step->loss);
  }
  EXPECT_NEAR(next_loss[0], next_loss[1], 1e-3 * (1.0 + std::fabs(next_loss[0])));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rlpost
