#pragma once
// Opening the device a model runs on (LibTorch; model, rollout and learner
// only). The run config names it as "cpu", "cuda" or "cuda:N"
// (CheckDeviceSpec in common/run_config.h checks the spelling); this checks
// that the build and the machine have it.

#include <ATen/core/TensorBody.h>
#include <c10/core/Device.h>

#include <string>

#include "absl/status/statusor.h"

namespace rlpost {

// True when this binary was built against a CUDA LibTorch (RLPOST_WITH_CUDA).
bool BuiltWithCuda();

// The device `spec` names; "cuda" is CUDA device `default_index`. `key` is
// the config key it came from, for the message. Fails with
// FailedPrecondition when the build has no CUDA, no CUDA device is visible or
// the index is past the visible devices, and says what to change.
absl::StatusOr<c10::Device> OpenDevice(const std::string& key, const std::string& spec,
                                       int default_index = 0);

// `t` on `device` (itself when it is already there).
at::Tensor OnDevice(const at::Tensor& t, const c10::Device& device);

}  // namespace rlpost
