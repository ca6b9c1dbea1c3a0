"""ferrovis vs torchvision: MultiScaleRoIAlign forward + backward at Faster R-CNN's training
size (2 images of 800×1216, 512 RoIs each, P2–P5 of 256 channels, 7×7 output, sampling 2),
2 threads, on the same boxes, in one invocation.

    python bench/roi_align.py          (from the repository root, after `make setup`)

Writes the seeded boxes to a file, runs the criterion bench `core/benches/roi_align.rs` on them,
times torchvision's MultiScaleRoIAlign (its C++ CPU kernel) the same way (gradients of the sum
with respect to the four levels, not accumulated), and prints both medians, the ratio
ferrovis/torchvision (< 1 is faster) and each side's peak resident memory above what it held
before one pass.
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
IMAGE = (800, 1216)


def boxes():
    g = torch.Generator().manual_seed(17)
    out = []
    for _ in range(2):
        xy = torch.rand(512, 2, generator=g) * torch.tensor([1100.0, 700.0])
        wh = torch.rand(512, 2, generator=g) * 300.0 + 4.0
        out.append(torch.cat([xy, xy + wh], 1))
    return out


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def main():
    torch.set_num_threads(2)
    bx = boxes()
    path = os.path.join(tempfile.mkdtemp(), "rois.safetensors")
    save_file({"boxes0": bx[0], "boxes1": bx[1]}, path)
    env = dict(os.environ, FERROVIS_BENCH_ROIS=path)
    subprocess.run(["cargo", "bench", "-p", "ferrovis-core", "--bench", "roi_align", "--", "--noplot"],
                   cwd=ROOT, check=True, env=env)

    levels = [torch.randn(2, 256, IMAGE[0] // s, IMAGE[1] // s, requires_grad=True) for s in (4, 8, 16, 32)]
    pooler = ops.MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    feats = {str(i): t for i, t in enumerate(levels)}

    def step():
        y = pooler(feats, bx, [IMAGE, IMAGE])
        return torch.autograd.grad(y.sum(), levels)

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_kib("VmRSS:")
    del_me = step()
    theirs_peak = (status_kib("VmHWM:") - before) * 1024
    del del_me
    theirs = median_seconds(step, 10, warmup=0)

    est = os.path.join(ROOT, "target", "criterion", "roi_align", "multiscale_fwd_bwd", "new", "estimates.json")
    with open(est) as f:
        ours = json.load(f)["median"]["point_estimate"] / 1e9
    with open(os.path.join(ROOT, "target", "criterion", "roi_align_peak_bytes")) as f:
        ours_peak = int(f.read())
    mib = 1 << 20
    print(f"\n{'MultiScaleRoIAlign fwd+bwd':<28}{'ferrovis':>12}{'torchvision':>14}{'ratio':>8}")
    print(f"{'median time':<28}{ours * 1e3:>10.1f}ms{theirs * 1e3:>12.1f}ms{ours / theirs:>8.2f}")
    print(f"{'peak memory above start':<28}{ours_peak / mib:>9.0f}MiB{theirs_peak / mib:>11.0f}MiB"
          f"{ours_peak / max(theirs_peak, 1):>8.2f}")


if __name__ == "__main__":
    main()
