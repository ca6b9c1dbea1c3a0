"""torchvision detectors trained briefly, for `detect predict` on a torchvision checkpoint.

    detect_predict.py OUT_DIR

Two torchvision models built as a torchvision user builds them for 2 object classes (3 outputs
with the background), with no pretrained weights: `fasterrcnn_mobilenet_v3_large_320_fpn` and
`ssdlite320_mobilenet_v3_large`. Trained from scratch for the few steps a test can afford, a
detector scores nothing or everything alike, and its near-constant features leave many
detections within rounding of each other, which would make the comparison a coin toss. So each
trains for a few SGD steps on synthetic scenes (filled rectangles of two colours on noise), then
has its BatchNorm statistics and affine parameters drawn at random (bn_stats, as the parity
references do) and its heads rescaled to a trained model's spread (detector_calibration), and is
saved with torch.save as OUT_DIR/<arch>.pth (its state_dict, as
the fine-tuning tutorial saves it).
OUT_DIR/images/ holds three test scenes as PNG; OUT_DIR/<arch>.json holds the eval-mode
detections of each (file name: boxes, scores, labels), computed on the PNGs as decoded (uint8 /
255), so both sides see the same pixels. OUT_DIR/counts.json: the parameters of torchvision's
detectors built for COCO's 91 classes, as `weights inspect --arch` lists them.
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from torchvision.models.detection import (fasterrcnn_mobilenet_v3_large_320_fpn,
                                          fasterrcnn_resnet50_fpn, ssd300_vgg16,
                                          ssdlite320_mobilenet_v3_large)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bn_stats import randomise_bn_stats  # noqa: E402
from detector_calibration import calibrate_rcnn, calibrate_ssd  # noqa: E402

out = sys.argv[1]
os.makedirs(os.path.join(out, "images"), exist_ok=True)
torch.set_num_threads(1)
COLOURS = {1: (0.9, 0.2, 0.1), 2: (0.1, 0.3, 0.9)}


def scene(g, h=240, w=320):
    """Noise with two to four rectangles of class 1 (red) or 2 (blue); the boxes and labels."""
    img = torch.rand(3, h, w, generator=g) * 0.4
    boxes, labels = [], []
    for _ in range(int(torch.randint(2, 5, (1,), generator=g))):
        bw, bh = int(torch.randint(40, 120, (1,), generator=g)), int(torch.randint(40, 120, (1,), generator=g))
        x, y = int(torch.randint(0, w - bw, (1,), generator=g)), int(torch.randint(0, h - bh, (1,), generator=g))
        c = int(torch.randint(1, 3, (1,), generator=g))
        img[:, y:y + bh, x:x + bw] = torch.tensor(COLOURS[c]).view(3, 1, 1)
        boxes.append([x, y, x + bw, y + bh])
        labels.append(c)
    return img, {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels)}


builders = {
    "fasterrcnn_mobilenet_v3_large_320_fpn": (lambda: fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=3), calibrate_rcnn),
    "ssdlite320_mobilenet_v3_large": (lambda: ssdlite320_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=3), calibrate_ssd),
}

g = torch.Generator().manual_seed(5)
tests = []
for i in range(3):
    img, _ = scene(g)
    pixels = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    name = f"scene{i}.png"
    Image.fromarray(pixels).save(os.path.join(out, "images", name))
    tests.append((name, torch.from_numpy(pixels).permute(2, 0, 1).float() / 255))

for seed, (arch, (build, calibrate)) in enumerate(builders.items()):
    torch.manual_seed(seed)
    model = build()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    model.train()
    tg = torch.Generator().manual_seed(100 + seed)
    for step in range(4):
        batch = [scene(tg) for _ in range(2)]
        losses = model([b[0] for b in batch], [b[1] for b in batch])
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    randomise_bn_stats(model, torch.Generator().manual_seed(200 + seed), affine=True)
    calibrate(model, [x for _, x in tests])
    model.eval()
    torch.save(model.state_dict(), os.path.join(out, f"{arch}.pth"))
    dets = {}
    with torch.no_grad():
        for name, x in tests:
            d = model([x])[0]
            dets[name] = {k: d[k].tolist() for k in ("boxes", "scores", "labels")}
    with open(os.path.join(out, f"{arch}.json"), "w") as f:
        json.dump(dets, f)
    scores = [s for d in dets.values() for s in d["scores"]]
    print(arch, "last loss", loss.item(), "detections", len(scores),
          "scores", min(scores, default=0), max(scores, default=0))

counts = {}
for build in (fasterrcnn_resnet50_fpn, fasterrcnn_mobilenet_v3_large_320_fpn, ssd300_vgg16,
              ssdlite320_mobilenet_v3_large):
    m = build(weights=None, weights_backbone=None, num_classes=91)
    counts[build.__name__] = sum(p.numel() for p in m.parameters())
with open(os.path.join(out, "counts.json"), "w") as f:
    json.dump(counts, f)
