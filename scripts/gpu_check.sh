#!/usr/bin/env bash
# GPU check (`make gpu-check`), for a machine with an NVIDIA GPU, in under 8 minutes on one:
#   1. the engine's mixed-precision test on CUDA (float16 autocast, loss scaling, convergence);
#   2. one short CUDA training of each task with AMP, through the task binaries, on synthetic data,
#      and one under torchrun (world size 1: the NCCL process group, core::distributed);
#   3. predict latencies of each trained model on the GPU.
# It needs what `make setup` installs (libtorch 2.13 with CUDA, which the torch wheel ships; setup
# links libtorch_cuda and compiles NCCL in when nvidia-smi is present). It exits non-zero on the
# first failure.
#
# `scripts/gpu_check.sh --cpu` runs steps 2 and 3 on the CPU instead: a check of this script
# itself (its commands, paths and flags) on a machine without a GPU; it proves nothing about CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\ngpu-check: %s\n' "$*"; }
device=cuda gpu=0 profile=release
if [ "${1:-}" = --cpu ]; then
  device=cpu gpu=cpu profile=dev
  say "--cpu: the script's own check, on the CPU (no CUDA is tested)"
  bash scripts/setup.sh
else
  command -v nvidia-smi >/dev/null || { echo "gpu-check: nvidia-smi not found: no NVIDIA GPU here"; exit 1; }
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  FERROVIS_CUDA=1 bash scripts/setup.sh
fi
python=$(sed -n 's/^FERROVIS_PYTHON = "\(.*\)"$/\1/p' .cargo/config.toml)
start=$SECONDS

if [ "$device" = cuda ]; then
  say "1. engine: AMP on CUDA"
  cargo test -q -p ferrovis-tests --test workflows -- --ignored --exact \
    engine::amp_autocasts_and_trains_on_cuda --nocapture
fi

say "building the task binaries ($profile)"
cargo build -q --profile "$profile" -p ferrovis-classify -p ferrovis-detect -p ferrovis-segment \
  -p ferrovis-style -p ferrovis-data --bins --example shapes
bin=target/$([ "$profile" = dev ] && echo debug || echo "$profile")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin/examples/shapes" "$work/shapes" >/dev/null
# The style loss network: torchvision's VGG11 layout with random weights (no download needed).
"$python" -c "import torch, torchvision; torch.save(torchvision.models.vgg11().state_dict(), '$work/vgg11.pth')"

say "2. one short training per task on $device, AMP on"
"$bin/classify" train --data "$work/shapes/classify" --arch resnet18 --mode fine-tune --epochs 2 \
  --image-size 96 \
  --device "$device" --set train.amp=true --project "$work/runs" --name classify
"$bin/detect" train data="$work/shapes/detect/shapes.yaml" model=yolov8n epochs=2 imgsz=256 batch=16 \
  --project "$work/runs" --name detect device="$gpu"
"$bin/segment" train --images "$work/shapes/segment/train/images" --masks "$work/shapes/segment/train/masks" \
  --encoder resnet18 --epochs 2 --image-size 128 --device "$device" --set train.amp=true \
  --project "$work/runs" --name segment
"$bin/style" train --style "$work/shapes/classify/train/circle/0000.png" \
  --content-dir "$work/shapes/classify/train" --weights "$work/vgg11.pth" --size 96 --max-images 64 --epochs 1 \
  --device "$device" --project "$work/runs" --name style

say "2b. data-parallel training under torchrun, world size 1 ($([ "$device" = cuda ] && echo NCCL || echo Gloo))"
"$(dirname "$python")/torchrun" --nproc-per-node 1 --no-python "$bin/classify" train \
  --data "$work/shapes/classify" --arch resnet18 --mode fine-tune --epochs 1 --image-size 96 \
  --device "$device" --project "$work/runs" --name classify-ddp

say "3. predict latencies on $device (wall time per image, model loading included once)"
images="$work/shapes/detect/images/val"
n=$(find "$images" -type f | wc -l)
latency() {  # latency NAME COMMAND…: runs the command, prints ms per image
  local name=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v n="$n" -v name="$name" \
    'BEGIN { printf "%-9s %4d images  %8.1f ms/image\n", name, n, (b - a) * 1000 / n }'
}
latency classify "$bin/classify" predict --weights "$work/runs/classify" --device "$device" "$images"
latency detect "$bin/detect" predict --weights "$work/runs/detect" --device "$device" \
  --out "$work/pred-detect" "$images"
latency segment "$bin/segment" predict --weights "$work/runs/segment" --device "$device" \
  --out "$work/pred-segment" "$images"
latency style "$bin/style" predict --weights "$work/runs/style" --device "$device" \
  --out "$work/pred-style" "$images"

say "passed in $((SECONDS - start)) s"
