#pragma once
// bf16 mixed precision for the learner (LibTorch; learner only): inside an
// AutocastScope, matmul-heavy ops (linear, matmul, bmm) run in bfloat16 while
// parameters, gradients and optimizer state stay float32 (the master
// weights), as torch.autocast does. CPU autocast on a CPU build, CUDA
// autocast in a CUDA build; losses cast their logits to float32 first.

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

#include "model/torch_compat.h"

namespace rlpost {

class AutocastScope {
 public:
  AutocastScope(bool bf16, const at::Device& device)
      : on_(bf16), type_(device.is_cuda() ? c10::kCUDA : c10::kCPU) {
    if (!on_) return;
    previous_ = torch_compat::AutocastEnabled(type_);
    torch_compat::SetAutocastDtype(type_, at::kBFloat16);
    torch_compat::SetAutocastEnabled(type_, true);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!on_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    torch_compat::SetAutocastEnabled(type_, previous_);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool on_;
  c10::DeviceType type_;
  bool previous_ = false;
};

}  // namespace rlpost
