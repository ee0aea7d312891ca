// RolloutService over gRPC against the real rlpost-rollout binary (tiny
// policy, n-gram drafter) on port 0: argument errors, weight updates that
// must be refused (and one that must be applied), partial rollouts resumed,
// counters, and concurrent calls.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/grpc_util.h"
#include "common/run_config.h"
#include "common/weight_chunks.h"
#include "model/char_tokenizer.h"
#include "model/model_config.h"
#include "model/moe_transformer.h"
#include "rlpost/v1/rollout.grpc.pb.h"
#include "tests/rollout/rollout_worker_process.h"

namespace rlpost {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

struct CallResult {
  grpc::Status status;
  std::vector<v1::Completion> completions;  // in sample_index order
};

v1::GenerateRequest Request(const std::string& prompt, int n, uint64_t seed, int max_new_tokens,
                            float temperature = 1.0f) {
  v1::GenerateRequest r;
  r.set_prompt_id("p");
  r.set_prompt(prompt);
  r.set_n(n);
  r.mutable_params()->set_temperature(temperature);
  r.mutable_params()->set_max_new_tokens(max_new_tokens);
  r.mutable_params()->set_seed(seed);
  return r;
}

std::vector<int> Tokens(const v1::Completion& c) {
  return std::vector<int>(c.token_ids().begin(), c.token_ids().end());
}

// A float32 tensor of zeros.
RawTensor ZerosTensor(const std::string& name, std::vector<int64_t> shape) {
  RawTensor t;
  t.name = name;
  t.dtype = RawDType::kFloat32;
  t.shape = std::move(shape);
  t.bytes.assign(static_cast<size_t>(t.numel()) * 4, '\0');
  return t;
}

// The policy the worker builds (same shape and seed), with a different init
// seed when asked: the source of weights the worker must accept.
std::vector<RawTensor> TinyPolicyWeights(int64_t init_seed) {
  ModelShape shape;
  shape.n_layers = testing::kTinyLayers;
  shape.d_model = testing::kTinyDModel;
  shape.n_heads = testing::kTinyHeads;
  shape.n_kv_heads = testing::kTinyKvHeads;
  shape.n_experts = testing::kTinyExperts;
  shape.top_k = testing::kTinyTopK;
  shape.expert_hidden = testing::kTinyExpertHidden;
  shape.max_seq_len = testing::kTinyContext;
  shape.init_seed = init_seed;
  MoeTransformer model(ModelConfig::FromShape(shape, CharTokenizer().vocab_size()));
  return model->ExportWeights();
}

class RolloutServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::Status s = worker_.Start();
    ASSERT_TRUE(s.ok()) << s;
    stub_ = v1::RolloutService::NewStub(MakeChannel(worker_.addr()));
  }
  void TearDown() override {
    stub_.reset();
    EXPECT_EQ(worker_.Stop(), 0) << worker_.Log();
  }

  CallResult Generate(const v1::GenerateRequest& request) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    auto reader = stub_->Generate(&context, request);
    CallResult r;
    v1::GenerateResponse response;
    while (reader->Read(&response)) r.completions.push_back(response.completion());
    r.status = reader->Finish();
    std::sort(r.completions.begin(), r.completions.end(),
              [](const v1::Completion& a, const v1::Completion& b) {
                return a.sample_index() < b.sample_index();
              });
    return r;
  }

  grpc::Status UpdateWeights(const std::vector<v1::WeightChunk>& chunks,
                             v1::UpdateWeightsResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    auto writer = stub_->UpdateWeights(&context, response);
    for (const v1::WeightChunk& chunk : chunks) {
      if (!writer->Write(chunk)) break;  // the worker refused the stream already
    }
    writer->WritesDone();
    return writer->Finish();
  }

  v1::RolloutInfo Info() {
    grpc::ClientContext context;
    v1::RolloutInfo info;
    grpc::Status s = stub_->GetInfo(&context, v1::GetInfoRequest(), &info);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return info;
  }

  // The engine publishes its counters at the end of the step whose
  // completions the calls just received, so wait for that step.
  v1::RolloutInfo IdleInfo() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    v1::RolloutInfo info = Info();
    while ((info.active_requests() != 0 || info.queued_completions() != 0 ||
            info.kv_blocks_free() != info.kv_blocks_total()) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
      info = Info();
    }
    return info;
  }

  testing::RolloutWorkerProcess worker_;
  std::unique_ptr<v1::RolloutService::Stub> stub_;
};

TEST_F(RolloutServiceTest, SamplingParamsOutOfRangeAreRefusedNamingTheParameter) {
  auto expect_refused = [&](const v1::GenerateRequest& request, const std::string& what) {
    CallResult r = Generate(request);
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << what;
    EXPECT_THAT(r.status.error_message(), AllOf(HasSubstr("prompt 'p'"), HasSubstr(what)));
    EXPECT_TRUE(r.completions.empty());
  };
  v1::GenerateRequest r = Request("1+1=", 2, 1, 8);
  r.mutable_params()->set_top_p(1.5f);
  expect_refused(r, "top_p must be in [0, 1]");
  r = Request("1+1=", 2, 1, 8);
  r.mutable_params()->set_temperature(-0.5f);
  expect_refused(r, "temperature must be in [0, 1000]");
  r = Request("1+1=", 2, 1, 8);
  r.mutable_params()->set_top_k(-1);
  expect_refused(r, "top_k");
  r = Request("1+1=", 2, 1, 8);
  r.mutable_params()->set_max_new_tokens(-3);
  expect_refused(r, "max_new_tokens");
  r = Request("1+1=", 2, 1, 8);
  r.mutable_params()->add_stop_token_ids(100000);
  expect_refused(r, "100000");
  r = Request("1+1=", 2, 1, 8);
  r.set_token_budget(-1);
  expect_refused(r, "token_budget");
  r = Request("1+1=", 5000, 1, 8);
  expect_refused(r, "n must be in [1, 4096]");
  r = Request("", 1, 1, 8);
  r.add_prompt_token_ids(100000);
  expect_refused(r, "prompt token id 100000 outside the vocabulary");
}

TEST_F(RolloutServiceTest, PromptLongerThanTheContextIsRefused) {
  CallResult r = Generate(Request(std::string(testing::kTinyContext, '7'), 1, 1, 8));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(r.status.error_message(),
              HasSubstr("does not fit the context of " + std::to_string(testing::kTinyContext)));
  // One token shorter (BOS included) fits.
  r = Generate(Request(std::string(testing::kTinyContext - 2, '7'), 1, 1, 8));
  EXPECT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_EQ(r.completions.size(), 1u);
  EXPECT_EQ(r.completions[0].token_ids_size(), 1);
  EXPECT_NE(r.completions[0].finish_reason(), v1::FINISH_REASON_PARTIAL);
}

TEST_F(RolloutServiceTest, WeightChunkWithAWrongChecksumKeepsTheOldWeights) {
  const CallResult before = Generate(Request("40+2=", 2, 9, 16));
  ASSERT_TRUE(before.status.ok()) << before.status.error_message();

  std::vector<v1::WeightChunk> chunks =
      ChunkWeights(1, {ZerosTensor("model.embed_tokens.weight", {2, 2})}, 0);
  ASSERT_EQ(chunks.size(), 1u);
  chunks[0].set_checksum(chunks[0].checksum() ^ 1u);
  v1::UpdateWeightsResponse response;
  grpc::Status s = UpdateWeights(chunks, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("'model.embed_tokens.weight'"));
  EXPECT_EQ(Info().weight_version(), 0);

  const CallResult after = Generate(Request("40+2=", 2, 9, 16));
  ASSERT_TRUE(after.status.ok()) << after.status.error_message();
  ASSERT_EQ(after.completions.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(Tokens(after.completions[i]), Tokens(before.completions[i]));
    for (int64_t v : after.completions[i].weight_versions()) EXPECT_EQ(v, 0);
  }
}

TEST_F(RolloutServiceTest, WeightsOfAnotherShapeOrWithUnknownTensorsAreRefused) {
  const CallResult before = Generate(Request("8*8=", 3, 21, 16));
  ASSERT_TRUE(before.status.ok()) << before.status.error_message();

  // A tensor the policy does not have (and nothing else).
  const RawTensor stray = ZerosTensor("model.layers.9.mlp.gate.weight", {1});
  v1::UpdateWeightsResponse response;
  grpc::Status s = UpdateWeights(ChunkWeights(1, {stray}, 0), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("missing"));

  // Every tensor of the policy plus a stray one.
  std::vector<RawTensor> weights = TinyPolicyWeights(8);
  std::vector<RawTensor> extra = weights;
  extra.push_back(stray);
  s = UpdateWeights(ChunkWeights(2, extra, 0), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("unexpected tensor 'model.layers.9.mlp.gate.weight'"));

  // One tensor with the right byte count but the wrong shape.
  std::vector<RawTensor> reshaped = weights;
  RawTensor& embed = reshaped.front();
  ASSERT_EQ(embed.shape.size(), 2u);
  const std::string name = embed.name;
  embed.shape = {embed.shape[1], embed.shape[0]};
  s = UpdateWeights(ChunkWeights(3, reshaped, 0), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), AllOf(HasSubstr("'" + name + "'"), HasSubstr("has shape")));

  // A stream that ends before the last tensor.
  std::vector<v1::WeightChunk> chunks = ChunkWeights(4, weights, 0);
  chunks.pop_back();
  s = UpdateWeights(chunks, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  EXPECT_EQ(Info().weight_version(), 0);
  const CallResult after = Generate(Request("8*8=", 3, 21, 16));
  ASSERT_TRUE(after.status.ok()) << after.status.error_message();
  ASSERT_EQ(after.completions.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(Tokens(after.completions[i]), Tokens(before.completions[i])) << i;
  }
}

TEST_F(RolloutServiceTest, NewWeightsAreSwappedInAndTagTheTokens) {
  const v1::GenerateRequest request = Request("6+6=", 4, 33, 24);
  const CallResult before = Generate(request);
  ASSERT_TRUE(before.status.ok()) << before.status.error_message();

  // Same weights as the worker's own initialisation under a new version:
  // the samples do not change, only the version they carry.
  v1::UpdateWeightsResponse response;
  grpc::Status s =
      UpdateWeights(ChunkWeights(1, TinyPolicyWeights(testing::kTinyInitSeed), 4096), &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.weight_version(), 1);
  EXPECT_GT(response.tensors(), 0);
  EXPECT_GT(response.bytes(), 0);
  EXPECT_EQ(Info().weight_version(), 1);
  const CallResult same = Generate(request);
  ASSERT_TRUE(same.status.ok()) << same.status.error_message();
  ASSERT_EQ(same.completions.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(Tokens(same.completions[i]), Tokens(before.completions[i])) << i;
    for (int64_t v : same.completions[i].weight_versions()) EXPECT_EQ(v, 1);
  }

  // Other weights: other samples.
  s = UpdateWeights(ChunkWeights(2, TinyPolicyWeights(testing::kTinyInitSeed + 1), 0), &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(Info().weight_version(), 2);
  const CallResult changed = Generate(request);
  ASSERT_TRUE(changed.status.ok()) << changed.status.error_message();
  ASSERT_EQ(changed.completions.size(), 4u);
  bool any_different = false;
  for (size_t i = 0; i < 4; ++i) {
    any_different |= Tokens(changed.completions[i]) != Tokens(before.completions[i]);
    for (int64_t v : changed.completions[i].weight_versions()) EXPECT_EQ(v, 2);
  }
  EXPECT_TRUE(any_different);

  // An older version is refused and version 2 keeps serving.
  s = UpdateWeights(ChunkWeights(1, TinyPolicyWeights(testing::kTinyInitSeed), 0), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("older than the loaded 2"));
  EXPECT_EQ(Info().weight_version(), 2);
}

TEST_F(RolloutServiceTest, PartialCompletionsResumeToTheUninterruptedOnes) {
  const v1::GenerateRequest whole = Request("31+11=", 4, 5, 20);
  v1::GenerateRequest budgeted = whole;
  budgeted.set_token_budget(5);
  const CallResult partial = Generate(budgeted);
  ASSERT_TRUE(partial.status.ok()) << partial.status.error_message();
  ASSERT_EQ(partial.completions.size(), 4u);
  for (const v1::Completion& c : partial.completions) {
    EXPECT_EQ(c.finish_reason(), v1::FINISH_REASON_PARTIAL) << c.sample_index();
    EXPECT_EQ(c.token_ids_size(), 5);
    EXPECT_EQ(c.logprobs_size(), 5);
    EXPECT_EQ(c.weight_versions_size(), 5);
  }

  v1::GenerateRequest resume = whole;
  resume.set_n(0);
  for (const v1::Completion& c : partial.completions) *resume.add_resume() = c;
  const CallResult resumed = Generate(resume);
  ASSERT_TRUE(resumed.status.ok()) << resumed.status.error_message();
  const CallResult uninterrupted = Generate(whole);
  ASSERT_TRUE(uninterrupted.status.ok()) << uninterrupted.status.error_message();
  ASSERT_EQ(resumed.completions.size(), 4u);
  ASSERT_EQ(uninterrupted.completions.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    const v1::Completion& r = resumed.completions[i];
    const v1::Completion& u = uninterrupted.completions[i];
    EXPECT_NE(r.finish_reason(), v1::FINISH_REASON_PARTIAL);
    const std::vector<int> tokens = Tokens(r);
    ASSERT_GE(tokens.size(), 5u);
    EXPECT_EQ(std::vector<int>(tokens.begin(), tokens.begin() + 5),
              Tokens(partial.completions[i]));
    EXPECT_EQ(tokens, Tokens(u)) << i;
    EXPECT_EQ(r.finish_reason(), u.finish_reason()) << i;
    EXPECT_EQ(r.seed(), u.seed());
    EXPECT_EQ(r.text(), u.text());
  }

  // A finished completion cannot be resumed.
  v1::GenerateRequest again = whole;
  *again.add_resume() = resumed.completions[0];
  const CallResult refused = Generate(again);
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(refused.status.error_message(), HasSubstr("is not partial"));
}

TEST_F(RolloutServiceTest, InfoCountsTheWorkDone) {
  // Before the first step the engine has published no counters yet (so
  // drafter and kv_blocks_* read empty); only the zeros are checked here.
  v1::RolloutInfo info = Info();
  EXPECT_EQ(info.weight_version(), 0);
  EXPECT_EQ(info.tokens_generated(), 0);
  EXPECT_EQ(info.completions_generated(), 0);
  EXPECT_FALSE(info.model().empty());

  // The same prompt twice, so the n-gram drafter has rollouts to draft from.
  int64_t tokens = 0;
  for (uint64_t seed : {1, 2}) {
    const CallResult r = Generate(Request("2+2=", 4, seed, 24, 0.5f));
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    for (const v1::Completion& c : r.completions) tokens += c.token_ids_size();
  }
  info = IdleInfo();
  EXPECT_EQ(info.drafter(), "ngram");
  EXPECT_GT(info.kv_blocks_total(), 0);
  EXPECT_EQ(info.tokens_generated(), tokens);
  EXPECT_EQ(info.completions_generated(), 8);
  EXPECT_GT(info.steps(), 0);
  EXPECT_EQ(info.active_requests(), 0);
  EXPECT_EQ(info.queued_completions(), 0);
  EXPECT_EQ(info.kv_blocks_free(), info.kv_blocks_total());
  EXPECT_LE(info.accepted_tokens(), info.drafted_tokens());
  EXPECT_GE(info.acceptance_rate(), 0.0);
  EXPECT_LE(info.acceptance_rate(), 1.0);
}

TEST_F(RolloutServiceTest, ConcurrentCallsAllComplete) {
  constexpr int kThreads = 8;
  std::vector<CallResult> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([this, i, &results] {
      results[i] = Generate(Request(std::to_string(i) + "+1=", 3, 100 + i, 16));
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) {
    ASSERT_TRUE(results[i].status.ok()) << i << ": " << results[i].status.error_message();
    ASSERT_EQ(results[i].completions.size(), 3u) << i;
    for (int j = 0; j < 3; ++j) {
      const v1::Completion& c = results[i].completions[j];
      EXPECT_EQ(c.sample_index(), j);
      EXPECT_TRUE(c.finish_reason() == v1::FINISH_REASON_STOP ||
                  c.finish_reason() == v1::FINISH_REASON_LENGTH);
    }
  }
  // A seeded group does not depend on the batch it ran in.
  for (int i = 0; i < kThreads; ++i) {
    const CallResult alone = Generate(Request(std::to_string(i) + "+1=", 3, 100 + i, 16));
    ASSERT_TRUE(alone.status.ok());
    for (int j = 0; j < 3; ++j) {
      EXPECT_EQ(Tokens(alone.completions[j]), Tokens(results[i].completions[j])) << i << "/" << j;
    }
  }
  EXPECT_EQ(IdleInfo().completions_generated(), 2 * kThreads * 3);
}

}  // namespace
}  // namespace rlpost
