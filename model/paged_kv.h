#pragma once
// Paged keys/values for many sequences of different lengths (the layout of
// vLLM's PagedAttention, on plain LibTorch ops): one pool of fixed-size blocks
// per layer, a block table per sequence, blocks reference-counted so the G
// samples of a group can share their prompt's blocks. A sequence holds
// ceil(length / block_size) blocks, so its memory follows its own length.
//
// A forward over a paged batch (MakePagedForward) writes the new keys/values
// of each row into its blocks and gathers each row's blocks back for
// attention; rows may add different numbers of tokens (padding goes to a
// reserved sink block that no sequence owns).
//
// Thread-safety: none; the rollout engine's step thread owns the pool.

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace rlpost {

class KvBlockPool {
 public:
  // `num_blocks` usable blocks (one more, the sink, is allocated).
  KvBlockPool(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, int64_t block_size,
              int64_t num_blocks, at::TensorOptions options);

  int64_t block_size() const { return block_size_; }
  int64_t num_blocks() const { return static_cast<int64_t>(refs_.size()) - 1; }
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  int64_t n_layers() const { return static_cast<int64_t>(k_.size()); }
  static constexpr int32_t kSinkBlock = 0;

  // A block with reference count 1, or nullopt when the pool is exhausted.
  std::optional<int32_t> Allocate();
  void Retain(int32_t block);
  void Release(int32_t block);
  void ReleaseAll(std::vector<int32_t>* blocks);
  int32_t refcount(int32_t block) const { return refs_[block]; }
  // Copies keys and values of every layer (copy-on-write of a shared block).
  void CopyBlock(int32_t src, int32_t dst);

  // [num_blocks + 1, block_size, n_kv_heads, head_dim]
  at::Tensor& k(int64_t layer) { return k_[layer]; }
  at::Tensor& v(int64_t layer) { return v_[layer]; }

  // Blocks a sequence of `tokens` tokens needs.
  int64_t BlocksFor(int64_t tokens) const { return (tokens + block_size_ - 1) / block_size_; }

 private:
  int64_t block_size_;
  std::vector<at::Tensor> k_, v_;
  std::vector<int32_t> refs_;
  std::vector<int32_t> free_;  // a stack: recently freed blocks are reused first
};

// One row of a paged forward: the sequence has `past` tokens cached in
// `blocks` and adds `new_tokens` (1..T) this forward; `blocks` must already
// cover past + new_tokens tokens.
struct PagedRow {
  const std::vector<int32_t>* blocks = nullptr;
  int64_t past = 0;
  int64_t new_tokens = 1;
};

// What attention needs for one forward over a paged batch of B rows and T
// columns (column j of row i is position past_i + j; columns at or past
// new_tokens_i are padding).
struct PagedForward {
  KvBlockPool* pool = nullptr;
  int64_t rows = 0, columns = 0;
  int64_t read_blocks_per_row = 0;
  at::Tensor write_slots;   // [B*T] int64 flat slot (block * block_size + offset)
  at::Tensor read_blocks;   // [B * read_blocks_per_row] int64 block ids
  at::Tensor attn_mask;     // [B,1,T,L] bool, L = read_blocks_per_row * block_size
  at::Tensor token_mask;    // [B*T] bool: real (non-padding) columns
  at::Tensor positions;     // [B,T] int64 rotary positions

  // Writes k,v [B, kvh, T, hd] of `layer` and returns all keys/values of
  // each row as [B, kvh, L, hd].
  std::pair<at::Tensor, at::Tensor> Update(int64_t layer, const at::Tensor& k,
                                           const at::Tensor& v) const;
};

PagedForward MakePagedForward(KvBlockPool* pool, const std::vector<PagedRow>& rows,
                              int64_t columns);

}  // namespace rlpost
