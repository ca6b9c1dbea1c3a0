#!/usr/bin/env bash
# Builds and runs examples/reuse-core, a project outside the workspace that depends on
# ferrovis-core by path, as a user's own project would: torchvision saves a ResNet-18 checkpoint
# (seeded; torch.save of its state_dict), and the example loads it into a backbone and trains a
# new head. Nothing is set by hand: .cargo/config.toml (written by `make setup`) applies to the
# example too, and the workspace's target folder is shared so its dependencies are not built
# again.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=$(sed -n 's/^FERROVIS_PYTHON = "\(.*\)"$/\1/p' "$root/.cargo/config.toml")
[ -x "$python" ] || { echo "reuse-core: no FERROVIS_PYTHON in .cargo/config.toml (run make setup)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" -c "
import sys, torch, torchvision
torch.manual_seed(0)
torch.save(torchvision.models.resnet18().state_dict(), sys.argv[1])
" "$tmp/resnet18.pth"
cd "$root/examples/reuse-core"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}" cargo run --quiet -- resnet18 "$tmp/resnet18.pth"
