#include "model/paged_kv.h"

#include <gtest/gtest.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <random>
#include <vector>

#include "model/moe_transformer.h"

namespace rlpost {
namespace {

ModelConfig Config() {
  ModelConfig c;
  c.model_type = "rlpost_moe";
  c.vocab_size = 23;
  c.n_layers = 2;
  c.d_model = 32;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.n_experts = 4;
  c.top_k = 2;
  c.expert_hidden = 24;
  c.intermediate_size = 40;
  c.max_seq_len = 64;
  c.first_k_dense = 1;
  c.mtp_layers = 1;
  c.init_seed = 11;
  return c;
}

std::vector<int> RandomTokens(int n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int> t;
  for (int i = 0; i < n; ++i) t.push_back(static_cast<int>(rng() % vocab));
  return t;
}

at::Tensor Row(const std::vector<int>& tokens) {
  std::vector<int64_t> v(tokens.begin(), tokens.end());
  return torch::tensor(v, at::kLong).unsqueeze(0);
}

// Logits of the whole sequence in one cache-less forward: the reference.
ForwardOutput Reference(MoeTransformer& model, const std::vector<int>& tokens) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  at::Tensor pos = at::arange(n, at::kLong).unsqueeze(0);
  at::Tensor mask = at::ones({1, n}, at::kBool);
  ForwardOptions o;
  o.router_losses = false;
  o.record_routing = true;
  return model->Forward(Row(tokens), pos, mask, o);
}

struct Seq {
  std::vector<int> tokens;
  std::vector<int32_t> blocks;
  int64_t past = 0;
};

void Grow(KvBlockPool* pool, Seq* s, int64_t tokens) {
  while (static_cast<int64_t>(s->blocks.size()) < pool->BlocksFor(tokens)) {
    s->blocks.push_back(*pool->Allocate());
  }
}

// Feeds chunk[i] more tokens of each sequence in one paged forward and checks
// every new position's logits against the reference.
void Feed(MoeTransformer& model, KvBlockPool* pool, std::vector<Seq*> seqs,
          const std::vector<int64_t>& chunk) {
  int64_t t = *std::max_element(chunk.begin(), chunk.end());
  std::vector<PagedRow> rows;
  at::Tensor tokens = at::zeros({static_cast<int64_t>(seqs.size()), t}, at::kLong);
  for (size_t i = 0; i < seqs.size(); ++i) {
    Grow(pool, seqs[i], seqs[i]->past + chunk[i]);
    for (int64_t j = 0; j < chunk[i]; ++j) tokens[i][j] = seqs[i]->tokens[seqs[i]->past + j];
    rows.push_back({&seqs[i]->blocks, seqs[i]->past, chunk[i]});
  }
  PagedForward paged = MakePagedForward(pool, rows, t);
  ForwardOptions o;
  o.paged = &paged;
  o.router_losses = false;
  o.record_routing = true;
  ForwardOutput out = model->Forward(tokens, at::Tensor(), at::Tensor(), o);
  for (size_t i = 0; i < seqs.size(); ++i) {
    ForwardOutput ref = Reference(model, seqs[i]->tokens);
    for (int64_t j = 0; j < chunk[i]; ++j) {
      const int64_t p = seqs[i]->past + j;
      EXPECT_TRUE(at::allclose(out.logits[i][j], ref.logits[0][p], 1e-9, 1e-9))
          << "row " << i << " position " << p;
      // Layer 1 is the MoE layer: routing of each token as in the reference.
      EXPECT_TRUE(at::equal(out.routing[1].expert_ids[i * t + j],
                            ref.routing[1].expert_ids[p]))
          << "row " << i << " position " << p;
    }
    seqs[i]->past += chunk[i];
  }
}

class PagedKvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::NoGradGuard no_grad;
    model_ = MoeTransformer(Config());
    model_->to(at::kDouble);
    model_->eval();
  }
  KvBlockPool NewPool(int64_t n_layers, int64_t blocks) {
    const ModelConfig& c = model_->config();
    return KvBlockPool(n_layers, c.n_kv_heads, c.head_dim(), /*block_size=*/4, blocks,
                       at::TensorOptions().dtype(at::kDouble));
  }
  MoeTransformer model_{nullptr};
};

TEST_F(PagedKvTest, RaggedChunksMatchTheCachelessForward) {
  torch::NoGradGuard no_grad;
  KvBlockPool pool = NewPool(2, 40);
  Seq a{RandomTokens(21, 23, 1)}, b{RandomTokens(9, 23, 2)}, c{RandomTokens(30, 23, 3)};
  Feed(model_, &pool, {&a, &b, &c}, {5, 1, 7});   // prefill of different lengths
  Feed(model_, &pool, {&a, &b, &c}, {1, 1, 1});   // decode
  Feed(model_, &pool, {&a, &b, &c}, {4, 2, 1});   // verify passes of different widths
  Feed(model_, &pool, {&c, &a}, {13, 3});         // a batch without b
  Feed(model_, &pool, {&b}, {5});
  Feed(model_, &pool, {&a, &c}, {8, 8});
  EXPECT_EQ(a.past, 21);
  EXPECT_EQ(b.past, 9);
  EXPECT_EQ(c.past, 30);
  EXPECT_EQ(pool.free_blocks(), 40 - (6 + 3 + 8));
}

TEST_F(PagedKvTest, RollbackOverwritesRejectedPositions) {
  torch::NoGradGuard no_grad;
  KvBlockPool pool = NewPool(2, 16);
  Seq a{RandomTokens(12, 23, 4)};
  Feed(model_, &pool, {&a}, {6});
  // Feed three wrong tokens at 6..8, then roll back to 7 (keep one).
  Seq wrong = a;
  wrong.tokens[7] = (wrong.tokens[7] + 1) % 23;
  wrong.tokens[8] = (wrong.tokens[8] + 5) % 23;
  std::vector<PagedRow> rows = {{&a.blocks, 6, 3}};
  Grow(&pool, &a, 9);
  PagedForward paged = MakePagedForward(&pool, rows, 3);
  ForwardOptions o;
  o.paged = &paged;
  model_->Forward(Row({wrong.tokens[6], wrong.tokens[7], wrong.tokens[8]}), at::Tensor(),
                  at::Tensor(), o);
  a.past = 7;  // position 6 was right; 7 and 8 are rejected and will be overwritten
  Feed(model_, &pool, {&a}, {5});
}

TEST_F(PagedKvTest, ForkedSequencesShareFullBlocksAndCopyThePartialOne) {
  torch::NoGradGuard no_grad;
  KvBlockPool pool = NewPool(2, 20);
  Seq prompt{RandomTokens(10, 23, 5)};
  Feed(model_, &pool, {&prompt}, {10});
  ASSERT_EQ(prompt.blocks.size(), 3u);  // 4 + 4 + 2
  std::vector<Seq> samples(3);
  for (int s = 0; s < 3; ++s) {
    samples[s].tokens = prompt.tokens;
    std::vector<int> more = RandomTokens(7, 23, 100 + s);
    samples[s].tokens.insert(samples[s].tokens.end(), more.begin(), more.end());
    samples[s].past = 10;
    for (int i = 0; i < 2; ++i) {
      pool.Retain(prompt.blocks[i]);
      samples[s].blocks.push_back(prompt.blocks[i]);
    }
    int32_t copy = *pool.Allocate();
    pool.CopyBlock(prompt.blocks[2], copy);
    samples[s].blocks.push_back(copy);
  }
  EXPECT_EQ(pool.refcount(prompt.blocks[0]), 4);
  Feed(model_, &pool, {&samples[0], &samples[1], &samples[2]}, {3, 1, 7});
  Feed(model_, &pool, {&samples[0], &samples[1]}, {4, 6});
  pool.ReleaseAll(&prompt.blocks);
  for (Seq& s : samples) pool.ReleaseAll(&s.blocks);
  EXPECT_EQ(pool.free_blocks(), 20);
}

TEST_F(PagedKvTest, PagedMtpMatchesTheCachedMtpForward) {
  torch::NoGradGuard no_grad;
  const std::vector<int> tokens = RandomTokens(14, 23, 6);
  ForwardOutput ref = Reference(model_, tokens);
  const int64_t n = 13;  // MTP positions 0..12 read hidden_i and token_{i+1}
  at::Tensor ref_logits = model_->MtpForward(
      ref.hidden.narrow(1, 0, n), Row(tokens).narrow(1, 1, n),
      at::arange(n, at::kLong).unsqueeze(0), at::ones({1, n}, at::kBool), nullptr);
  KvBlockPool pool = NewPool(1, 8);
  Seq s;
  int64_t past = 0;
  for (int64_t chunk : {5, 1, 3, 4}) {
    Grow(&pool, &s, past + chunk);
    std::vector<PagedRow> rows = {{&s.blocks, past, chunk}};
    PagedForward paged = MakePagedForward(&pool, rows, chunk);
    auto [logits, hidden] = model_->MtpForwardPaged(
        ref.hidden.narrow(1, past, chunk), Row(tokens).narrow(1, past + 1, chunk), paged);
    EXPECT_EQ(hidden.size(1), chunk);
    EXPECT_TRUE(at::allclose(logits[0], ref_logits[0].narrow(0, past, chunk), 1e-9, 1e-9))
        << "chunk at " << past;
    past += chunk;
  }
}

TEST(KvBlockPoolTest, AllocatesUntilExhaustedAndReusesReleasedBlocks) {
  KvBlockPool pool(1, 1, 2, 4, 3, at::TensorOptions().dtype(at::kFloat));
  std::vector<int32_t> got;
  for (int i = 0; i < 3; ++i) got.push_back(*pool.Allocate());
  EXPECT_FALSE(pool.Allocate().has_value());
  for (int32_t b : got) EXPECT_NE(b, KvBlockPool::kSinkBlock);
  pool.Retain(got[1]);
  pool.Release(got[1]);
  EXPECT_FALSE(pool.Allocate().has_value());
  pool.Release(got[1]);
  EXPECT_EQ(*pool.Allocate(), got[1]);
  EXPECT_EQ(pool.BlocksFor(0), 0);
  EXPECT_EQ(pool.BlocksFor(4), 1);
  EXPECT_EQ(pool.BlocksFor(5), 2);
}

}  // namespace
}  // namespace rlpost
