#include "model/device.h"

#include <ATen/ATen.h>
#include <torch/cuda.h>

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/run_config.h"

namespace rlpost {

bool BuiltWithCuda() {
#ifdef RLPOST_WITH_CUDA
  return true;
#else
  return false;
#endif
}

absl::StatusOr<c10::Device> OpenDevice(const std::string& key, const std::string& spec,
                                       int default_index) {
  absl::Status valid = CheckDeviceSpec(key, spec);
  if (!valid.ok()) return valid;
  if (spec == "cpu") return c10::Device(c10::kCPU);
  int index = default_index;
  if (spec != "cuda" && !absl::SimpleAtoi(spec.substr(5), &index)) {
    return absl::InvalidArgumentError(
        absl::StrCat(DeviceSettingName(key), ": bad device '", spec, "'"));
  }
  const std::string name = DeviceSettingName(key);
  const std::string set = key.rfind("--", 0) == 0 ? absl::StrCat(key, " cpu")
                                                   : absl::StrCat(key, "=cpu");
  if (!BuiltWithCuda() || !torch::cuda::is_available()) {
    if (!BuiltWithCuda()) {
      return absl::FailedPreconditionError(absl::StrCat(
          name, " is ", spec,
          " but this binary was built without CUDA (RLPOST_WITH_CUDA=OFF, CPU LibTorch): set ",
          set, ", or run the CUDA build (deploy/docker/Dockerfile.cuda)"));
    }
    const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
    return absl::FailedPreconditionError(absl::StrCat(
        name, " is ", spec, " but no CUDA device is visible (CUDA_VISIBLE_DEVICES=",
        visible == nullptr ? "<unset>" : absl::StrCat("'", visible, "'"),
        "): give the process a GPU (Kubernetes: an nvidia.com/gpu limit and the NVIDIA device "
        "plugin) or set ", set));
  }
  const int visible = static_cast<int>(torch::cuda::device_count());
  if (index >= visible) {
    return absl::FailedPreconditionError(absl::StrCat(
        name, " asks for CUDA device ", index, " but only ", visible,
        " visible: use an index below ", visible, spec == "cuda" ? " (LOCAL_RANK picks it)" : ""));
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

at::Tensor OnDevice(const at::Tensor& t, const c10::Device& device) {
  if (!t.defined() || t.device() == device) return t;
  return t.to(device, /*non_blocking=*/false);
}

}  // namespace rlpost
