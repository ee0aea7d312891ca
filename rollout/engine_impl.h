#pragma once
// Internals of the rollout engine (engine.h), shared by its translation
// units: engine.cc (the public API), engine_schedule.cc (admission, prefill,
// preemption, reporting) and engine_decode.cc (drafting, verification and
// the decode step). Not for use outside rollout/; includes LibTorch.

#include <torch/utils.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/seed.h"
#include "model/device.h"
#include "model/moe_transformer.h"
#include "model/paged_kv.h"
#include "rollout/engine.h"
#include "rollout/ngram_drafter.h"
#include "rollout/spec_tuner.h"

namespace rlpost {
namespace rollout_internal {

using Clock = std::chrono::steady_clock;

inline double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

inline uint64_t HashTokens(const std::vector<int>& tokens) {
  uint64_t h = 0x243F6A8885A308D3ull;
  for (int t : tokens) h = SplitMix64(h ^ static_cast<uint64_t>(static_cast<uint32_t>(t)));
  return h;
}

inline at::Tensor TokenTensor(const std::vector<std::vector<int64_t>>& rows, int64_t columns,
                       at::Device device) {
  at::Tensor t = at::zeros({static_cast<int64_t>(rows.size()), columns}, at::kLong);
  int64_t* d = t.data_ptr<int64_t>();
  for (size_t i = 0; i < rows.size(); ++i) {
    std::copy(rows[i].begin(), rows[i].end(), d + i * columns);
  }
  return t.to(device);
}

struct Group;

// One sample being generated.
struct Sequence {
  Group* group = nullptr;
  int64_t admit_order = 0;
  std::vector<int> tokens;  // prompt + generated
  int64_t prompt_len = 0;
  SampleOutput out;         // out.tokens == tokens[prompt_len:]
  int64_t generated_this_call = 0;
  // Main model (and MTP layer) keys/values for positions [0, cached).
  std::vector<int32_t> blocks;
  int64_t cached = 0;
  // Draft model keys/values for positions [0, draft_cached).
  std::vector<int32_t> draft_blocks;
  int64_t draft_cached = 0;
  // MTP: the distribution of the token at position tokens.size() and the MTP
  // block's hidden state that produced it (valid when mtp_ready).
  bool mtp_ready = false;
  std::vector<double> mtp_first_q;
  at::Tensor mtp_hidden;  // [D]
  // The MTP layer's keys/values cover every cached position (drafting is
  // possible); lost when a step skips the MTP catch-up.
  bool mtp_synced = false;
  int ngram_doc = -1;
  bool running = false;
  bool done = false;
  // This step's drafts.
  std::vector<int> drafts;
  std::vector<std::vector<double>> draft_q;

  int64_t length() const { return static_cast<int64_t>(tokens.size()); }
};

struct Group {
  int64_t id = 0;
  GenerationRequest request;
  RolloutEngine::SampleCallback callback;
  std::vector<std::unique_ptr<Sequence>> samples;
  int64_t unreported = 0;
  uint64_t prompt_hash = 0;
  // Shared prefill of prompt[0, P-1).
  std::vector<int32_t> prefix_blocks;
  int64_t prefix_cached = 0;
  bool prefix_wanted = false;
  std::unique_ptr<NgramIndex> ngram;
  size_t max_stop_len = 0;
  // MTP draft of the first generated token, computed with the prefix.
  bool prefix_mtp_synced = false;
  bool mtp_ready = false;
  std::vector<double> mtp_first_q;
  at::Tensor mtp_hidden;
};

// Positions [start, start + count) of a token sequence for the MTP block.
struct MtpRow {
  const std::vector<int>* tokens = nullptr;
  std::vector<int32_t>* blocks = nullptr;
  int64_t start = 0, count = 0;
  Sequence* seq = nullptr;  // or a group prefix:
  Group* group = nullptr;
};

}  // namespace rollout_internal

struct RolloutEngine::Impl {
  using Sequence = rollout_internal::Sequence;
  using Group = rollout_internal::Group;
  using MtpRow = rollout_internal::MtpRow;
  using Clock = rollout_internal::Clock;

  Impl(const ModelConfig& c, const EngineOptions& o) : options(o), model(c) {}

  EngineOptions options;
  MoeTransformer model;
  at::ScalarType dtype = at::kFloat;
  c10::Device device{c10::kCPU};  // options.device, opened
  std::unique_ptr<KvBlockPool> pool;
  int64_t mtp_kv_layer = -1;  // pool layer of the MTP block, -1 without MTP drafting
  // Adaptive mode switches the MTP block off (no catch-up forwards) while
  // plain decoding measures best; samples admitted while it is off never
  // draft with it.
  bool mtp_active = true;
  // Adaptive mode with a stateful drafter: the step of the last probe (a
  // switch back to drafting while plain decoding measured best) and the steps
  // between probes: doubles after every probe that finds drafting still does
  // not pay (up to kMaxProbeInterval) and returns to SpecTuner::kRefreshFar
  // when it does, or when new weights arrive (the MTP head trains with the
  // policy, so acceptance may change).
  int64_t probe_step = 0;
  int64_t probe_interval = SpecTuner::kRefreshFar;
  int last_draft_length = 0;  // of the last decode step
  // Seconds of MTP catch-up inside this step's prefill (charged to drafting).
  double mtp_prefill_seconds = 0;
  static constexpr int64_t kMaxProbeInterval = 16 * SpecTuner::kRefreshFar;
  MoeTransformer draft_model{nullptr};
  std::unique_ptr<KvBlockPool> draft_pool;
  int64_t draft_version = -1;
  SpecTuner tuner;
  int64_t version = 0;
  int64_t experts_width = 0;  // top_k * MoE layers

  // Inbox, guarded by mu.
  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<Group>> inbox;
  std::vector<int64_t> cancels;
  int exclusive_waiting = 0;
  bool stopping = false;
  int64_t next_request_id = 1;
  EngineStats stats;  // published copy

  // Step state, guarded by step_mu.
  mutable std::mutex step_mu;
  std::map<int64_t, std::unique_ptr<Group>> groups;
  std::deque<Sequence*> waiting;
  std::vector<Sequence*> running;
  int64_t admit_counter = 0;
  std::unordered_map<uint64_t, std::deque<std::vector<int>>> history;  // prompt hash -> rollouts
  std::list<uint64_t> history_lru;
  EngineStats work_stats;

  std::thread loop;

  // --- helpers -----------------------------------------------------------
  bool AllocateTo(std::vector<int32_t>* blocks, KvBlockPool* p, int64_t tokens) {
    while (static_cast<int64_t>(blocks->size()) < p->BlocksFor(tokens)) {
      std::optional<int32_t> b = p->Allocate();
      if (!b) return false;
      blocks->push_back(*b);
    }
    return true;
  }
  void TrimTo(std::vector<int32_t>* blocks, KvBlockPool* p, int64_t tokens) {
    while (static_cast<int64_t>(blocks->size()) > p->BlocksFor(tokens)) {
      p->Release(blocks->back());
      blocks->pop_back();
    }
  }
  void DropKv(Sequence* s) {
    pool->ReleaseAll(&s->blocks);
    s->cached = 0;
    s->mtp_ready = false;
    s->mtp_synced = false;
    if (draft_pool) draft_pool->ReleaseAll(&s->draft_blocks);
    s->draft_cached = 0;
  }
  void DropPrefix(Group* g) {
    pool->ReleaseAll(&g->prefix_blocks);
    g->prefix_cached = 0;
    g->prefix_wanted = false;
    g->mtp_ready = false;
    g->prefix_mtp_synced = false;
  }

  int64_t MaxNewTokens(const Sequence& s) const {
    const int64_t ctx = model->config().max_seq_len - s.prompt_len;
    const int64_t m = s.group->request.sampling.max_new_tokens;
    return m > 0 ? std::min<int64_t>(m, ctx) : ctx;
  }

  void Finish(Sequence* s, FinishKind kind, std::vector<Sequence*>* finished) {
    s->out.finish = kind;
    s->done = true;
    finished->push_back(s);
  }

  // --- scheduling ----------------------------------------------------------
  void TakeInbox();
  void ApplyCancels(std::vector<Sequence*>* finished);
  void Admit(std::vector<Sequence*>* finished);
  bool LeadsOrFollows(const Sequence& s) const;
  static constexpr int64_t kLeadTokens = 16;
  void Preempt(Sequence* s);
  bool EnsureDecodeBlocks(Sequence* s, int64_t tokens);
  void Prefill(std::vector<Sequence*>* finished);
  void Decode(std::vector<Sequence*>* finished);
  void DraftNgram(const std::vector<Sequence*>& rows, int k);
  void DraftMtp(const std::vector<Sequence*>& rows, int k);
  void DraftModel(const std::vector<Sequence*>& rows, int k);
  void MtpCatchUp(const std::vector<MtpRow>& rows, const at::Tensor& hidden);
  bool Emit(Sequence* s, int token, double p, float raw, const int32_t* experts,
            std::vector<Sequence*>* finished);
  void Report(const std::vector<Sequence*>& finished);
  bool StepOnce();
  void PublishStats();
};

}  // namespace rlpost
