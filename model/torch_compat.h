#pragma once
// The few LibTorch calls whose spelling changed between the release the CPU
// build uses (Debian 12's 1.13) and the one the CUDA image uses (2.6): the
// autocast state per device type (2.4 replaced the per-device functions, which
// now warn on every call) and the optimizer state's key (a string until 2.1,
// the TensorImpl pointer since). LibTorch; model, rollout and learner only.

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <sstream>
#include <string>
#include <type_traits>

namespace rlpost::torch_compat {

#if TORCH_VERSION_MAJOR * 100 + TORCH_VERSION_MINOR >= 204
inline bool AutocastEnabled(c10::DeviceType t) { return at::autocast::is_autocast_enabled(t); }
inline void SetAutocastEnabled(c10::DeviceType t, bool on) {
  at::autocast::set_autocast_enabled(t, on);
}
inline at::ScalarType AutocastDtype(c10::DeviceType t) { return at::autocast::get_autocast_dtype(t); }
inline void SetAutocastDtype(c10::DeviceType t, at::ScalarType type) {
  at::autocast::set_autocast_dtype(t, type);
}
#else
inline bool AutocastEnabled(c10::DeviceType t) {
  return t == c10::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
}
inline void SetAutocastEnabled(c10::DeviceType t, bool on) {
  if (t == c10::kCUDA) {
    at::autocast::set_enabled(on);
  } else {
    at::autocast::set_cpu_enabled(on);
  }
}
inline at::ScalarType AutocastDtype(c10::DeviceType t) {
  return t == c10::kCUDA ? at::autocast::get_autocast_gpu_dtype()
                         : at::autocast::get_autocast_cpu_dtype();
}
inline void SetAutocastDtype(c10::DeviceType t, at::ScalarType type) {
  if (t == c10::kCUDA) {
    at::autocast::set_autocast_gpu_dtype(type);
  } else {
    at::autocast::set_autocast_cpu_dtype(type);
  }
}
#endif

// The key torch::optim keeps a parameter's state under (`Key` is the state
// map's key type): the TensorImpl's address, as a pointer or as the text
// LibTorch made of it (what c10::guts::to_string printed).
template <typename Key>
Key OptimizerStateKey(const at::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream text;
    text << p.unsafeGetTensorImpl();
    return text.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

}  // namespace rlpost::torch_compat
