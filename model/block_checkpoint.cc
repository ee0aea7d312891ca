#include "model/block_checkpoint.h"

#include <ATen/autocast_mode.h>
#include <torch/autograd.h>

#include "model/torch_compat.h"

namespace rlpost {
namespace {

// What a recomputation needs, kept alive by the autograd graph.
struct BlockCall : torch::CustomClassHolder {
  DecoderBlock block{nullptr};
  at::Tensor cos, sin, mask;
  KvAccess kv;
  int64_t layer = 0;
  RoutingContext routing;
  bool cpu_autocast = false;
  at::ScalarType cpu_autocast_dtype = at::kBFloat16;
  bool gpu_autocast = false;
  at::ScalarType gpu_autocast_dtype = at::kHalf;

  // The block on `x`, router losses into fresh scalars.
  std::vector<at::Tensor> Run(const at::Tensor& x) {
    at::Tensor aux = at::zeros({}, x.options().dtype(at::kFloat));
    at::Tensor z = at::zeros({}, x.options().dtype(at::kFloat));
    RoutingContext r = routing;
    r.aux_loss = routing.aux_loss != nullptr ? &aux : nullptr;
    r.z_loss = routing.z_loss != nullptr ? &z : nullptr;
    at::Tensor y = block->forward(x, cos, sin, mask, kv, layer, r);
    return {y, aux, z};
  }
};

// Restores the forward's autocast state for the recomputation.
class AutocastRestore {
 public:
  explicit AutocastRestore(const BlockCall& call)
      : cpu_(torch_compat::AutocastEnabled(c10::kCPU)),
        cpu_dtype_(torch_compat::AutocastDtype(c10::kCPU)),
        gpu_(torch_compat::AutocastEnabled(c10::kCUDA)),
        gpu_dtype_(torch_compat::AutocastDtype(c10::kCUDA)) {
    Set(call.cpu_autocast, call.cpu_autocast_dtype, call.gpu_autocast, call.gpu_autocast_dtype);
  }
  ~AutocastRestore() { Set(cpu_, cpu_dtype_, gpu_, gpu_dtype_); }

 private:
  static void Set(bool cpu, at::ScalarType cpu_dtype, bool gpu, at::ScalarType gpu_dtype) {
    torch_compat::SetAutocastDtype(c10::kCPU, cpu_dtype);
    torch_compat::SetAutocastEnabled(c10::kCPU, cpu);
    torch_compat::SetAutocastDtype(c10::kCUDA, gpu_dtype);
    torch_compat::SetAutocastEnabled(c10::kCUDA, gpu);
  }
  bool cpu_;
  at::ScalarType cpu_dtype_;
  bool gpu_;
  at::ScalarType gpu_dtype_;
};

class CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                at::Tensor x,
                                                c10::intrusive_ptr<BlockCall> call) {
    ctx->save_for_backward({x});
    std::vector<at::Tensor> out = call->Run(x);  // autograd is off here
    ctx->saved_data["call"] = c10::IValue::make_capsule(call);
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    c10::intrusive_ptr<torch::CustomClassHolder> holder = ctx->saved_data["call"].toCapsule();
    auto* call = static_cast<BlockCall*>(holder.get());
    std::vector<at::Tensor> outputs, output_grads;
    {
      at::AutoGradMode enable(true);
      AutocastRestore autocast(*call);
      std::vector<at::Tensor> out = call->Run(x);
      for (size_t i = 0; i < out.size(); ++i) {
        if (grads[i].defined() && out[i].requires_grad()) {
          outputs.push_back(out[i]);
          output_grads.push_back(grads[i]);
        }
      }
      if (!outputs.empty()) torch::autograd::backward(outputs, output_grads);
    }
    return {x.grad(), at::Tensor()};
  }
};

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> CheckpointedBlockForward(
    const DecoderBlock& block, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
    const at::Tensor& mask, const KvAccess& kv, int64_t layer, const RoutingContext& routing) {
  auto call = c10::make_intrusive<BlockCall>();
  call->block = block;
  call->cos = cos;
  call->sin = sin;
  call->mask = mask;
  call->kv = kv;
  call->layer = layer;
  call->routing = routing;
  call->routing.record = nullptr;  // recording belongs to sampling, not training
  call->cpu_autocast = torch_compat::AutocastEnabled(c10::kCPU);
  call->cpu_autocast_dtype = torch_compat::AutocastDtype(c10::kCPU);
  call->gpu_autocast = torch_compat::AutocastEnabled(c10::kCUDA);
  call->gpu_autocast_dtype = torch_compat::AutocastDtype(c10::kCUDA);
  torch::autograd::variable_list out = CheckpointFunction::apply(x, call);
  return {out[0], out[1], out[2]};
}

}  // namespace rlpost
