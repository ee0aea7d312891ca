#pragma once
// A one-layer MoE policy small enough for learner tests to train in
// milliseconds.

#include "common/run_config.h"

namespace rlpost {

inline RunConfig TinyRunConfig() {
  RunConfig c;
  c.model.n_layers = 1;
  c.model.d_model = 32;
  c.model.n_heads = 4;
  c.model.n_kv_heads = 2;
  c.model.n_experts = 4;
  c.model.top_k = 2;
  c.model.expert_hidden = 32;
  c.model.max_seq_len = 32;
  return c;
}

}  // namespace rlpost
