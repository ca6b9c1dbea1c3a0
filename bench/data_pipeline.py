"""ferrovis vs torchvision: the classic training input pipeline on one image folder, in one
invocation, with the same number of worker threads (2).

    python bench/data_pipeline.py [IMAGE_FOLDER]   (default: ../shared/datasets/hymenoptera_data/train)

torchvision: ImageFolder + PIL + RandomResizedCrop(224) + RandomHorizontalFlip + ToTensor +
Normalize, DataLoader(batch_size=32, shuffle=True, num_workers=2, persistent_workers=True); one
warm-up epoch, then the median of 5 epochs. ferrovis: the criterion bench
`data/benches/pipeline.rs` on the same folder (OpenCV decode, the same transforms, rayon with 2
threads, batches of 32), median of its samples. Prints images/s for both and the ratio.
"""
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torchvision
from torch.utils.data import DataLoader
from torchvision import transforms as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def torchvision_rate(folder, epochs=5):
    tf = T.Compose([
        T.RandomResizedCrop(224),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    ds = torchvision.datasets.ImageFolder(folder, tf)
    dl = DataLoader(ds, batch_size=32, shuffle=True, num_workers=2, persistent_workers=True)
    rates = []
    for epoch in range(epochs + 1):
        t = time.perf_counter()
        n = sum(len(y) for _, y in dl)
        if epoch > 0:
            rates.append(n / (time.perf_counter() - t))
    return len(ds), statistics.median(rates)


def ferrovis_rate(folder):
    env = dict(os.environ, FERROVIS_BENCH_IMAGES=os.path.abspath(folder))
    subprocess.run(["cargo", "bench", "--workspace", "--bench", "pipeline", "--", "--noplot"],
                   cwd=ROOT, check=True, env=env)
    base = os.path.join(ROOT, "target", "criterion", "data_pipeline", "train_epoch", "new")
    with open(os.path.join(base, "estimates.json")) as f:
        seconds = json.load(f)["median"]["point_estimate"] / 1e9
    with open(os.path.join(base, "benchmark.json")) as f:
        images = json.load(f)["throughput"]["Elements"]
    return images, images / seconds


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        ROOT, "..", "shared", "datasets", "hymenoptera_data", "train")
    torch.set_num_threads(2)
    n_ours, ours = ferrovis_rate(folder)
    n_tv, theirs = torchvision_rate(folder)
    print(f"\nfolder: {os.path.abspath(folder)} ({n_ours} images ferrovis, {n_tv} torchvision)")
    print(f"{'pipeline':<12} {'images/s':>10}")
    print(f"{'ferrovis':<12} {ours:>10.1f}")
    print(f"{'torchvision':<12} {theirs:>10.1f}")
    print(f"ratio ferrovis/torchvision: {ours / theirs:.2f}x  (target >= 2x)")


if __name__ == "__main__":
    main()
