// RolloutEngine::Impl: drafting (n-gram, MTP, draft model), exact
// verification and the decode step.
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
  const bool stateful = drafter == DrafterKind::kMtp || drafter == DrafterKind::kDraftModel;
  if (stateful && options.speculation.adaptive) {
    // A stateful drafter (the MTP block, a draft model) that sat idle while
    // plain decoding measured best pays a catch-up when it drafts again, and
    // the MTP block stays off (no catch-up forwards) while idle. Switching it
    // back on is a probe: while drafting does not pay, probes happen at most
    // once per probe_interval steps, an interval that grows while probes keep
    // confirming it. (An MTP probe lasts until newly admitted samples can
    // draft; a step that re-measures k = 0 keeps the block running so the
    // samples stay in sync.)
    const bool best_drafts =
        tuner.Best(static_cast<int64_t>(rows.size()), options.speculation.max_draft_tokens) > 0;
    if (best_drafts) probe_interval = SpecTuner::kRefreshFar;
    const bool drafting = mtp_kv_layer >= 0 ? mtp_active : last_draft_length > 0;
    if (k > 0 && !drafting && !best_drafts) {
      if (work_stats.steps - probe_step < probe_interval) {
        k = 0;
      } else {
        if (probe_step > 0) probe_interval = std::min(2 * probe_interval, kMaxProbeInterval);
        probe_step = work_stats.steps;
      }
    }
    if (mtp_kv_layer >= 0) mtp_active = k > 0 || best_drafts;
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
  double mtp_decode_seconds = 0;
  if (!mtp_rows.empty()) {
    const Clock::time_point m0 = Clock::now();
    at::Tensor idx = torch::tensor(mtp_row_index, at::kLong).to(device);
    MtpCatchUp(mtp_rows, out.hidden.index_select(0, idx));
    mtp_decode_seconds = Seconds(Clock::now() - m0);
    work_stats.forward_seconds += mtp_decode_seconds;
  }
  work_stats.drafted_tokens += drafted;
  work_stats.accepted_tokens += accepted_total;
  work_stats.decode_rows += static_cast<int64_t>(rows.size());
  // A step meant to measure k > 0 in which no row could draft (no n-gram
  // match, MTP just switched back on) says nothing about k: not recorded.
  // What the tuner weighs is what plain decoding would not pay: keeping the
  // MTP block in sync is a cost of drafting (also at this step's prefill),
  // not of a k = 0 step that re-measures plain decoding while it runs.
  last_draft_length = k;
  const double step_seconds = Seconds(Clock::now() - draft_start) +
                              (k > 0 ? mtp_prefill_seconds : -mtp_decode_seconds);
  if (work_stats.steps_by_draft_length.size() <= static_cast<size_t>(k)) {
    work_stats.steps_by_draft_length.resize(static_cast<size_t>(k) + 1, 0);
    work_stats.seconds_by_draft_length.resize(static_cast<size_t>(k) + 1, 0.0);
  }
  work_stats.steps_by_draft_length[static_cast<size_t>(k)] += 1;
  work_stats.seconds_by_draft_length[static_cast<size_t>(k)] += step_seconds;
  if (k == 0 || drafted > 0) {
    tuner.Record(static_cast<int64_t>(rows.size()), k, step_seconds, rows_drafted, accepted_total,
                 rejections);
  }
}

}  // namespace rlpost
