#!/usr/bin/env bash
# The GPU checks docs/deploy.md ("GPUs") lists, in order, for a machine with an
# NVIDIA GPU and a CUDA LibTorch: configure with RLPOST_WITH_CUDA=ON, build,
# run the device parity test and the model, rollout and learner tests, train
# the built-in job on the GPU, and run the rollout and learner benchmarks with
# --device cuda. Every step's output goes to REPORT_DIR (default
# build-cuda/gpu_report); the script stops at the first step that fails and
# says which.
#
#   scripts/gpu_check.sh [REPORT_DIR]
#
# The CUDA LibTorch: $TORCH_DIR (…/share/cmake/Torch), else the one of an
# installed Python torch. It must use the C++11 ABI (like gRPC and Abseil
# here): the libtorch-cxx11-abi zips do, pip wheels only from torch 2.7 on.
# Build dependencies as for the CPU build (scripts/install_deps.sh build).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${RLPOST_CUDA_BUILD_DIR:-build-cuda}
report=${1:-$build/gpu_report}
mkdir -p "$report"
summary="$report/summary.txt"
: > "$summary"

say() { echo "gpu_check: $*" | tee -a "$summary"; }
fail() { say "FAILED: $*"; exit 1; }
# step NAME COMMAND...: runs it, output in $report/NAME.log.
step() {
  local name=$1
  shift
  say "step $name: $*"
  local start=$SECONDS
  local code=0
  "$@" > "$report/$name.log" 2>&1 || code=$?
  if [ "$code" != 0 ]; then
    tail -n 30 "$report/$name.log" >&2
    fail "$name (exit $code; log $report/$name.log)"
  fi
  say "step $name: ok ($((SECONDS - start)) s)"
}

command -v nvidia-smi > /dev/null || fail "no nvidia-smi: this machine has no NVIDIA driver"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$summary"
gpus=$(nvidia-smi --list-gpus | wc -l)

torch_dir=${TORCH_DIR:-}
if [ -z "$torch_dir" ] && command -v python3 > /dev/null; then
  torch_dir=$(python3 - 2> /dev/null << 'EOF' || true
import torch
if not torch.cuda.is_available():
    raise SystemExit(1)
if not torch._C._GLIBCXX_USE_CXX11_ABI:
    raise SystemExit(2)
print(torch.utils.cmake_prefix_path + "/Torch")
EOF
)
fi
[ -n "$torch_dir" ] && [ -f "$torch_dir/TorchConfig.cmake" ] ||
  fail "no CUDA LibTorch with the C++11 ABI: set TORCH_DIR=<libtorch>/share/cmake/Torch"
say "LibTorch: $torch_dir"

jobs=$(nproc)
step configure cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DRLPOST_WITH_CUDA=ON -DTorch_DIR="$torch_dir"
step build cmake --build "$build" -j "$jobs"
export RLPOST_BIN_DIR=$PWD/$build/bin RLPOST_SOURCE_DIR=$PWD
step device_test "$build/bin/device_test"
grep -q "comparing the CPU with itself" "$report/device_test.log" &&
  fail "device_test ran without the GPU (see $report/device_test.log)"
for t in model_test paged_kv_test checkpoint_test engine_test trainer_test resume_test critic_test \
         two_rank_test device_settings_test; do
  step "$t" "$build/bin/$t"
done
# The built-in job on the GPU: two learner ranks over NCCL where there are two
# GPUs, one otherwise.
ranks=$((gpus >= 2 ? 2 : 1))
step train "$build/bin/rlpost" train run.output_dir="$PWD/$build/gpu_runs" \
  rollout.device=cuda learner.device=cuda learner.world_size=$ranks
grep -E "held-out accuracy|before RL|%" "$report/train.log" | tail -n 2 | tee -a "$summary" || true
step bench_rollout "$build/bin/rlpost-bench" rollout --device cuda
step bench_learner "$build/bin/rlpost-bench" learner --device cuda
grep -E "^(speedup|adaptive|engine|train_tokens|step_overhead|padding)" \
  "$report/bench_rollout.log" "$report/bench_learner.log" | tee -a "$summary" || true
say "all steps passed; record $summary in docs/benchmarks.md and docs/deploy.md"
