#include "learner/packed_batch.h"

#include <algorithm>

#include "model/device.h"

namespace rlpost {
namespace {

at::Tensor LongTensor(const std::vector<int64_t>& values) {
  return at::tensor(values, at::kLong).clone();
}

}  // namespace

PackedRow PackExamples(const std::vector<const TrainExample*>& examples,
                       const ModelConfig& config) {
  PackedRow row;
  row.sequences = static_cast<int64_t>(examples.size());
  int64_t total = 0;
  for (const TrainExample* ex : examples) {
    const int64_t n = static_cast<int64_t>(ex->prompt.size() + ex->response.size());
    row.segments.push_back(n);
    total += n;
    row.width = std::max<int64_t>(row.width, static_cast<int64_t>(ex->response.size()));
  }
  row.width = std::max<int64_t>(row.width, 1);
  std::vector<int64_t> tokens, positions, next, logit_rows, targets, slots, mtp_rows, mtp_targets;
  tokens.reserve(static_cast<size_t>(total));
  positions.reserve(static_cast<size_t>(total));
  row.mask = at::zeros({row.sequences, row.width}, at::kFloat);
  row.old_logprobs = at::zeros({row.sequences, row.width}, at::kFloat);
  row.advantages = at::zeros({row.sequences, 1}, at::kFloat);
  row.positive = at::zeros({row.sequences, 1}, at::kFloat);
  auto mask = row.mask.accessor<float, 2>();
  auto old = row.old_logprobs.accessor<float, 2>();
  auto adv = row.advantages.accessor<float, 2>();
  auto pos = row.positive.accessor<float, 2>();
  for (int64_t s = 0; s < row.sequences; ++s) {
    const TrainExample& ex = *examples[static_cast<size_t>(s)];
    const int64_t o = static_cast<int64_t>(tokens.size());
    const int64_t p = static_cast<int64_t>(ex.prompt.size());
    const int64_t r = static_cast<int64_t>(ex.response.size());
    for (int id : ex.prompt) tokens.push_back(id);
    for (int id : ex.response) tokens.push_back(id);
    for (int64_t i = 0; i < p + r; ++i) {
      positions.push_back(i);
      next.push_back(i + 1 < p + r ? tokens[static_cast<size_t>(o + i + 1)] : 0);
    }
    for (int64_t j = 0; j < r; ++j) {
      logit_rows.push_back(o + p - 1 + j);
      targets.push_back(ex.response[static_cast<size_t>(j)]);
      slots.push_back(s * row.width + j);
      mask[s][j] = 1.0f;
      if (j < static_cast<int64_t>(ex.old_logprobs.size())) old[s][j] = ex.old_logprobs[j];
      if (p + j >= 2) {  // the token two ahead of column o + p + j - 2
        mtp_rows.push_back(o + p + j - 2);
        mtp_targets.push_back(ex.response[static_cast<size_t>(j)]);
      }
    }
    adv[s][0] = ex.advantage;
    pos[s][0] = ex.reward > 0 ? 1.0f : 0.0f;
  }
  const int64_t t = static_cast<int64_t>(tokens.size());
  row.tokens = LongTensor(tokens).view({1, t});
  row.positions = LongTensor(positions).view({1, t});
  row.key_mask = at::ones({1, t}, at::kBool);
  row.logit_rows = LongTensor(logit_rows);
  row.targets = LongTensor(targets);
  row.slots = LongTensor(slots);
  row.mtp_next = LongTensor(next).view({1, t});
  row.mtp_rows = LongTensor(mtp_rows);
  row.mtp_targets = LongTensor(mtp_targets);

  bool any_replay = false;
  for (const TrainExample* ex : examples) any_replay |= !ex->routed_experts.empty();
  if (!any_replay) return row;
  // Router replay: response positions use the experts the rollout recorded;
  // prompt positions (not recorded) route as usual.
  const int64_t k = config.top_k;
  row.replay_rows = at::zeros({t}, at::kBool);
  bool* rows = row.replay_rows.data_ptr<bool>();
  row.replay.resize(static_cast<size_t>(config.n_layers));
  int64_t offset = 0;  // of this layer's ids within a token's record
  for (int64_t l = 0; l < config.n_layers; ++l) {
    if (!config.IsMoeLayer(l)) continue;
    at::Tensor ids = at::zeros({t, k}, at::kLong);
    int64_t* d = ids.data_ptr<int64_t>();
    int64_t o = 0;
    for (int64_t s = 0; s < row.sequences; ++s) {
      const TrainExample& ex = *examples[static_cast<size_t>(s)];
      const int64_t p = static_cast<int64_t>(ex.prompt.size());
      if (!ex.routed_experts.empty()) {
        const int64_t width = static_cast<int64_t>(ex.routed_experts.size()) /
                              static_cast<int64_t>(ex.response.size());
        for (size_t j = 0; j < ex.response.size(); ++j) {
          const int64_t column = o + p - 1 + static_cast<int64_t>(j);
          rows[column] = true;
          for (int64_t e = 0; e < k; ++e) {
            d[column * k + e] = ex.routed_experts[j * static_cast<size_t>(width) +
                                                  static_cast<size_t>(offset + e)];
          }
        }
      }
      o += row.segments[static_cast<size_t>(s)];
    }
    row.replay[static_cast<size_t>(l)] = ids;
    offset += k;
  }
  return row;
}

void MoveToDevice(PackedRow* row, const c10::Device& device) {
  for (at::Tensor* t : {&row->tokens, &row->positions, &row->key_mask, &row->logit_rows,
                        &row->targets, &row->slots, &row->mask, &row->old_logprobs,
                        &row->advantages, &row->positive, &row->mtp_next, &row->mtp_rows,
                        &row->mtp_targets, &row->replay_rows}) {
    *t = OnDevice(*t, device);
  }
  for (at::Tensor& t : row->replay) t = OnDevice(t, device);
}

at::Tensor ToGrid(const PackedRow& row, const at::Tensor& values) {
  return at::zeros({row.sequences * row.width}, values.options())
      .index_copy(0, row.slots, values)
      .view({row.sequences, row.width});
}

}  // namespace rlpost
