#include "model/paged_kv.h"

#include <c10/util/Exception.h>

#include <algorithm>

namespace rlpost {

KvBlockPool::KvBlockPool(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim,
                         int64_t block_size, int64_t num_blocks, at::TensorOptions options)
    : block_size_(block_size) {
  TORCH_CHECK(block_size > 0 && num_blocks > 0, "KV pool needs positive block size and count");
  for (int64_t i = 0; i < n_layers; ++i) {
    k_.push_back(at::zeros({num_blocks + 1, block_size, n_kv_heads, head_dim}, options));
    v_.push_back(at::zeros({num_blocks + 1, block_size, n_kv_heads, head_dim}, options));
  }
  refs_.assign(static_cast<size_t>(num_blocks + 1), 0);
  refs_[kSinkBlock] = 1;  // never handed out
  for (int64_t b = num_blocks; b >= 1; --b) free_.push_back(static_cast<int32_t>(b));
}

std::optional<int32_t> KvBlockPool::Allocate() {
  if (free_.empty()) return std::nullopt;
  const int32_t b = free_.back();
  free_.pop_back();
  refs_[b] = 1;
  return b;
}

void KvBlockPool::Retain(int32_t block) {
  TORCH_CHECK(block != kSinkBlock && refs_[block] > 0, "KV pool: retain of a free block ", block);
  ++refs_[block];
}

void KvBlockPool::Release(int32_t block) {
  TORCH_CHECK(block != kSinkBlock && refs_[block] > 0, "KV pool: release of a free block ", block);
  if (--refs_[block] == 0) free_.push_back(block);
}

void KvBlockPool::ReleaseAll(std::vector<int32_t>* blocks) {
  for (int32_t b : *blocks) Release(b);
  blocks->clear();
}

void KvBlockPool::CopyBlock(int32_t src, int32_t dst) {
  for (size_t i = 0; i < k_.size(); ++i) {
    k_[i][dst].copy_(k_[i][src]);
    v_[i][dst].copy_(v_[i][src]);
  }
}

PagedForward MakePagedForward(KvBlockPool* pool, const std::vector<PagedRow>& rows,
                              int64_t columns) {
  PagedForward f;
  f.pool = pool;
  f.rows = static_cast<int64_t>(rows.size());
  f.columns = columns;
  const int64_t bs = pool->block_size();
  int64_t longest = 1;
  for (const PagedRow& r : rows) {
    TORCH_CHECK(r.new_tokens >= 1 && r.new_tokens <= columns, "paged row adds ", r.new_tokens,
                " tokens in a forward of ", columns, " columns");
    TORCH_CHECK(static_cast<int64_t>(r.blocks->size()) * bs >= r.past + r.new_tokens,
                "paged row: ", r.blocks->size(), " blocks cannot hold ", r.past + r.new_tokens,
                " tokens");
    longest = std::max(longest, r.past + r.new_tokens);
  }
  const int64_t nb = pool->BlocksFor(longest);
  const int64_t len = nb * bs;
  f.read_blocks_per_row = nb;
  const int64_t b = f.rows, t = columns;
  at::Tensor write = at::empty({b * t}, at::kLong);
  at::Tensor read = at::empty({b * nb}, at::kLong);
  at::Tensor positions = at::empty({b, t}, at::kLong);
  at::Tensor token_mask = at::empty({b * t}, at::kBool);
  // Row i, query column j sees key columns <= past_i + min(j, n_i - 1): a
  // padding query repeats the last real one, so no row is fully masked.
  at::Tensor visible = at::empty({b, t}, at::kLong);
  int64_t* w = write.data_ptr<int64_t>();
  int64_t* rd = read.data_ptr<int64_t>();
  int64_t* pos = positions.data_ptr<int64_t>();
  bool* tm = token_mask.data_ptr<bool>();
  int64_t* vis = visible.data_ptr<int64_t>();
  for (int64_t i = 0; i < b; ++i) {
    const PagedRow& r = rows[i];
    const std::vector<int32_t>& blocks = *r.blocks;
    for (int64_t j = 0; j < t; ++j) {
      const bool real = j < r.new_tokens;
      const int64_t p = r.past + (real ? j : r.new_tokens - 1);
      w[i * t + j] = real ? blocks[p / bs] * bs + p % bs
                          : static_cast<int64_t>(KvBlockPool::kSinkBlock) * bs;
      pos[i * t + j] = p;
      tm[i * t + j] = real;
      vis[i * t + j] = p;
    }
    for (int64_t c = 0; c < nb; ++c) {
      rd[i * nb + c] = c < static_cast<int64_t>(blocks.size()) ? blocks[c]
                                                               : KvBlockPool::kSinkBlock;
    }
  }
  const at::Device device = pool->k(0).device();
  at::Tensor key_col = at::arange(len, at::TensorOptions().dtype(at::kLong));
  f.attn_mask = key_col.view({1, 1, 1, len}).le(visible.view({b, 1, t, 1})).to(device);
  f.write_slots = write.to(device);
  f.read_blocks = read.to(device);
  f.token_mask = token_mask.to(device);
  f.positions = positions.to(device);
  return f;
}

std::pair<at::Tensor, at::Tensor> PagedForward::Update(int64_t layer, const at::Tensor& k,
                                                       const at::Tensor& v) const {
  at::Tensor& kp = pool->k(layer);
  at::Tensor& vp = pool->v(layer);
  const int64_t kvh = kp.size(2), hd = kp.size(3), bs = kp.size(1);
  // [B, kvh, T, hd] -> [B*T, kvh, hd] rows in (row, column) order.
  kp.view({-1, kvh, hd}).index_copy_(0, write_slots,
                                     k.transpose(1, 2).reshape({rows * columns, kvh, hd}));
  vp.view({-1, kvh, hd}).index_copy_(0, write_slots,
                                     v.transpose(1, 2).reshape({rows * columns, kvh, hd}));
  const int64_t len = read_blocks_per_row * bs;
  at::Tensor keys = kp.index_select(0, read_blocks).view({rows, len, kvh, hd}).transpose(1, 2);
  at::Tensor values = vp.index_select(0, read_blocks).view({rows, len, kvh, hd}).transpose(1, 2);
  return {keys, values};
}

}  // namespace rlpost
