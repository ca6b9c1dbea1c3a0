#!/usr/bin/env bash
# make validate: the real-data checks (tests/tests/validate) against the shared folder $1.
#
# Two checks need pretrained weights that ../shared does not hold today (ConvNeXt-T,
# EfficientNetV2-S and RegNet-Y-400MF from torchvision; DINOv2 ViT-S/14 from the Hugging Face
# Hub) and validate downloads nothing. Where this machine lacks them, those checks are not run
# and this script says so; they are never reported as passed. Put the files in
# $1/weights (or the torch.hub / Hugging Face caches) and they run.
set -euo pipefail
shared=$1
cargo=${CARGO:-cargo}
torch_hub=${TORCH_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/torch}/hub/checkpoints
hf_cache=${HF_HUB_CACHE:-${HF_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/huggingface}/hub}

skip=()
missing=()
for f in convnext_tiny-983f1562.pth efficientnet_v2_s-dd5fe13b.pth regnet_y_400mf-e6988f5f.pth; do
  [ -f "$shared/weights/$f" ] || [ -f "$torch_hub/$f" ] || missing+=("$f")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "validate: NOT RUN validate_new_families_fine_tuning_on_ants_bees: ${missing[*]} in neither $shared/weights nor $torch_hub"
  skip+=(--skip validate_new_families_fine_tuning_on_ants_bees)
fi
if [ ! -f "$shared/weights/dinov2-small/model.safetensors" ] &&
  ! compgen -G "$hf_cache/models--facebook--dinov2-small/snapshots/*/model.safetensors" >/dev/null; then
  echo "validate: NOT RUN validate_dinov2_linear_probe_and_knn_on_ants_bees: facebook/dinov2-small in neither $shared/weights/dinov2-small nor $hf_cache"
  skip+=(--skip validate_dinov2_linear_probe_and_knn_on_ants_bees)
fi
FERROVIS_SHARED="$shared" "$cargo" test --workspace --test validate -- --ignored --test-threads 1 "${skip[@]}"
