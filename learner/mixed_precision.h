#pragma once
// bf16 mixed precision for the learner (LibTorch; learner only): inside an
// AutocastScope, matmul-heavy ops (linear, matmul, bmm) run in bfloat16 while
// parameters, gradients and optimizer state stay float32 (the master
// weights), as torch.autocast does. CPU autocast on a CPU build, CUDA
// autocast in a CUDA build; losses cast their logits to float32 first.

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

namespace rlpost {

class AutocastScope {
 public:
  AutocastScope(bool bf16, const at::Device& device) : on_(bf16), cuda_(device.is_cuda()) {
    if (!on_) return;
    if (cuda_) {
      previous_ = at::autocast::is_enabled();
      at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
      at::autocast::set_enabled(true);
    } else {
      previous_ = at::autocast::is_cpu_enabled();
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      at::autocast::set_cpu_enabled(true);
    }
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!on_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    if (cuda_) {
      at::autocast::set_enabled(previous_);
    } else {
      at::autocast::set_cpu_enabled(previous_);
    }
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool on_;
  bool cuda_;
  bool previous_ = false;
};

}  // namespace rlpost
