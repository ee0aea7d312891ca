// Two learner ranks over c10d (Gloo) on loopback, as two threads of this
// process: after the same steps they hold identical weights, equal (to fp32
// rounding) to one rank trained on the whole batch.
#include <gtest/gtest.h>

#include "common/subprocess.h"

#include <cstring>
#include <thread>

#include "learner/collective.h"
#include "learner/trainer.h"
#include "tests/learner/tiny_run_config.h"

namespace rlpost {
namespace {

std::vector<TrainExample> Batch(int step) {
  std::vector<TrainExample> b;
  for (int i = 0; i < 6; ++i) {
    TrainExample ex;
    ex.prompt = {1, 5 + i, 6 + step};
    ex.response.assign(static_cast<size_t>(2 + i % 3), 7 + i);
    ex.old_logprobs.assign(ex.response.size(), -3.0f + 0.1f * static_cast<float>(i));
    ex.advantage = (i % 2 == 0) ? 1.0f : -0.5f;
    b.push_back(ex);
  }
  return b;
}

void Train(Trainer* t, int steps, bool critic, int64_t micro_batch_tokens) {
  StepOptions o;
  o.lr = 5e-3;
  // PPO with a critic: the advantages are whitened over both ranks' tokens
  // and the critic's gradients are summed with the policy's.
  o.critic.enabled = critic;
  o.critic.lr = 3e-3;
  o.micro_batch_tokens = micro_batch_tokens;
  // The load-balancing loss is computed per rank (per micro-batch), as in
  // Megatron; exact equivalence holds for the token losses.
  o.aux_loss_coef = 0.0;
  for (int s = 0; s < steps; ++s) {
    auto r = t->Step(Batch(s), o);
    ASSERT_TRUE(r.ok()) << r.status();
  }
}

double MaxRelDiff(const std::vector<RawTensor>& a, const std::vector<RawTensor>& b) {
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const float* x = reinterpret_cast<const float*>(a[i].bytes.data());
    const float* y = reinterpret_cast<const float*>(b[i].bytes.data());
    for (int64_t j = 0; j < a[i].numel(); ++j) {
      double d = std::abs(static_cast<double>(x[j]) - y[j]);
      double scale = std::max(1e-3, std::abs(static_cast<double>(y[j])));
      worst = std::max(worst, d / scale);
    }
  }
  return worst;
}

TEST(RendezvousTest, ThatCannotCompleteNamesTheAddressAndRank) {
  const int port = *PickFreePort();  // nobody serves the store there
  GroupOptions o;
  o.rank = 1;
  o.world_size = 2;
  o.master_port = port;
  o.rendezvous_timeout_seconds = 1;
  absl::StatusOr<std::unique_ptr<ProcessGroupHandle>> g = ProcessGroupHandle::Connect(o);
  ASSERT_FALSE(g.ok());
  const std::string msg(g.status().message());
  EXPECT_NE(msg.find("rank 1 of 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << msg;
  EXPECT_NE(msg.find("timeout 1 s"), std::string::npos) << msg;
}

class TwoRankTest : public ::testing::TestWithParam<bool> {};

TEST_P(TwoRankTest, TwoRanksMatchOneRankOnTheSameGlobalBatch) {
  const bool critic = GetParam();
  // micro_batch_tokens 1: every sequence is a micro-batch of its own, on one
  // rank or two, so only the data-parallel reduction differs and the result
  // must match to 1e-5. 4096: one rank packs all six sequences into one
  // micro-batch, each of two ranks three, so the matmuls sum tokens in
  // another order too; Adam divides by the gradient's own magnitude, and
  // that rounding shows at ~1e-5 in weights near zero.
  for (const auto& [budget, tolerance] : {std::pair<int64_t, double>{1, 1e-5}, {4096, 1e-4}}) {
    auto single = Trainer::Create(TinyRunConfig(), 30, nullptr);
    ASSERT_TRUE(single.ok());
    Train(single->get(), 3, critic, budget);

    int port = *PickFreePort();
    std::vector<RawTensor> weights[2];
    std::thread ranks[2];
    for (int r = 0; r < 2; ++r) {
      ranks[r] = std::thread([&, r] {
        auto group = ProcessGroupHandle::Connect({r, 2, "127.0.0.1", port, 120});
        ASSERT_TRUE(group.ok()) << group.status();
        auto t = Trainer::Create(TinyRunConfig(), 30, group->get());
        ASSERT_TRUE(t.ok());
        Train(t->get(), 3, critic, budget);
        weights[r] = (*t)->ExportWeights();
      });
    }
    for (auto& t : ranks) t.join();
    ASSERT_FALSE(weights[0].empty());
    ASSERT_EQ(weights[0].size(), weights[1].size());
    for (size_t i = 0; i < weights[0].size(); ++i) {
      EXPECT_EQ(weights[0][i].bytes, weights[1][i].bytes) << weights[0][i].name;
    }
    EXPECT_LT(MaxRelDiff(weights[0], (*single)->ExportWeights()), tolerance)
        << "micro_batch_tokens " << budget;
  }
}

INSTANTIATE_TEST_SUITE_P(Critic, TwoRankTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Gae" : "Outcome"; });

}  // namespace
}  // namespace rlpost
