// Trainer checkpoints: exact resume, keep-last-N, and corrupt or mismatched
// checkpoints.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "learner/trainer.h"
#include "tests/learner/tiny_run_config.h"

namespace rlpost {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

RunConfig Config() {
  RunConfig c = TinyRunConfig();
  c.model.mtp_layers = 1;
  return c;
}

std::vector<TrainExample> Batch(int step) {
  std::vector<TrainExample> b;
  for (int i = 0; i < 6; ++i) {
    TrainExample ex;
    ex.prompt = {1, 5 + i, 6 + step % 7};
    ex.response.assign(static_cast<size_t>(2 + (i + step) % 4), 9 + i);
    ex.response.back() = 2;
    ex.old_logprobs.assign(ex.response.size(), -3.2f + 0.1f * static_cast<float>(i));
    ex.advantage = (i + step) % 2 == 0 ? 1.0f : -0.8f;
    ex.reward = ex.advantage > 0 ? 1.0f : 0.0f;
    b.push_back(ex);
  }
  return b;
}

// Step `step` of a run: a warm-start SFT step first, then PPO with a critic
// (value pre-training at step 1) and a KL reference, so critic, its
// optimizer and the reference are all part of the state, with a learning
// rate that changes every step (the caller's schedule).
void RunStep(Trainer* t, int step) {
  StepOptions o;
  o.objective = step == 0 ? TrainObjective::kSft : TrainObjective::kPolicyGradient;
  o.lr = 4e-3 / (1.0 + step);
  o.kl_coef = 0.05;
  o.micro_batch_tokens = 20;
  o.critic.enabled = true;
  o.critic.critic_only = step == 1;
  o.critic.lr = 3e-3;
  auto r = t->Step(Batch(step), o);
  ASSERT_TRUE(r.ok()) << r.status();
}

bool BitIdentical(const std::vector<RawTensor>& a, const std::vector<RawTensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].bytes != b[i].bytes) return false;
  }
  return true;
}

std::string Dir(const std::string& name) {
  std::string d = ::testing::TempDir() + "/resume_" + name;
  fs::remove_all(d);
  return d;
}

TEST(ResumeTest, StepsAfterAResumeAreBitIdenticalToAnUninterruptedRun) {
  const std::string dir = Dir("exact");
  auto straight = Trainer::Create(Config(), 40, nullptr);
  ASSERT_TRUE(straight.ok());
  for (int s = 0; s < 3; ++s) RunStep(straight->get(), s);
  CheckpointOptions options;
  options.client_state = std::string("cursor\0=17", 10);
  auto written = (*straight)->SaveCheckpoint(dir, options);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, dir);
  for (int s = 3; s < 6; ++s) RunStep(straight->get(), s);

  // A fresh process that already took a different step: everything it holds
  // is replaced.
  auto resumed = Trainer::Create(Config(), 40, nullptr);
  ASSERT_TRUE(resumed.ok());
  RunStep(resumed->get(), 4);
  auto point = (*resumed)->LoadCheckpoint(dir);
  ASSERT_TRUE(point.ok()) << point.status();
  EXPECT_EQ(point->weight_version, 2);  // step 1 trained the critic only
  EXPECT_EQ(point->optimizer_steps, 2);
  EXPECT_EQ(point->client_state, options.client_state);
  EXPECT_EQ((*resumed)->weight_version(), 2);
  for (int s = 3; s < 6; ++s) RunStep(resumed->get(), s);
  EXPECT_TRUE(BitIdentical((*resumed)->ExportWeights(), (*straight)->ExportWeights()));
  EXPECT_EQ((*resumed)->weight_version(), (*straight)->weight_version());

  // A checkpoint that lost its optimizer state is refused, naming the file.
  fs::remove(dir + "/optimizer.safetensors");
  auto r = (*resumed)->LoadCheckpoint(dir);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("optimizer.safetensors is missing"));
}

TEST(ResumeTest, KeepLastKeepsTheNewestAndResumesFromTheRoot) {
  const std::string root = Dir("keep");
  auto t = Trainer::Create(Config(), 40, nullptr);
  CheckpointOptions options;
  options.keep_last = 2;
  for (int s = 0; s < 4; ++s) {
    RunStep(t->get(), s == 0 ? 0 : s + 1);  // no critic-only step: one version each
    options.client_state = "step " + std::to_string(s);
    auto written = (*t)->SaveCheckpoint(root, options);
    ASSERT_TRUE(written.ok()) << written.status();
    EXPECT_EQ(*written, root + "/version-00000000" + std::to_string(s + 1));
  }
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"latest", "version-000000003", "version-000000004"}));

  auto other = Trainer::Create(Config(), 40, nullptr);
  auto point = (*other)->LoadCheckpoint(root);
  ASSERT_TRUE(point.ok()) << point.status();
  EXPECT_EQ(point->directory, root + "/version-000000004");
  EXPECT_EQ(point->client_state, "step 3");
  // Without `latest` (a crash between the rename and its update), the
  // newest complete version is taken.
  fs::remove(root + "/latest");
  point = (*other)->LoadCheckpoint(root);
  ASSERT_TRUE(point.ok()) << point.status();
  EXPECT_EQ(point->weight_version, 4);

  options.keep_last = -1;
  EXPECT_EQ((*t)->SaveCheckpoint(root, options).status().code(), absl::StatusCode::kInvalidArgument);
}

void FlipByte(const std::string& path, std::streamoff at_from_end) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(-at_from_end, std::ios::end);
  char c = 0;
  f.read(&c, 1);
  f.seekp(-at_from_end, std::ios::end);
  c = static_cast<char>(c ^ 0x40);
  f.write(&c, 1);
}

TEST(ResumeTest, CorruptOrMismatchedCheckpointsAreClearErrorsAndChangeNothing) {
  const std::string dir = Dir("corrupt");
  auto t = Trainer::Create(Config(), 40, nullptr);
  for (int s = 0; s < 2; ++s) RunStep(t->get(), s);
  ASSERT_TRUE((*t)->SaveCheckpoint(dir).ok());
  auto target = Trainer::Create(Config(), 40, nullptr);
  const std::vector<RawTensor> before = (*target)->ExportWeights();

  FlipByte(dir + "/optimizer.safetensors", 5);
  auto r = (*target)->LoadCheckpoint(dir);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("optimizer.safetensors is corrupt"));
  EXPECT_TRUE(BitIdentical((*target)->ExportWeights(), before));
  EXPECT_EQ((*target)->weight_version(), 0);

  ASSERT_TRUE((*t)->SaveCheckpoint(dir).ok());
  fs::resize_file(dir + "/model.safetensors", fs::file_size(dir + "/model.safetensors") - 3);
  r = (*target)->LoadCheckpoint(dir);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("model.safetensors is corrupt"));

  ASSERT_TRUE((*t)->SaveCheckpoint(dir).ok());
  {
    std::ofstream(dir + "/trainer_state.json") << "{\"format\": 1, \"files\": ";
  }
  r = (*target)->LoadCheckpoint(dir);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("trainer_state.json is corrupt"));

  fs::remove(dir + "/trainer_state.json");
  r = (*target)->LoadCheckpoint(dir);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("cannot resume training"));

  ASSERT_TRUE((*t)->SaveCheckpoint(dir).ok());
  RunConfig wider = Config();
  wider.model.d_model = 48;
  wider.model.n_heads = 4;
  auto other = Trainer::Create(wider, 40, nullptr);
  r = (*other)->LoadCheckpoint(dir);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("configured for"));

  EXPECT_EQ((*target)->LoadCheckpoint(Dir("nothing")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(BitIdentical((*target)->ExportWeights(), before));
}

}  // namespace
}  // namespace rlpost
