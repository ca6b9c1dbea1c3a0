"""ferrovis vs torchvision: SSD eval latency per image and one training step (batch 8, forward +
backward) for ssdlite320_mobilenet_v3_large and ssd300_vgg16, same weights, same inputs,
2 threads, in one invocation.

    python bench/ssd.py          (from the repository root, after `make setup`)

Seeded torchvision models (91 classes, built with no weights) are saved with torch.save, with
eight 480×640 images and their boxes; the criterion bench `detect/benches/ssd.rs` loads them;
torchvision is timed the same way (eval: one image under no_grad; train: zero_grad, the two
losses' sum, backward), median of 10 (SSD300's training step: 5) after a warm-up. Prints both
medians and the ratio ferrovis/torchvision (< 1 is faster).
"""
import json
import os
import subprocess
import tempfile

import torch
from safetensors.torch import save_file
from torchvision.models.detection import ssd300_vgg16, ssdlite320_mobilenet_v3_large

from timing import median_seconds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILDERS = {
    "ssdlite320_mobilenet_v3_large": ssdlite320_mobilenet_v3_large,
    "ssd300_vgg16": ssd300_vgg16,
}
BATCH = 8


def main():
    torch.set_num_threads(2)
    out = tempfile.mkdtemp()
    g = torch.Generator().manual_seed(3)
    images = [torch.rand(3, 480, 640, generator=g) for _ in range(BATCH)]
    targets = [{"boxes": torch.tensor([[50.0, 60.0, 200.0, 220.0], [300.0, 100.0, 500.0, 400.0]]),
                "labels": torch.tensor([1, 2])} for _ in range(BATCH)]
    data = {f"image{i}": im for i, im in enumerate(images)}
    for i, t in enumerate(targets):
        data[f"boxes{i}"] = t["boxes"]
        data[f"labels{i}"] = t["labels"]
    save_file(data, os.path.join(out, "inputs.safetensors"))
    models = {}
    for seed, (arch, build) in enumerate(BUILDERS.items()):
        torch.manual_seed(seed)
        m = build(weights=None, weights_backbone=None)
        torch.save(m.state_dict(), os.path.join(out, arch + ".pth"))
        models[arch] = m
    env = dict(os.environ, FERROVIS_BENCH_SSD=out)
    subprocess.run(["cargo", "bench", "-p", "ferrovis-detect", "--bench", "ssd", "--", "--noplot"],
                   cwd=ROOT, check=True, env=env)
    rows = []
    for arch, m in models.items():
        def evaluate():
            m.eval()
            with torch.no_grad():
                m(images[:1])

        def train_step():
            m.train()
            m.zero_grad()
            sum(m(images, targets).values()).backward()

        for case, fn in (("eval", evaluate), ("train_step", train_step)):
            runs = 5 if (arch, case) == ("ssd300_vgg16", "train_step") else 10
            theirs = median_seconds(fn, runs)
            est = os.path.join(ROOT, "target", "criterion", "ssd", f"{arch}_{case}", "new",
                               "estimates.json")
            with open(est) as f:
                ours = json.load(f)["median"]["point_estimate"] / 1e9
            rows.append((f"{arch} {case}", ours, theirs))
    print(f"\n{'case':<50}{'ferrovis':>11}{'torchvision':>13}{'ratio':>7}")
    for case, ours, theirs in rows:
        print(f"{case:<50}{ours * 1e3:>9.0f}ms{theirs * 1e3:>11.0f}ms{ours / theirs:>7.2f}")


if __name__ == "__main__":
    main()
