#pragma once
// How the learner lays a batch out for compute (plain C++, no LibTorch):
// which rank trains which sequences, and how a rank's sequences are grouped
// into micro-batches. Each micro-batch becomes one packed row (sequences back
// to back, attention kept within each; model/moe_transformer.h), so no
// padding enters the FLOPs and gradients accumulate over micro-batches.
//
// Both plans depend only on the sequence lengths, so every rank computes the
// same plan without talking to the others.

#include <cstdint>
#include <vector>

namespace rlpost {

// Splits sequences 0..n-1 of `lengths` over `world` ranks so that token
// counts are balanced: longest first, each to the rank with the fewest tokens
// so far (ties: the lower rank; equal lengths: the lower index first). Each
// rank's indices come back in ascending order.
std::vector<std::vector<int64_t>> BalanceAcrossRanks(const std::vector<int64_t>& lengths,
                                                     int world);

// Groups `indices` (into `lengths`) into micro-batches of at most
// `token_budget` tokens by first-fit decreasing; a sequence longer than the
// budget gets a micro-batch of its own. token_budget <= 0: one micro-batch.
// Each micro-batch lists its indices in ascending order; micro-batches are
// ordered by their first index.
std::vector<std::vector<int64_t>> PlanMicroBatches(const std::vector<int64_t>& lengths,
                                                   const std::vector<int64_t>& indices,
                                                   int64_t token_budget);

}  // namespace rlpost
