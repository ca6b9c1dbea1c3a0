"""ferrovis vs torchvision: batched_nms of 5,000 boxes over 80 classes and nms of 1,000 boxes,
on the same boxes, 2 threads, in one invocation.

    python bench/box_ops.py          (from the repository root, after `make setup`)

Writes seeded random boxes (as the parity test draws them) to a file, runs the criterion bench
`core/benches/box_ops.rs` on it, times torchvision.ops on the same tensors (median of many runs),
and prints both medians and the ratio ferrovis/torchvision (< 1 is faster).
"""
import json
import os
import subprocess
import tempfile

import torch
from safetensors.torch import save_file
from torchvision import ops

from timing import median_seconds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def boxes_file(path):
    g = torch.Generator().manual_seed(11)
    xy = torch.rand(5000, 2, generator=g) * 600.0
    wh = torch.rand(5000, 2, generator=g) * 80.0
    data = {
        "boxes": torch.cat([xy, xy + wh], 1),
        "scores": torch.rand(5000, generator=g),
        "idxs": torch.randint(0, 80, (5000,), generator=g),
    }
    save_file(data, path)
    return data


def main():
    torch.set_num_threads(2)
    path = os.path.join(tempfile.mkdtemp(), "boxes.safetensors")
    d = boxes_file(path)
    env = dict(os.environ, FERROVIS_BENCH_BOXES=path)
    subprocess.run(["cargo", "bench", "-p", "ferrovis-core", "--bench", "box_ops", "--", "--noplot"],
                   cwd=ROOT, check=True, env=env)
    theirs = {
        "batched_nms_5000x80": median_seconds(
            lambda: ops.batched_nms(d["boxes"], d["scores"], d["idxs"], 0.5), 200, warmup=10),
        "nms_1000": median_seconds(
            lambda: ops.nms(d["boxes"][:1000], d["scores"][:1000], 0.5), 200, warmup=10),
    }
    print(f"\n{'case':<22}{'ferrovis':>12}{'torchvision':>14}{'ratio':>8}")
    for case, t in theirs.items():
        est = os.path.join(ROOT, "target", "criterion", "box_ops_" + case, "new", "estimates.json")
        if not os.path.exists(est):
            est = os.path.join(ROOT, "target", "criterion", "box_ops", case, "new", "estimates.json")
        with open(est) as f:
            ours = json.load(f)["median"]["point_estimate"] / 1e9
        print(f"{case:<22}{ours * 1e3:>10.3f}ms{t * 1e3:>12.3f}ms{ours / t:>8.2f}")


if __name__ == "__main__":
    main()
