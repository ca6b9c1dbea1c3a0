"""ferrovis vs torchvision: forward (eval) and forward+backward (train) of resnet18 and mobilenet_v2,
batch 8 at 224 on the CPU, in one invocation with the same thread count.

    python bench/backbones.py          (from the repository root, after `make setup`)

Runs the criterion bench `core/benches/backbones.rs`, reads its medians, times the same work in
PyTorch (median of as many runs), and prints both and the ratio ferrovis/PyTorch (< 1 is faster).
"""
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torchvision

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = [(m, mode) for m in ("resnet18", "mobilenet_v2") for mode in ("eval", "train")]


def ferrovis_medians():
    subprocess.run(["cargo", "bench", "--workspace", "--bench", "backbones", "--", "--noplot"],
                   cwd=ROOT, check=True)
    out = {}
    for model, mode in CASES:
        path = os.path.join(ROOT, "target", "criterion", model, mode, "new", "estimates.json")
        with open(path) as f:
            out[(model, mode)] = json.load(f)["median"]["point_estimate"] / 1e9
    return out


def torch_median(model_name, mode, runs=10):
    model = torchvision.models.get_model(model_name)
    x = torch.randn(8, 3, 224, 224)
    if mode == "eval":
        model.eval()
        def step():
            with torch.no_grad():
                model(x)
    else:
        model.train()
        def step():
            model(x).mean().backward()
            model.zero_grad(set_to_none=False)
    for _ in range(2):
        step()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    threads = os.cpu_count()
    torch.set_num_threads(threads)
    ours = ferrovis_medians()
    print(f"\nbatch 8, 224x224, CPU, {threads} threads; medians in ms")
    print(f"{'model':<14}{'mode':<7}{'ferrovis':>10}{'PyTorch':>10}{'ratio':>8}")
    for model, mode in CASES:
        theirs = torch_median(model, mode)
        mine = ours[(model, mode)]
        print(f"{model:<14}{mode:<7}{mine * 1e3:>10.1f}{theirs * 1e3:>10.1f}{mine / theirs:>8.3f}")


if __name__ == "__main__":
    sys.exit(main())
