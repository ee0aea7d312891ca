// RolloutEngine::Impl: admission, prefill, preemption and reporting.
#include <torch/cuda.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "rollout/engine_impl.h"
#include "rollout/sampler.h"
#include "rollout/spec_sampling.h"

namespace rlpost {

using rollout_internal::Clock;
using rollout_internal::Group;
using rollout_internal::HashTokens;
using rollout_internal::MtpRow;
using rollout_internal::Seconds;
using rollout_internal::Sequence;
using rollout_internal::TokenTensor;

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
  // Prefill only fills the KV cache (and the MTP block's, from the hidden
  // states): no position needs logits.
  const at::Tensor no_logit_rows = at::empty({0}, at::TensorOptions().dtype(at::kLong).device(device));
  fo.logit_rows = &no_logit_rows;
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
      const Clock::time_point m0 = Clock::now();
      MtpCatchUp(mtp_rows,
                 out.hidden.index_select(0, torch::tensor(row_index, at::kLong).to(device)));
      mtp_prefill_seconds += Seconds(Clock::now() - m0);
    }
  }
  // On a GPU the kernels are still running: wait, so that the time is the
  // prefill's and not charged to the next decode step's draft length.
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
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
  mtp_prefill_seconds = 0;
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

}  // namespace rlpost
