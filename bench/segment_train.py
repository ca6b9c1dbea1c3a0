"""ferrovis vs PyTorch: one segmentation training step, CPU, 2 threads, one invocation.

    python bench/segment_train.py [STEPS] [ROUNDS]   (defaults 16 and 4)

Models: U-Net on ResNet34 (2 classes; in PyTorch the smp-layout U-Net of
tests/reference/unet.py), torchvision's DeepLabV3-ResNet50 (21 classes, auxiliary head) and
DeepLabV3+ on ResNet50 at output stride 16 (21 classes; in PyTorch tests/reference/deeplabv3plus.py,
the same network, checked by tests/tests/suite/segment_reference.rs), random initialisation,
256×256, batch 4. A step is a training-mode forward, cross-entropy (+ 0.5 × the auxiliary loss),
backward and an SGD step (momentum 0.9, weight decay 1e-4), on random data. ferrovis runs
`cargo run --release -p ferrovis-segment --example train_step` (channels-last, its default for
training). PyTorch runs as a plain loop writes it (contiguous NCHW, `torch.optim.SGD` defaults) and
with `channels_last`, the layout a tuned user picks. This machine's speed drifts by ±10 % over
minutes, so the three take turns: ROUNDS rounds of (ferrovis, PyTorch NCHW, PyTorch channels-last),
each a fresh process or model with two warm-up steps, then STEPS / ROUNDS timed steps; each side's
figure is the median of all its timed steps. Prints seconds per step and the ratio ferrovis / the
faster PyTorch layout (target ≤ 0.95).
"""
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
import torchvision

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
from deeplabv3plus import DeepLabV3Plus  # noqa: E402
from unet import Unet  # noqa: E402

SIZE, BATCH = 256, 4


def pytorch_step_times(name, steps, channels_last):
    torch.manual_seed(0)
    if name == "unet":
        model, classes = Unet("resnet34", classes=2), 2
    elif name == "deeplabv3plus":
        model, classes = DeepLabV3Plus("resnet50", 21), 21
    else:
        model = torchvision.models.segmentation.deeplabv3_resnet50(
            weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
        classes = 21
    model.train()
    x = torch.randn(BATCH, 3, SIZE, SIZE)
    y = torch.randint(0, classes, (BATCH, SIZE, SIZE))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    times = []
    for _ in range(steps + 2):
        t = time.perf_counter()
        out = model(x)
        if isinstance(out, dict):
            loss = F.cross_entropy(out["out"], y) + 0.5 * F.cross_entropy(out["aux"], y)
        else:
            loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return times[2:]


def ferrovis_step_times(arch, encoder, classes, steps, size=SIZE, batch=BATCH, channels_last=True,
                        mode="train"):
    """Timed steps of `cargo run --example train_step` (`mode` train or eval), in seconds."""
    env = dict(os.environ, OMP_NUM_THREADS="2")
    out = subprocess.run(
        ["cargo", "run", "--release", "-q", "-p", "ferrovis-segment", "--example", "train_step",
         "--", arch, encoder, str(classes), str(size), str(batch), str(steps),
         "1" if channels_last else "0", mode],
        cwd=ROOT, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])["times_s"]


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    per_round = max(1, steps // rounds)
    torch.set_num_threads(2)
    print(f"training step, {SIZE}x{SIZE}, batch {BATCH}, CPU, 2 threads, median of "
          f"{rounds} x {per_round} steps taken in turns")
    print(f"{'model':<22}{'ferrovis s':>12}{'PyTorch NCHW s':>16}{'PyTorch CL s':>14}"
          f"{'ratio':>8}")
    for label, arch, encoder, classes in [("U-Net ResNet34", "unet", "resnet34", 2),
                                          ("DeepLabV3 ResNet50", "deeplabv3", "resnet50", 21),
                                          ("DeepLabV3+ ResNet50", "deeplabv3plus", "resnet50", 21)]:
        ours, theirs, theirs_cl = [], [], []
        for _ in range(rounds):
            ours += ferrovis_step_times(arch, encoder, classes, per_round)
            theirs += pytorch_step_times(arch, per_round, channels_last=False)
            theirs_cl += pytorch_step_times(arch, per_round, channels_last=True)
        ours, theirs, theirs_cl = (statistics.median(t) for t in (ours, theirs, theirs_cl))
        best = min(theirs, theirs_cl)
        print(f"{label:<22}{ours:>12.3f}{theirs:>16.3f}{theirs_cl:>14.3f}{ours / best:>8.2f}",
              flush=True)


if __name__ == "__main__":
    main()
