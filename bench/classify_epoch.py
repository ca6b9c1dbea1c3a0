"""ferrovis vs plain PyTorch: one fine-tuning epoch (train + validation) of MobileNetV2 from the
ImageNet weights on the ants/bees folder, batch 32, 2 loader workers, 2 threads, CPU.

    python bench/classify_epoch.py [DATA_ROOT] [WEIGHTS]
    (defaults: ../shared/datasets/hymenoptera_data, ../shared/weights/mobilenet_v2-b0353104.pth)

Both sides run two epochs and time the second (the first warms caches and allocators).
ferrovis: `classify train --mode fine-tune` (release build), the `seconds` column of results.csv.
PyTorch: torchvision ImageFolder + DataLoader(num_workers=2, persistent_workers=True),
RandomResizedCrop(224) + flip + ToTensor + Normalize, AdamW with the backbone at 0.1x the head's
learning rate, then a no-grad validation pass with Resize(256) + CenterCrop(224).
Prints images/s (training + validation images per second of epoch) and the ratio.
"""
import csv
import os
import subprocess
import sys
import tempfile
import time

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def ferrovis_epoch(data, weights):
    with tempfile.TemporaryDirectory() as project:
        subprocess.run(
            ["cargo", "run", "--release", "-q", "-p", "ferrovis-classify", "--", "train",
             "--data", data, "--arch", "mobilenet_v2", "--weights", weights, "--mode", "fine-tune",
             "--epochs", "2", "--batch-size", "32", "--device", "cpu",
             "--set", "data.workers=2", "--set", f"train.project={project!r}".replace("'", '"')],
            cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(project, "fine-tune", "results.csv")) as f:
            rows = list(csv.DictReader(f))
    return float(rows[-1]["seconds"]), float(rows[-1]["accuracy"])


def torch_epoch(data, weights):
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(torch.load(weights))
    model.classifier[1] = nn.Linear(model.last_channel, 2)
    head = list(model.classifier.parameters())
    head_ids = {id(p) for p in head}
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    opt = torch.optim.AdamW([{"params": backbone, "lr": 1e-4}, {"params": head, "lr": 1e-3}],
                            weight_decay=1e-4)
    train_tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(),
                          T.Normalize(MEAN, STD)])
    val_tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])
    train = DataLoader(torchvision.datasets.ImageFolder(os.path.join(data, "train"), train_tf),
                       batch_size=32, shuffle=True, num_workers=2, persistent_workers=True)
    val = DataLoader(torchvision.datasets.ImageFolder(os.path.join(data, "val"), val_tf),
                     batch_size=32, num_workers=2, persistent_workers=True)
    loss_fn = nn.CrossEntropyLoss()
    seconds = accuracy = 0.0
    for _ in range(2):
        t = time.perf_counter()
        model.train()
        for x, y in train:
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in val:
                correct += (model(x).argmax(1) == y).sum().item()
                total += len(y)
        seconds, accuracy = time.perf_counter() - t, correct / total
    return seconds, accuracy


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "datasets",
                                                              "hymenoptera_data")
    weights = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        ROOT, "..", "shared", "weights", "mobilenet_v2-b0353104.pth")
    data, weights = os.path.abspath(data), os.path.abspath(weights)
    torch.set_num_threads(2)
    images = sum(len(torchvision.datasets.ImageFolder(os.path.join(data, split)))
                 for split in ("train", "val"))
    ours, our_acc = ferrovis_epoch(data, weights)
    theirs, their_acc = torch_epoch(data, weights)
    print(f"one fine-tuning epoch (train + val, {images} images), second of two:")
    print(f"{'':<10} {'seconds':>8} {'images/s':>9} {'val acc':>8}")
    print(f"{'ferrovis':<10} {ours:>8.1f} {images / ours:>9.1f} {our_acc:>8.3f}")
    print(f"{'PyTorch':<10} {theirs:>8.1f} {images / theirs:>9.1f} {their_acc:>8.3f}")
    print(f"ratio ferrovis/PyTorch images/s: {theirs / ours:.2f}x  (target >= 1.2x)")


if __name__ == "__main__":
    main()
