"""ferrovis vs PyTorch + transformers: DINOv2 ViT-S/14 feature extraction over an image folder
and a linear-probe epoch on the cached features, 2 threads, CPU.

    python bench/dinov2.py [DATA_ROOT]   (default: ../shared/datasets/hymenoptera_data)

The weights: a seeded `facebook/dinov2-small` (tests/reference/dinov2.py) in a temporary
Hugging Face cache, since ../shared holds no DINOv2 weights and nothing is downloaded; random
weights cost what trained ones do.

Feature extraction (decode + preprocess + forward of every train and val image, batch 32):
ferrovis: `classify train --arch dinov2_vits14 --mode feature-extract` with augmentation off
(release build) computes the probe's features once and prints how long that took. PyTorch: the
plain loop the transformers documentation shows — PIL decode, the checkpoint's
`AutoImageProcessor` (resize 256 bicubic, centre crop 224, normalise), `Dinov2Model` under
no_grad, class token + mean patch token — timed over the same images.

Linear-probe epoch: ferrovis's `seconds` column of results.csv (training on the cached features,
then validation; the checkpoint writes after it are not counted) against the same in PyTorch (nn.Linear(768, classes), AdamW, batch 32, shuffled,
then a no-grad validation pass); the median of epochs 2–10 on each side.
Prints images/s, seconds and the ratios.
"""
import csv
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from PIL import Image
from torch import nn
from transformers import AutoImageProcessor, Dinov2Model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
EPOCHS = 10
BATCH = 32


def images_of(data):
    """(path, class index) of every image under data/train and data/val, by split."""
    out = {}
    for split in ("train", "val"):
        folder = os.path.join(data, split)
        classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
        # The formats ferrovis' folder scan takes (the set's one GIF is left out by both).
        out[split] = [(os.path.join(folder, c, f), i) for i, c in enumerate(classes)
                      for f in sorted(os.listdir(os.path.join(folder, c)))
                      if f.lower().endswith((".jpg", ".jpeg", ".png", ".bmp", ".webp"))]
    return out


def ferrovis(data, hf_cache):
    env = dict(os.environ, HF_HUB_CACHE=hf_cache, FERROVIS_OFFLINE="1")
    with tempfile.TemporaryDirectory() as project:
        run = subprocess.run(
            ["cargo", "run", "--release", "-q", "-p", "ferrovis-classify", "--", "train",
             "--data", data, "--arch", "dinov2_vits14", "--mode", "feature-extract",
             "--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--device", "cpu",
             "--set", "data.augment=false", "--set", "data.workers=2",
             "--set", f"train.project={project!r}".replace("'", '"')],
            cwd=ROOT, env=env, check=True, capture_output=True, text=True)
        found = re.search(r"ran once over (\d+) images \(([\d.]+) s\)", run.stdout)
        if not found:
            sys.exit("ferrovis printed no feature-extraction time:\n" + run.stdout)
        with open(os.path.join(project, "feature-extract", "results.csv")) as f:
            rows = list(csv.DictReader(f))
    epoch = statistics.median(float(r["seconds"]) for r in rows[1:])
    return int(found[1]), float(found[2]), epoch, float(rows[-1]["accuracy"])


def torch_features(snapshot, items):
    processor = AutoImageProcessor.from_pretrained(snapshot)
    model = Dinov2Model.from_pretrained(snapshot).eval()
    feats, labels = [], []
    t = time.perf_counter()
    for start in range(0, len(items), BATCH):
        batch = items[start:start + BATCH]
        images = [Image.open(p).convert("RGB") for p, _ in batch]
        inputs = processor(images=images, return_tensors="pt")
        with torch.no_grad():
            tokens = model(**inputs).last_hidden_state
        feats.append(torch.cat([tokens[:, 0], tokens[:, 1:].mean(1)], 1))
        labels += [label for _, label in batch]
    return torch.cat(feats), torch.tensor(labels), time.perf_counter() - t


def torch_probe(train, val, classes):
    (xt, yt), (xv, yv) = train, val
    head = nn.Linear(xt.shape[1], classes)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    times, accuracy = [], 0.0
    for _ in range(EPOCHS):
        t = time.perf_counter()
        head.train()
        for idx in torch.randperm(len(xt)).split(BATCH):
            opt.zero_grad()
            loss_fn(head(xt[idx]), yt[idx]).backward()
            opt.step()
        head.eval()
        with torch.no_grad():
            accuracy = sum((head(x).argmax(1) == y).sum().item()
                           for x, y in zip(xv.split(BATCH), yv.split(BATCH))) / len(xv)
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:]), accuracy


def main():
    data = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(ROOT, "..", "shared", "datasets", "hymenoptera_data"))
    torch.set_num_threads(2)
    items = images_of(data)
    classes = len({label for _, label in items["train"]})
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([PY, os.path.join(ROOT, "tests", "reference", "dinov2.py"), tmp,
                        "dinov2-small"], check=True, stdout=subprocess.DEVNULL)
        hf_cache = os.path.join(tmp, "hub")
        repo = os.path.join(hf_cache, "models--facebook--dinov2-small")
        with open(os.path.join(repo, "refs", "main")) as f:
            snapshot = os.path.join(repo, "snapshots", f.read().strip())
        n, ours_fx, ours_epoch, our_acc = ferrovis(data, hf_cache)
        xt, yt, t_train = torch_features(snapshot, items["train"])
        xv, yv, t_val = torch_features(snapshot, items["val"])
    theirs_fx = t_train + t_val
    theirs_epoch, their_acc = torch_probe((xt, yt), (xv, yv), classes)
    assert n == len(xt) + len(xv), (n, len(xt), len(xv))
    print(f"DINOv2 ViT-S/14 (seeded weights), {n} images of {data}, 2 threads, CPU")
    print(f"{'':<10} {'extract s':>9} {'images/s':>9} {'probe epoch ms':>15} {'val acc':>8}")
    print(f"{'ferrovis':<10} {ours_fx:>9.1f} {n / ours_fx:>9.1f} {ours_epoch * 1e3:>15.2f} "
          f"{our_acc:>8.3f}")
    print(f"{'PyTorch':<10} {theirs_fx:>9.1f} {n / theirs_fx:>9.1f} {theirs_epoch * 1e3:>15.2f} "
          f"{their_acc:>8.3f}")
    print(f"feature extraction ratio ferrovis/PyTorch images/s: {theirs_fx / ours_fx:.2f}x "
          f"(target >= 1.5x)")
    print(f"linear-probe epoch ratio PyTorch/ferrovis seconds: {theirs_epoch / ours_epoch:.2f}x "
          f"(target >= 2x)")


if __name__ == "__main__":
    main()
