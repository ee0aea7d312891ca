#include "rollout/engine.h"

#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/seed.h"
#include "model/moe_transformer.h"
#include "model/paged_kv.h"
#include "rollout/ngram_drafter.h"
#include "rollout/spec_sampling.h"
#include "rollout/spec_tuner.h"

namespace rlpost {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

uint64_t HashTokens(const std::vector<int>& tokens) {
  uint64_t h = 0x243F6A8885A308D3ull;
  for (int t : tokens) h = SplitMix64(h ^ static_cast<uint64_t>(static_cast<uint32_t>(t)));
  return h;
}

at::Tensor TokenTensor(const std::vector<std::vector<int64_t>>& rows, int64_t columns,
                       at::Device device) {
  at::Tensor t = at::zeros({static_cast<int64_t>(rows.size()), columns}, at::kLong);
  int64_t* d = t.data_ptr<int64_t>();
  for (size_t i = 0; i < rows.size(); ++i) {
    std::copy(rows[i].begin(), rows[i].end(), d + i * columns);
  }
  return t.to(device);
}

}  // namespace

absl::StatusOr<DrafterKind> ParseDrafterKind(const std::string& name) {
  if (name == "none" || name.empty()) return DrafterKind::kNone;
  if (name == "ngram") return DrafterKind::kNgram;
  if (name == "mtp") return DrafterKind::kMtp;
  if (name == "draft") return DrafterKind::kDraftModel;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown drafter '", name, "' (expected none, ngram, mtp or draft)"));
}

std::string DrafterName(DrafterKind kind) {
  switch (kind) {
    case DrafterKind::kNone: return "none";
    case DrafterKind::kNgram: return "ngram";
    case DrafterKind::kMtp: return "mtp";
    case DrafterKind::kDraftModel: return "draft";
  }
  return "none";
}

namespace {

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

struct PendingExclusive {
  std::function<absl::Status()> work;
};

}  // namespace

struct RolloutEngine::Impl {
  Impl(const ModelConfig& c, const EngineOptions& o) : options(o), model(c) {}

  EngineOptions options;
  MoeTransformer model;
  at::ScalarType dtype = at::kFloat;
  std::unique_ptr<KvBlockPool> pool;
  int64_t mtp_kv_layer = -1;  // pool layer of the MTP block, -1 without MTP drafting
  // Adaptive mode switches the MTP block off (no catch-up forwards) while
  // plain decoding measures best; samples admitted while it is off never
  // draft with it.
  bool mtp_active = true;
  int64_t mtp_probe_step = 0;  // step of the last switch back on
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

void RolloutEngine::Impl::TakeInbox() {
  std::deque<std::unique_ptr<Group>> fresh;
  {
    std::lock_guard<std::mutex> lock(mu);
    fresh.swap(inbox);
  }
  const bool ngram = options.speculation.drafter == DrafterKind::kNgram;
  for (std::unique_ptr<Group>& g : fresh) {
    Group* gp = g.get();
    gp->prompt_hash = HashTokens(gp->request.prompt);
    for (const std::string& stop : gp->request.sampling.stop_strings) {
      gp->max_stop_len = std::max(gp->max_stop_len, stop.size());
    }
    if (ngram) {
      NgramIndexOptions no;
      no.min_n = options.speculation.ngram_min;
      no.max_n = options.speculation.ngram_max;
      gp->ngram = std::make_unique<NgramIndex>(no);
      auto it = history.find(gp->prompt_hash);
      if (it != history.end()) {
        for (const std::vector<int>& earlier : it->second) gp->ngram->AddDocument(earlier);
      }
    }
    int64_t fresh_samples = 0;
    for (std::unique_ptr<Sequence>& s : gp->samples) {
      s->group = gp;
      if (ngram) s->ngram_doc = gp->ngram->AddDocument(s->tokens);
      if (s->length() == s->prompt_len) ++fresh_samples;
      waiting.push_back(s.get());
    }
    gp->prefix_wanted =
        options.prefix_sharing && fresh_samples >= 2 && gp->request.prompt.size() >= 2;
    groups[gp->id] = std::move(g);
  }
}

void RolloutEngine::Impl::ApplyCancels(std::vector<Sequence*>* finished) {
  std::vector<int64_t> ids;
  {
    std::lock_guard<std::mutex> lock(mu);
    ids.swap(cancels);
  }
  for (int64_t id : ids) {
    auto it = groups.find(id);
    if (it == groups.end()) continue;
    for (std::unique_ptr<Sequence>& s : it->second->samples) {
      if (!s->done) Finish(s.get(), FinishKind::kAbort, finished);
    }
  }
}

void RolloutEngine::Impl::Preempt(Sequence* s) {
  DropKv(s);
  s->running = false;
  running.erase(std::find(running.begin(), running.end(), s));
  waiting.push_front(s);
  ++work_stats.preemptions;
}

bool RolloutEngine::Impl::LeadsOrFollows(const Sequence& s) const {
  if (s.length() > s.prompt_len) return true;  // resumed or preempted: continue it
  bool started = false;
  for (const std::unique_ptr<Sequence>& sib : s.group->samples) {
    if (sib.get() == &s) continue;
    if (sib->done || static_cast<int64_t>(sib->out.tokens.size()) >= kLeadTokens) return true;
    started |= sib->running || sib->length() > sib->prompt_len;
  }
  return !started;  // the group's first sample leads
}

void RolloutEngine::Impl::Admit(std::vector<Sequence*>* finished) {
  const bool lead_first = options.speculation.drafter == DrafterKind::kNgram;
  while (static_cast<int64_t>(running.size()) < options.max_batch && !waiting.empty()) {
    // With the n-gram drafter a group's first sample goes ahead and its
    // siblings follow once it has kLeadTokens tokens to draft from; other
    // groups' samples fill the batch meanwhile, and when nothing else is
    // waiting the followers go anyway. Outputs do not depend on the order.
    auto pick = waiting.begin();
    if (lead_first) {
      for (auto it = waiting.begin(); it != waiting.end(); ++it) {
        if ((*it)->done || LeadsOrFollows(**it)) {
          pick = it;
          break;
        }
      }
    }
    Sequence* s = *pick;
    if (s->done) {
      waiting.erase(pick);
      continue;
    }
    // Room for the prefill and the first decode token, counting shared blocks once.
    const int64_t need = pool->BlocksFor(s->length()) + 1;
    if (pool->free_blocks() < need && !running.empty()) break;
    if (pool->free_blocks() < need) {
      // Alone in an empty batch and still too long: it would never fit.
      RLPOST_LOG(WARNING) << "a sample of " << s->length() << " tokens needs " << need
                          << " KV blocks; the pool has " << pool->free_blocks()
                          << " free (raise kv_blocks): aborted";
      waiting.erase(pick);
      Finish(s, FinishKind::kAbort, finished);
      continue;
    }
    waiting.erase(pick);
    s->running = true;
    s->admit_order = admit_counter++;
    running.push_back(s);
  }
}

// Ensures blocks for `tokens` positions; preempts the newest other sequences
// while the pool is short. False when even that cannot make room.
bool RolloutEngine::Impl::EnsureDecodeBlocks(Sequence* s, int64_t tokens) {
  while (!AllocateTo(&s->blocks, pool.get(), tokens)) {
    Sequence* victim = nullptr;
    for (Sequence* r : running) {
      if (r != s && (victim == nullptr || r->admit_order > victim->admit_order)) victim = r;
    }
    if (victim == nullptr) return false;
    Preempt(victim);
  }
  return true;
}

void RolloutEngine::Impl::Prefill(std::vector<Sequence*>* finished) {
  // Rows: group prefixes first, then samples that cannot fork from one.
  struct Row {
    Sequence* seq = nullptr;  // null: a group prefix
    Group* group = nullptr;
    int64_t start = 0, count = 0;
  };
  std::vector<Row> rows;
  int64_t budget = options.max_prefill_tokens;
  for (Sequence* s : running) {
    if (s->cached >= s->length() - 1) continue;
    Group* g = s->group;
    const int64_t prefix_len = static_cast<int64_t>(g->request.prompt.size()) - 1;
    if (g->prefix_wanted && s->cached == 0 && s->length() == s->prompt_len) {
      if (g->prefix_cached == prefix_len) {
        // Fork: share the full blocks, copy the partial last one.
        const int64_t bs = pool->block_size();
        const int64_t full = prefix_len / bs;
        for (int64_t i = 0; i < full; ++i) {
          pool->Retain(g->prefix_blocks[i]);
          s->blocks.push_back(g->prefix_blocks[i]);
        }
        if (prefix_len % bs != 0) {
          if (!EnsureDecodeBlocks(s, full * bs + 1)) continue;
          pool->CopyBlock(g->prefix_blocks[full], s->blocks.back());
        }
        s->cached = prefix_len;
        s->mtp_ready = g->mtp_ready && g->prefix_mtp_synced;
        s->mtp_synced = g->prefix_mtp_synced;
        s->mtp_first_q = g->mtp_first_q;
        s->mtp_hidden = g->mtp_hidden;
        continue;
      }
      bool listed = false;
      for (const Row& r : rows) listed |= (r.seq == nullptr && r.group == g);
      if (listed || budget <= 0) continue;
      const int64_t count = std::min(prefix_len - g->prefix_cached, budget);
      if (!AllocateTo(&g->prefix_blocks, pool.get(), g->prefix_cached + count)) continue;
      rows.push_back({nullptr, g, g->prefix_cached, count});
      budget -= count;
      continue;
    }
    if (budget <= 0) continue;
    const int64_t count = std::min(s->length() - 1 - s->cached, budget);
    if (!EnsureDecodeBlocks(s, s->cached + count)) continue;
    if (!s->running) continue;  // preempted itself? (cannot: victims exclude s)
    rows.push_back({s, g, s->cached, count});
    budget -= count;
  }
  // Drop rows whose sequence was preempted while making room for later rows.
  rows.erase(std::remove_if(rows.begin(), rows.end(),
                            [](const Row& r) { return r.seq != nullptr && !r.seq->running; }),
             rows.end());
  if (rows.empty()) return;
  int64_t columns = 0;
  std::vector<PagedRow> paged_rows;
  std::vector<std::vector<int64_t>> ids;
  for (const Row& r : rows) {
    columns = std::max(columns, r.count);
    const std::vector<int>& src = r.seq != nullptr ? r.seq->tokens : r.group->request.prompt;
    ids.emplace_back(src.begin() + r.start, src.begin() + r.start + r.count);
    paged_rows.push_back({r.seq != nullptr ? &r.seq->blocks : &r.group->prefix_blocks, r.start,
                          r.count});
  }
  const at::Device device = pool->k(0).device();
  PagedForward paged = MakePagedForward(pool.get(), paged_rows, columns);
  ForwardOptions fo;
  fo.paged = &paged;
  fo.router_losses = false;
  const Clock::time_point t0 = Clock::now();
  ForwardOutput out = model->Forward(TokenTensor(ids, columns, device), at::Tensor(),
                                     at::Tensor(), fo);
  if (mtp_kv_layer >= 0) {
    std::vector<MtpRow> mtp_rows;
    std::vector<int64_t> row_index;
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      bool& synced = r.seq != nullptr ? r.seq->mtp_synced : r.group->prefix_mtp_synced;
      synced = mtp_active && (synced || r.start == 0);
      if (!synced) {
        if (r.seq != nullptr) r.seq->mtp_ready = false;
        continue;
      }
      row_index.push_back(static_cast<int64_t>(i));
      MtpRow m;
      m.tokens = r.seq != nullptr ? &r.seq->tokens : &r.group->request.prompt;
      m.blocks = r.seq != nullptr ? &r.seq->blocks : &r.group->prefix_blocks;
      m.start = r.start;
      m.count = r.count;
      m.seq = r.seq;
      m.group = r.seq != nullptr ? nullptr : r.group;
      mtp_rows.push_back(m);
    }
    if (!mtp_rows.empty()) {
      MtpCatchUp(mtp_rows,
                 out.hidden.index_select(0, torch::tensor(row_index, at::kLong).to(device)));
    }
  }
  work_stats.forward_seconds += Seconds(Clock::now() - t0);
  for (const Row& r : rows) {
    if (r.seq != nullptr) {
      r.seq->cached += r.count;
    } else {
      r.group->prefix_cached += r.count;
    }
  }
  (void)finished;
}

// MTP over positions [start, start+count) of each row: hidden states from the
// main model, next tokens from the sequence. Leaves the distribution of the
// token after the sequence's last one when the catch-up reaches it.
void RolloutEngine::Impl::MtpCatchUp(const std::vector<MtpRow>& rows,
                                     const at::Tensor& hidden) {
  int64_t columns = 0;
  std::vector<PagedRow> paged_rows;
  std::vector<std::vector<int64_t>> next;
  for (const MtpRow& r : rows) {
    columns = std::max(columns, r.count);
    const std::vector<int>& t = *r.tokens;
    next.emplace_back(t.begin() + r.start + 1, t.begin() + r.start + 1 + r.count);
    paged_rows.push_back({r.blocks, r.start, r.count});
  }
  const at::Device device = pool->k(0).device();
  PagedForward paged = MakePagedForward(pool.get(), paged_rows, columns);
  auto [logits, mtp_hidden] = model->MtpForwardPaged(
      hidden.narrow(1, 0, columns), TokenTensor(next, columns, device), paged, mtp_kv_layer);
  at::Tensor lf = logits.to(at::kFloat).to(at::kCPU).contiguous();
  const int64_t vocab = model->config().vocab_size;
  for (size_t i = 0; i < rows.size(); ++i) {
    const MtpRow& r = rows[i];
    const int64_t last = r.count - 1;
    // Position start+last predicts the token at start+last+2: a usable first
    // draft only when that is the next token to generate.
    const bool usable = r.start + last + 2 == static_cast<int64_t>(r.tokens->size());
    Group* g = r.seq != nullptr ? r.seq->group : r.group;
    bool& ready = r.seq != nullptr ? r.seq->mtp_ready : g->mtp_ready;
    ready = usable;
    if (!usable) continue;
    std::vector<double>& q = r.seq != nullptr ? r.seq->mtp_first_q : g->mtp_first_q;
    SamplingDistribution(lf.data_ptr<float>() + (static_cast<int64_t>(i) * columns + last) * vocab,
                         static_cast<int>(vocab), g->request.sampling, &q);
    (r.seq != nullptr ? r.seq->mtp_hidden : g->mtp_hidden) =
        mtp_hidden[static_cast<int64_t>(i)][last];
  }
}

void RolloutEngine::Impl::DraftNgram(const std::vector<Sequence*>& rows, int k) {
  for (Sequence* s : rows) {
    s->drafts = s->group->ngram->Propose(s->ngram_doc, k);
  }
}

void RolloutEngine::Impl::DraftMtp(const std::vector<Sequence*>& rows, int k) {
  std::vector<Sequence*> chain;
  for (Sequence* s : rows) {
    if (!s->mtp_ready) continue;
    const uint64_t seed = s->out.seed;
    const int d = SampleDraftToken(s->mtp_first_q, seed, s->length());
    s->drafts.push_back(d);
    s->draft_q.push_back(s->mtp_first_q);
    chain.push_back(s);
  }
  // Further drafts: feed the MTP block its own hidden state (EAGLE style),
  // writing speculative MTP keys/values that the next catch-up overwrites.
  for (int j = 1; j < k && !chain.empty(); ++j) {
    std::vector<PagedRow> paged_rows;
    std::vector<std::vector<int64_t>> next;
    std::vector<at::Tensor> hidden;
    std::vector<Sequence*> kept;
    for (Sequence* s : chain) {
      // MTP position length()-1+j reads the draft at length()+j-1.
      const int64_t pos = s->length() - 1 + j;
      if (!AllocateTo(&s->blocks, pool.get(), pos + 1)) continue;
      kept.push_back(s);
      paged_rows.push_back({&s->blocks, pos, 1});
      next.push_back({s->drafts.back()});
      hidden.push_back(s->mtp_hidden.unsqueeze(0));
    }
    chain = kept;
    if (chain.empty()) break;
    const at::Device device = pool->k(0).device();
    PagedForward paged = MakePagedForward(pool.get(), paged_rows, 1);
    auto [logits, h] = model->MtpForwardPaged(at::stack(hidden, 0), TokenTensor(next, 1, device),
                                              paged, mtp_kv_layer);
    at::Tensor lf = logits.to(at::kFloat).to(at::kCPU).contiguous();
    const int64_t vocab = model->config().vocab_size;
    for (size_t i = 0; i < chain.size(); ++i) {
      Sequence* s = chain[i];
      std::vector<double> q;
      SamplingDistribution(lf.data_ptr<float>() + static_cast<int64_t>(i) * vocab,
                           static_cast<int>(vocab), s->group->request.sampling, &q);
      const int d = SampleDraftToken(q, s->out.seed, s->length() + j);
      s->drafts.push_back(d);
      s->draft_q.push_back(std::move(q));
      s->mtp_hidden = h[static_cast<int64_t>(i)][0];
    }
  }
}

void RolloutEngine::Impl::DraftModel(const std::vector<Sequence*>& rows, int k) {
  if (!draft_model || k <= 0) return;
  std::vector<Sequence*> chain = rows;
  const at::Device device = draft_pool->k(0).device();
  const int64_t vocab = model->config().vocab_size;
  for (int j = 0; j < k && !chain.empty(); ++j) {
    // j == 0: catch up on the accepted tokens [draft_cached, length()); then
    // one drafted token per forward.
    std::vector<PagedRow> paged_rows;
    std::vector<std::vector<int64_t>> ids;
    std::vector<Sequence*> kept;
    int64_t columns = 1;
    for (Sequence* s : chain) {
      const int64_t start = j == 0 ? s->draft_cached : s->length() + j - 1;
      std::vector<int64_t> feed;
      if (j == 0) {
        feed.assign(s->tokens.begin() + start, s->tokens.end());
      } else {
        feed.push_back(s->drafts.back());
      }
      if (!AllocateTo(&s->draft_blocks, draft_pool.get(), start + feed.size())) continue;
      kept.push_back(s);
      columns = std::max<int64_t>(columns, static_cast<int64_t>(feed.size()));
      paged_rows.push_back({&s->draft_blocks, start, static_cast<int64_t>(feed.size())});
      ids.push_back(std::move(feed));
    }
    chain = kept;
    if (chain.empty()) break;
    PagedForward paged = MakePagedForward(draft_pool.get(), paged_rows, columns);
    ForwardOptions fo;
    fo.paged = &paged;
    fo.router_losses = false;
    at::Tensor logits =
        draft_model->Forward(TokenTensor(ids, columns, device), at::Tensor(), at::Tensor(), fo)
            .logits.to(at::kFloat).to(at::kCPU).contiguous();
    for (size_t i = 0; i < chain.size(); ++i) {
      Sequence* s = chain[i];
      const int64_t last = paged_rows[i].new_tokens - 1;
      if (j == 0) s->draft_cached = s->length();
      std::vector<double> q;
      SamplingDistribution(logits.data_ptr<float>() + (static_cast<int64_t>(i) * columns + last) *
                                                          vocab,
                           static_cast<int>(vocab), s->group->request.sampling, &q);
      s->drafts.push_back(SampleDraftToken(q, s->out.seed, s->length() + j));
      s->draft_q.push_back(std::move(q));
    }
  }
}

// Appends one generated token; true when the sequence is finished.
bool RolloutEngine::Impl::Emit(Sequence* s, int token, double p, float raw,
                               const int32_t* experts, std::vector<Sequence*>* finished) {
  const GenerationRequest& req = s->group->request;
  s->tokens.push_back(token);
  s->out.tokens.push_back(token);
  s->out.logprobs.push_back(IsGreedy(req.sampling) ? 0.0f : static_cast<float>(std::log(p)));
  if (req.raw_logprobs) s->out.raw_logprobs.push_back(raw);
  s->out.weight_versions.push_back(version);
  if (req.routed_experts && experts != nullptr) {
    s->out.routed_experts.insert(s->out.routed_experts.end(), experts, experts + experts_width);
  }
  ++s->generated_this_call;
  ++work_stats.tokens_generated;
  if (s->group->ngram) s->group->ngram->Append(s->ngram_doc, token);
  bool stop = token == req.eos_token;
  for (int id : req.sampling.stop_token_ids) stop |= token == id;
  if (!stop && !req.sampling.stop_strings.empty() && req.detokenize) {
    // Only a stop string ending in the new token counts: compare the tail
    // with and without it (a token decodes to at least one byte).
    const size_t window = std::min(s->out.tokens.size(), s->group->max_stop_len + 1);
    std::vector<int> tail(s->out.tokens.end() - window, s->out.tokens.end());
    const std::string with = req.detokenize(tail);
    tail.pop_back();
    const std::string without = req.detokenize(tail);
    for (const std::string& stop_string : req.sampling.stop_strings) {
      if (with.find(stop_string) != std::string::npos &&
          without.find(stop_string) == std::string::npos) {
        stop = true;
      }
    }
  }
  if (stop) {
    Finish(s, FinishKind::kStop, finished);
  } else if (static_cast<int64_t>(s->out.tokens.size()) >= MaxNewTokens(*s)) {
    Finish(s, FinishKind::kLength, finished);
  } else if (req.token_budget > 0 && s->generated_this_call >= req.token_budget) {
    Finish(s, FinishKind::kPartial, finished);
  }
  return s->done;
}

void RolloutEngine::Impl::Decode(std::vector<Sequence*>* finished) {
  std::vector<Sequence*> rows;
  for (Sequence* s : running) {
    if (!s->done && s->cached == s->length() - 1) rows.push_back(s);
  }
  if (rows.empty()) return;
  const DrafterKind drafter = options.speculation.drafter;
  int k = 0;
  if (drafter != DrafterKind::kNone &&
      (drafter != DrafterKind::kDraftModel || draft_model)) {
    k = options.speculation.adaptive
            ? tuner.Choose(static_cast<int64_t>(rows.size()), options.speculation.max_draft_tokens)
            : options.speculation.max_draft_tokens;
  }
  if (mtp_kv_layer >= 0 && options.speculation.adaptive) {
    // The MTP block runs (catch-up forwards) while drafting pays, or while a
    // draft length > 0 is being measured; a step that re-measures k = 0
    // keeps it running so the samples stay in sync. Switching it back on is
    // a probe that lasts until newly admitted samples can draft, so while it
    // is off, probes happen once per SpecTuner::kRefreshFar steps at most.
    const bool best_drafts =
        tuner.Best(static_cast<int64_t>(rows.size()), options.speculation.max_draft_tokens) > 0;
    if (k > 0 && !mtp_active && !best_drafts) {
      if (work_stats.steps - mtp_probe_step < SpecTuner::kRefreshFar) {
        k = 0;
      } else {
        mtp_probe_step = work_stats.steps;
      }
    }
    mtp_active = k > 0 || best_drafts;
  }
  for (Sequence* s : rows) {
    s->drafts.clear();
    s->draft_q.clear();
  }
  // Never draft past what the sequence may still emit.
  int64_t k_cap = 0;
  for (Sequence* s : rows) {
    int64_t left = MaxNewTokens(*s) - static_cast<int64_t>(s->out.tokens.size());
    if (s->group->request.token_budget > 0) {
      left = std::min(left, s->group->request.token_budget - s->generated_this_call);
    }
    k_cap = std::max(k_cap, left - 1);
  }
  k = static_cast<int>(std::min<int64_t>(k, k_cap));
  // The whole step from here on is what the adaptive tuner weighs.
  const Clock::time_point draft_start = Clock::now();
  if (k > 0) {
    if (drafter == DrafterKind::kNgram) DraftNgram(rows, k);
    if (drafter == DrafterKind::kMtp) DraftMtp(rows, k);
    if (drafter == DrafterKind::kDraftModel) DraftModel(rows, k);
  }
  // Trim each row's drafts to what it may still emit and make room.
  int64_t columns = 1;
  for (Sequence* s : rows) {
    int64_t left = MaxNewTokens(*s) - static_cast<int64_t>(s->out.tokens.size());
    if (s->group->request.token_budget > 0) {
      left = std::min(left, s->group->request.token_budget - s->generated_this_call);
    }
    const size_t keep = static_cast<size_t>(std::max<int64_t>(0, std::min<int64_t>(
        static_cast<int64_t>(s->drafts.size()), left - 1)));
    s->drafts.resize(keep);
    if (!s->draft_q.empty()) s->draft_q.resize(keep);
  }
  std::vector<Sequence*> live;
  for (Sequence* s : rows) {
    if (!s->running) continue;  // preempted below while making room for another row
    if (!EnsureDecodeBlocks(s, s->length() + static_cast<int64_t>(s->drafts.size()))) {
      s->drafts.clear();
      s->draft_q.clear();
      if (!EnsureDecodeBlocks(s, s->length())) {
        Preempt(s);
        continue;
      }
    }
    live.push_back(s);
  }
  rows.clear();
  for (Sequence* s : live) {
    if (s->running) rows.push_back(s);
  }
  if (rows.empty()) return;
  std::vector<PagedRow> paged_rows;
  std::vector<std::vector<int64_t>> ids;
  int64_t drafted = 0;
  for (Sequence* s : rows) {
    std::vector<int64_t> feed = {s->tokens.back()};
    feed.insert(feed.end(), s->drafts.begin(), s->drafts.end());
    columns = std::max<int64_t>(columns, static_cast<int64_t>(feed.size()));
    paged_rows.push_back({&s->blocks, s->cached, static_cast<int64_t>(feed.size())});
    ids.push_back(std::move(feed));
    drafted += static_cast<int64_t>(s->drafts.size());
  }
  bool want_routing = false, want_raw = false;
  for (Sequence* s : rows) {
    want_routing |= s->group->request.routed_experts;
    want_raw |= s->group->request.raw_logprobs;
  }
  const at::Device device = pool->k(0).device();
  const Clock::time_point t0 = Clock::now();
  PagedForward paged = MakePagedForward(pool.get(), paged_rows, columns);
  ForwardOptions fo;
  fo.paged = &paged;
  fo.router_losses = false;
  fo.record_routing = want_routing;
  ForwardOutput out =
      model->Forward(TokenTensor(ids, columns, device), at::Tensor(), at::Tensor(), fo);
  at::Tensor logits = out.logits.to(at::kFloat).to(at::kCPU).contiguous();
  const double forward_seconds = Seconds(Clock::now() - t0);
  work_stats.forward_seconds += forward_seconds;
  // Routed experts as [B*T, layers*k] int32 on the CPU.
  at::Tensor experts;
  if (want_routing) {
    std::vector<at::Tensor> per_layer;
    for (const RouterRecord& r : out.routing) {
      if (r.expert_ids.defined()) per_layer.push_back(r.expert_ids);
    }
    if (!per_layer.empty()) {
      experts = at::cat(per_layer, 1).to(at::kInt).to(at::kCPU).contiguous();
    }
  }
  const int64_t vocab = model->config().vocab_size;
  const float* lp = logits.data_ptr<float>();
  const int64_t width = experts.defined() ? experts.size(1) : 0;
  int64_t accepted_total = 0, rows_drafted = 0, rejections = 0;
  std::vector<MtpRow> mtp_rows;
  std::vector<int64_t> mtp_row_index;
  std::vector<std::vector<double>> target;
  for (size_t i = 0; i < rows.size(); ++i) {
    Sequence* s = rows[i];
    const SamplingOptions& so = s->group->request.sampling;
    const int64_t kd = static_cast<int64_t>(s->drafts.size());
    target.resize(static_cast<size_t>(kd + 1));
    const float* row = lp + static_cast<int64_t>(i) * columns * vocab;
    for (int64_t j = 0; j <= kd; ++j) {
      SamplingDistribution(row + j * vocab, static_cast<int>(vocab), so, &target[j]);
    }
    DraftVerifyInput in;
    in.target = &target;
    in.draft_tokens = s->drafts;
    in.draft_probs = s->draft_q.empty() ? nullptr : &s->draft_q;
    in.seed = s->out.seed;
    in.first_position = s->length();
    const DraftVerifyResult res = VerifyDraft(in);
    const int64_t past = s->cached;
    if (kd > 0) {
      ++rows_drafted;
      if (res.accepted < kd) ++rejections;
    }
    s->out.drafted_tokens += kd;
    s->out.accepted_tokens += res.accepted;
    accepted_total += res.accepted;
    int64_t emitted = 0;
    for (size_t j = 0; j < res.tokens.size(); ++j) {
      const float raw = s->group->request.raw_logprobs
                            ? RawLogprob(row + j * vocab, static_cast<int>(vocab), res.tokens[j])
                            : 0.0f;
      const int32_t* ex =
          width > 0 ? experts.data_ptr<int32_t>() + (static_cast<int64_t>(i) * columns + j) * width
                    : nullptr;
      ++emitted;
      if (Emit(s, res.tokens[j], res.probs[j], raw, ex, finished)) break;
    }
    // Keys/values are valid for the fed tokens that turned out right: the
    // last token and the accepted drafts that were kept.
    s->cached = past + emitted;
    if (s->done) continue;
    TrimTo(&s->blocks, pool.get(), s->length());
    if (draft_model) s->draft_cached = std::min(s->draft_cached, s->length() - 1);
    if (mtp_kv_layer >= 0 && (!mtp_active || !s->mtp_synced)) {
      s->mtp_synced = false;
      s->mtp_ready = false;
    } else if (mtp_kv_layer >= 0) {
      MtpRow m;
      m.tokens = &s->tokens;
      m.blocks = &s->blocks;
      m.start = past;
      m.count = emitted;
      m.seq = s;
      mtp_rows.push_back(m);
      mtp_row_index.push_back(static_cast<int64_t>(i));
    }
  }
  if (!mtp_rows.empty()) {
    const Clock::time_point m0 = Clock::now();
    at::Tensor idx = torch::tensor(mtp_row_index, at::kLong).to(device);
    MtpCatchUp(mtp_rows, out.hidden.index_select(0, idx));
    work_stats.forward_seconds += Seconds(Clock::now() - m0);
  }
  work_stats.drafted_tokens += drafted;
  work_stats.accepted_tokens += accepted_total;
  work_stats.decode_rows += static_cast<int64_t>(rows.size());
  // A step meant to measure k > 0 in which no row could draft (no n-gram
  // match, MTP just switched back on) says nothing about k: not recorded.
  if (k == 0 || drafted > 0) {
    tuner.Record(static_cast<int64_t>(rows.size()), k, Seconds(Clock::now() - draft_start),
                 rows_drafted, accepted_total, rejections);
  }
}

void RolloutEngine::Impl::Report(const std::vector<Sequence*>& finished) {
  for (Sequence* s : finished) {
    if (s->running) {
      running.erase(std::find(running.begin(), running.end(), s));
      s->running = false;
    }
    DropKv(s);
    Group* g = s->group;
    ++work_stats.samples_finished;
    if (g->ngram && s->out.finish != FinishKind::kAbort &&
        options.speculation.history_per_prompt > 0) {
      std::deque<std::vector<int>>& h = history[g->prompt_hash];
      h.push_back(s->tokens);
      while (static_cast<int>(h.size()) > options.speculation.history_per_prompt) h.pop_front();
      history_lru.remove(g->prompt_hash);
      history_lru.push_back(g->prompt_hash);
      while (history_lru.size() > 1024) {
        history.erase(history_lru.front());
        history_lru.pop_front();
      }
    }
  }
  // Bookkeeping and published stats first, so that a caller woken by a
  // callback sees the engine as it is after these samples.
  std::vector<Group*> done_groups;
  for (Sequence* s : finished) {
    Group* g = s->group;
    if (--g->unreported == 0) {
      DropPrefix(g);
      waiting.erase(std::remove_if(waiting.begin(), waiting.end(),
                                   [g](Sequence* w) { return w->group == g; }),
                    waiting.end());
      done_groups.push_back(g);
    }
  }
  PublishStats();
  for (Sequence* s : finished) s->group->callback(s->out);
  for (Group* g : done_groups) groups.erase(g->id);
}

bool RolloutEngine::Impl::StepOnce() {
  const Clock::time_point t0 = Clock::now();
  TakeInbox();
  std::vector<Sequence*> finished;
  ApplyCancels(&finished);
  if (!finished.empty()) {
    Report(finished);
    finished.clear();
  }
  Admit(&finished);
  if (running.empty()) {
    Report(finished);
    PublishStats();
    return !waiting.empty();
  }
  torch::NoGradGuard no_grad;
  Prefill(&finished);
  // Group prefixes no sample still needs go back to the pool.
  for (auto& [id, g] : groups) {
    if (!g->prefix_wanted || g->prefix_blocks.empty()) continue;
    bool needed = false;
    for (const std::unique_ptr<Sequence>& s : g->samples) {
      needed |= !s->done && s->cached == 0 && s->length() == s->prompt_len;
    }
    if (!needed) DropPrefix(g.get());
  }
  Decode(&finished);
  ++work_stats.steps;
  work_stats.step_seconds += Seconds(Clock::now() - t0);
  Report(finished);
  PublishStats();
  return !running.empty() || !waiting.empty();
}

void RolloutEngine::Impl::PublishStats() {
  EngineStats s = work_stats;
  s.weight_version = version;
  s.draft_model_version = draft_version;
  s.running = static_cast<int64_t>(running.size());
  s.waiting = static_cast<int64_t>(waiting.size());
  s.kv_blocks_total = pool->num_blocks();
  s.kv_blocks_free = pool->free_blocks();
  s.drafter = DrafterName(options.speculation.drafter);
  s.mean_draft_length = tuner.MeanDraftLength();
  std::lock_guard<std::mutex> lock(mu);
  const int64_t queued = [&] {
    int64_t n = 0;
    for (const auto& g : inbox) n += static_cast<int64_t>(g->samples.size());
    return n;
  }();
  s.waiting += queued;
  stats = s;
}

// ---------------------------------------------------------------------------

RolloutEngine::RolloutEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

RolloutEngine::~RolloutEngine() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->loop.joinable()) impl_->loop.join();
  // Unfinished samples end with kAbort.
  std::lock_guard<std::mutex> step(impl_->step_mu);
  impl_->TakeInbox();
  std::vector<Sequence*> finished;
  for (auto& [id, g] : impl_->groups) {
    for (std::unique_ptr<Sequence>& s : g->samples) {
      if (!s->done) impl_->Finish(s.get(), FinishKind::kAbort, &finished);
    }
  }
  impl_->Report(finished);
}

absl::StatusOr<std::unique_ptr<RolloutEngine>> RolloutEngine::Create(
    const ModelConfig& config, const EngineOptions& options) {
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  if (options.max_batch < 1) return absl::InvalidArgumentError("max_batch must be >= 1");
  if (options.kv_block_size < 1) return absl::InvalidArgumentError("kv_block_size must be >= 1");
  if (options.max_prefill_tokens < 1) {
    return absl::InvalidArgumentError("max_prefill_tokens must be >= 1");
  }
  const SpeculationOptions& spec = options.speculation;
  if (spec.max_draft_tokens < 0 || spec.max_draft_tokens > 16) {
    return absl::InvalidArgumentError("max_draft_tokens must be in [0, 16]");
  }
  if (spec.drafter == DrafterKind::kMtp && config.mtp_layers < 1) {
    return absl::InvalidArgumentError(
        "the mtp drafter needs a policy with a multi-token-prediction block (model.mtp_layers=1)");
  }
  if (spec.drafter == DrafterKind::kNgram &&
      (spec.ngram_min < 1 || spec.ngram_max < spec.ngram_min)) {
    return absl::InvalidArgumentError("n-gram drafter needs 1 <= ngram_min <= ngram_max");
  }
  try {
    auto impl = std::make_unique<Impl>(config, options);
    impl->dtype = options.float64 ? at::kDouble : at::kFloat;
    impl->model->to(impl->dtype);
    impl->model->eval();
    int64_t layers = config.n_layers;
    if (spec.drafter == DrafterKind::kMtp) impl->mtp_kv_layer = layers++;
    const int64_t per_seq = (config.max_seq_len + options.kv_block_size - 1) /
                            options.kv_block_size + 1;
    const int64_t blocks = options.kv_blocks > 0 ? options.kv_blocks : options.max_batch * per_seq;
    impl->pool = std::make_unique<KvBlockPool>(layers, config.n_kv_heads, config.head_dim(),
                                               options.kv_block_size, blocks,
                                               at::TensorOptions().dtype(impl->dtype));
    for (int64_t l = 0; l < config.n_layers; ++l) {
      if (config.IsMoeLayer(l)) impl->experts_width += config.top_k;
    }
    impl->PublishStats();
    std::unique_ptr<RolloutEngine> engine(new RolloutEngine(std::move(impl)));
    if (options.background_thread) {
      Impl* raw = engine->impl_.get();
      raw->loop = std::thread([raw] {
        while (true) {
          {
            std::unique_lock<std::mutex> lock(raw->mu);
            raw->cv.wait(lock, [raw] {
              return raw->stopping ||
                     (raw->exclusive_waiting == 0 &&
                      (!raw->inbox.empty() || !raw->cancels.empty() || raw->stats.running > 0 ||
                       raw->stats.waiting > 0));
            });
            if (raw->stopping) return;
          }
          std::lock_guard<std::mutex> step(raw->step_mu);
          raw->StepOnce();
        }
      });
    }
    return engine;
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("cannot build the policy: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<int64_t> RolloutEngine::Submit(GenerationRequest request,
                                              SampleCallback on_sample) {
  const ModelConfig& config = impl_->model->config();
  if (request.prompt.empty()) return absl::InvalidArgumentError("empty prompt");
  for (int id : request.prompt) {
    if (id < 0 || id >= config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prompt token id ", id, " outside the vocabulary of ", config.vocab_size));
    }
  }
  if (static_cast<int64_t>(request.prompt.size()) >= config.max_seq_len) {
    return absl::InvalidArgumentError(absl::StrCat("prompt of ", request.prompt.size(),
                                                   " tokens does not fit the context of ",
                                                   config.max_seq_len, " tokens"));
  }
  if (absl::Status s = ValidateSamplingOptions(request.sampling, config.vocab_size); !s.ok()) {
    return s;
  }
  if (request.token_budget < 0) {
    return absl::InvalidArgumentError("token_budget must be >= 0 (0 = no limit)");
  }
  if (!request.sampling.stop_strings.empty() && !request.detokenize) {
    return absl::InvalidArgumentError("stop_strings need a detokenizer");
  }
  if (request.resume.empty() && (request.n < 1 || request.n > 4096)) {
    return absl::InvalidArgumentError(absl::StrCat("n must be in [1, 4096], got ", request.n));
  }
  auto group = std::make_unique<Group>();
  const int64_t prompt_len = static_cast<int64_t>(request.prompt.size());
  if (!request.resume.empty()) {
    for (const SampleOutput& r : request.resume) {
      const size_t n = r.tokens.size();
      if (r.logprobs.size() != n || r.weight_versions.size() != n ||
          (!r.raw_logprobs.empty() && r.raw_logprobs.size() != n)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "resume of sample ", r.sample_index,
            ": tokens, logprobs and weight_versions must have the same length"));
      }
      if (r.finish != FinishKind::kPartial) {
        return absl::InvalidArgumentError(
            absl::StrCat("resume of sample ", r.sample_index, ": it is already finished"));
      }
      if (prompt_len + static_cast<int64_t>(n) >= config.max_seq_len) {
        return absl::InvalidArgumentError(absl::StrCat(
            "resume of sample ", r.sample_index, ": ", prompt_len + static_cast<int64_t>(n),
            " tokens leave no room in the context of ", config.max_seq_len));
      }
      for (int id : r.tokens) {
        if (id < 0 || id >= config.vocab_size) {
          return absl::InvalidArgumentError(absl::StrCat("resume of sample ", r.sample_index,
                                                         ": token id ", id,
                                                         " outside the vocabulary"));
        }
      }
      auto s = std::make_unique<Sequence>();
      s->out = r;
      s->out.drafted_tokens = 0;
      s->out.accepted_tokens = 0;
      if (!request.raw_logprobs) s->out.raw_logprobs.clear();
      if (!request.routed_experts) s->out.routed_experts.clear();
      s->tokens = request.prompt;
      s->tokens.insert(s->tokens.end(), r.tokens.begin(), r.tokens.end());
      s->prompt_len = prompt_len;
      group->samples.push_back(std::move(s));
    }
  } else {
    for (int i = 0; i < request.n; ++i) {
      auto s = std::make_unique<Sequence>();
      s->out.sample_index = i;
      s->out.seed = SampleSeed(request.seed, i);
      s->tokens = request.prompt;
      s->prompt_len = prompt_len;
      group->samples.push_back(std::move(s));
    }
  }
  group->unreported = static_cast<int64_t>(group->samples.size());
  group->request = std::move(request);
  group->callback = std::move(on_sample);
  int64_t id;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    id = impl_->next_request_id++;
    group->id = id;
    impl_->stats.waiting += group->unreported;
    impl_->inbox.push_back(std::move(group));
  }
  impl_->cv.notify_all();
  return id;
}

void RolloutEngine::Cancel(int64_t request_id) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->cancels.push_back(request_id);
  }
  impl_->cv.notify_all();
}

absl::StatusOr<std::vector<SampleOutput>> RolloutEngine::Generate(GenerationRequest request) {
  struct Collector {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<SampleOutput> out;
    size_t expected = 0;
  };
  auto c = std::make_shared<Collector>();
  c->expected = request.resume.empty() ? static_cast<size_t>(std::max(request.n, 0))
                                       : request.resume.size();
  absl::StatusOr<int64_t> id = Submit(std::move(request), [c](const SampleOutput& s) {
    std::lock_guard<std::mutex> lock(c->mu);
    c->out.push_back(s);
    c->cv.notify_all();
  });
  if (!id.ok()) return id.status();
  if (!impl_->options.background_thread) {
    while (true) {
      {
        std::lock_guard<std::mutex> lock(c->mu);
        if (c->out.size() >= c->expected) break;
      }
      if (!Step()) break;
    }
  }
  std::unique_lock<std::mutex> lock(c->mu);
  c->cv.wait(lock, [&] { return c->out.size() >= c->expected; });
  std::vector<SampleOutput> out = std::move(c->out);
  std::sort(out.begin(), out.end(), [](const SampleOutput& a, const SampleOutput& b) {
    return a.sample_index < b.sample_index;
  });
  return out;
}

bool RolloutEngine::Step() {
  std::lock_guard<std::mutex> step(impl_->step_mu);
  try {
    return impl_->StepOnce();
  } catch (const c10::Error& e) {
    // A forward failed (out of memory, a bug): abort what is in flight
    // rather than leave callers waiting.
    std::vector<Sequence*> finished;
    for (auto& [id, g] : impl_->groups) {
      for (std::unique_ptr<Sequence>& s : g->samples) {
        if (!s->done) impl_->Finish(s.get(), FinishKind::kAbort, &finished);
      }
    }
    impl_->Report(finished);
    return false;
  }
}

void RolloutEngine::RunUntilIdle() {
  while (Step()) {
  }
}

absl::Status RolloutEngine::UpdateWeights(int64_t version,
                                          const std::vector<RawTensor>& tensors) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    ++impl_->exclusive_waiting;
  }
  absl::Status status;
  {
    std::lock_guard<std::mutex> step(impl_->step_mu);
    try {
      torch::NoGradGuard no_grad;
      status = impl_->model->ImportWeights(tensors);
    } catch (const c10::Error& e) {
      status = absl::InternalError(absl::StrCat("weight load failed: ", e.what_without_backtrace()));
    }
    if (status.ok()) {
      impl_->version = version;
      // Keys/values of the old weights are recomputed under the new ones.
      for (Sequence* s : impl_->running) impl_->DropKv(s);
      for (auto& [id, g] : impl_->groups) impl_->DropPrefix(g.get());
      impl_->PublishStats();
    }
  }
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    --impl_->exclusive_waiting;
  }
  impl_->cv.notify_all();
  return status;
}

absl::Status RolloutEngine::LoadDraftModel(const ModelConfig& config,
                                           const std::vector<RawTensor>& tensors,
                                           int64_t version) {
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  if (config.vocab_size != impl_->model->config().vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "draft model vocabulary ", config.vocab_size, " differs from the policy's ",
        impl_->model->config().vocab_size));
  }
  if (config.max_seq_len < impl_->model->config().max_seq_len) {
    return absl::InvalidArgumentError(absl::StrCat(
        "draft model context ", config.max_seq_len, " is shorter than the policy's ",
        impl_->model->config().max_seq_len));
  }
  MoeTransformer draft{nullptr};
  try {
    torch::NoGradGuard no_grad;
    draft = MoeTransformer(config);
    draft->to(impl_->dtype);
    draft->eval();
    if (!tensors.empty()) {
      if (absl::Status s = draft->ImportWeights(tensors); !s.ok()) return s;
    }
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot build the draft model: ", e.what_without_backtrace()));
  }
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    ++impl_->exclusive_waiting;
  }
  {
    std::lock_guard<std::mutex> step(impl_->step_mu);
    for (Sequence* s : impl_->running) {
      if (impl_->draft_pool) impl_->draft_pool->ReleaseAll(&s->draft_blocks);
      s->draft_cached = 0;
    }
    const EngineOptions& o = impl_->options;
    const int64_t per_seq = (config.max_seq_len + o.kv_block_size - 1) / o.kv_block_size + 1;
    impl_->draft_pool = std::make_unique<KvBlockPool>(
        config.n_layers, config.n_kv_heads, config.head_dim(), o.kv_block_size,
        o.max_batch * per_seq, at::TensorOptions().dtype(impl_->dtype));
    impl_->draft_model = draft;
    impl_->draft_version = version;
    impl_->PublishStats();
  }
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    --impl_->exclusive_waiting;
  }
  impl_->cv.notify_all();
  return absl::OkStatus();
}

std::vector<RawTensor> RolloutEngine::ExportWeights() const {
  std::lock_guard<std::mutex> step(impl_->step_mu);
  return impl_->model->ExportWeights();
}

EngineStats RolloutEngine::Stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

const ModelConfig& RolloutEngine::config() const { return impl_->model->config(); }

std::string RolloutEngine::Describe() const { return impl_->model->config().Describe(); }

int64_t RolloutEngine::weight_version() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats.weight_version;
}

}  // namespace rlpost
