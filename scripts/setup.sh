#!/usr/bin/env bash
# One-time (and idempotent) setup for a ferrovis checkout.
#
#   1. system packages for the OpenCV bindings and the JPEG region decoder (libopencv-dev,
#      libjpeg-dev, clang, libclang-dev), and Gloo's headers for the c10d shim of
#      core::distributed (libgloo-dev: the PyTorch wheel ships Gloo's code, not its headers);
#   2. libtorch 2.13.0: the user's own via $LIBTORCH, otherwise the one inside a PyTorch wheel,
#      installed into a virtual environment in a per-user cache *outside* the checkout, so every
#      clone (CI clones fresh) reuses it. The same environment provides torch/torchvision/numpy
#      for the tests that compute reference outputs with PyTorch;
#   3. a git-ignored .cargo/config.toml that points the build at that libtorch, adds an rpath so
#      binaries and test executables find libtorch at run time, and tells tests which Python to use.
#
# When everything is present it only checks files (no Python start-up), so it takes well under 5 s.
set -euo pipefail

TORCH_VERSION=2.13.0
TORCHVISION_VERSION=0.28.0
APT_PACKAGES=(libopencv-dev libjpeg-dev clang libclang-dev libgloo-dev)
# What the tests' reference scripts import. The stamp records this list, so adding a package
# re-runs pip once on existing environments.
# ultralytics is a test oracle only (its own dataset-YAML resolution, its numbers), never imported
# by ferrovis; so are timm and transformers (the Hugging Face Hub checkpoints' own code: timm's
# `save_for_hf` writes the test snapshots, its models give the reference logits). lap is the
# assignment solver Ultralytics' trackers import: the ByteTrack oracle needs it. motmetrics scores
# the video tests' tracking (IDF1, identity switches). onnx (its checker) and onnxruntime run the
# ONNX files ferrovis writes; Ultralytics' own ONNX export, the oracle of detect's, needs onnx too.
# nvidia-cuda-crt and nvidia-cuda-cccl: the CUDA headers (crt/host_config.h, nv/target) the torch
# wheel's own CUDA runtime headers include but do not ship; with them core's c10d shim compiles
# ProcessGroupNCCL in on GPU machines (core/build.rs, FERROVIS_NCCL below), so data-parallel
# training runs on GPUs with NCCL. Their CUDA version is the wheel's (13.0). tensorboard's own
# reader (EventAccumulator, masked_crc32c) checks the event files the training engine writes.
PY_PACKAGES="torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION numpy safetensors scikit-learn pycocotools ultralytics timm==1.0.31 transformers==5.25.0 lap==0.5.13 motmetrics==1.4.0 onnx==1.23.2 onnxruntime==1.31.1 tensorboard==2.21.0 nvidia-cuda-crt==13.0.88 nvidia-cuda-cccl==13.0.85"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${FERROVIS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrovis}
venv="$cache/torch-$TORCH_VERSION"
stamp="$venv/.ferrovis-ready"

say() { printf 'setup: %s\n' "$*"; }

# --- 1. system packages ----------------------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    say "missing system packages: ${missing[*]}"
    say "install them with:  sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
fi

# --- 2. Python environment with torch (reference outputs; libtorch unless $LIBTORCH is set) ----
if [ "$(cat "$stamp" 2>/dev/null)" != "$PY_PACKAGES" ]; then
  python=${PYTHON:-python3}
  command -v "$python" >/dev/null || { say "python3 is required (for the test references)"; exit 1; }
  say "preparing Python environment $venv ($PY_PACKAGES; ~5 GB, a few minutes the first time)"
  mkdir -p "$cache"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  # --no-cache-dir: the wheels (torch pulls ~3.5 GB of CUDA libraries) are installed once into
  # this environment; a second copy in pip's cache only fills the disk (it did, on CI).
  "$venv/bin/python" -m pip install -q --no-cache-dir --upgrade pip
  # shellcheck disable=SC2086 # the list is meant to split into arguments
  "$venv/bin/python" -m pip install -q --no-cache-dir $PY_PACKAGES
  "$venv/bin/python" -c "import torch, torchvision, numpy, safetensors, sklearn, pycocotools, ultralytics, timm, transformers, lap, motmetrics, onnx, onnxruntime, tensorboard; assert torch.__version__.startswith('$TORCH_VERSION'), torch.__version__"
  printf '%s' "$PY_PACKAGES" >"$stamp"
fi
site=$(ls -d "$venv"/lib/python3*/site-packages | head -n 1)

if [ -n "${LIBTORCH:-}" ]; then
  libtorch=$LIBTORCH
  say "using LIBTORCH=$libtorch from the environment"
else
  libtorch="$site/torch"
fi
[ -f "$libtorch/lib/libtorch_cpu.so" ] || { say "no libtorch_cpu.so under $libtorch/lib"; exit 1; }

# --- 3. cargo configuration (rewritten only when it changes, so cargo does not rebuild) -------
# No symbol of libtorch_cuda.so is referenced directly, so the linker's --as-needed drops it and
# libtorch then sees no GPU (Cuda::is_available() is false on a GPU machine). Where a GPU is
# present (nvidia-smi) or FERROVIS_CUDA=1 asks for it, keep it linked. Elsewhere it stays out:
# loading the CUDA libraries costs every test process seconds for nothing.
# The same condition compiles NCCL into core's c10d shim (FERROVIS_NCCL, read by core/build.rs):
# its ProcessGroupNCCL lives in libtorch_cuda.so, which CPU machines are spared.
link_args="-Wl,-rpath,$libtorch/lib"
nccl=0
if [ -f "$libtorch/lib/libtorch_cuda.so" ] &&
  { [ "${FERROVIS_CUDA:-}" = 1 ] || command -v nvidia-smi >/dev/null 2>&1; }; then
  link_args="$link_args -Wl,--no-as-needed -ltorch_cuda -Wl,--as-needed"
  nccl=1
fi
config="$root/.cargo/config.toml"
new=$(cat <<EOF
# Generated by scripts/setup.sh; not committed. Delete it and run 'make setup' to regenerate.
[env]
LIBTORCH = "$libtorch"
FERROVIS_PYTHON = "$venv/bin/python"
FERROVIS_NCCL = "$nccl"

[target.x86_64-unknown-linux-gnu]
rustflags = ["-C", "link-args=$link_args"]
EOF
)
if [ ! -f "$config" ] || [ "$(cat "$config")" != "$new" ]; then
  mkdir -p "$root/.cargo"
  printf '%s\n' "$new" >"$config"
  say "wrote .cargo/config.toml (LIBTORCH=$libtorch)"
fi
say "ready"
