"""torchvision training the Faster R-CNN demo's model on the demo's data with the demo's recipe,
to compare with `detect demo arch=fasterrcnn`: the tutorial's model (ImageNet MobileNetV2 features
frozen, one map, anchors 32–512, RoIAlign 7×7), 384 px, batch 4, SGD lr 0.01 momentum 0.9 weight
decay 5e-4, warm-up over the first epoch, flips, 300/100 proposals, 64 RoIs per image.

    python bench/tutorial_rcnn_torchvision.py DATA_DIR MOBILENET_V2_PTH OUT_RUN [EPOCHS]

DATA_DIR is the demo's shapes folder (`runs/demo/detect/data/tv-shapes`, YOLO labels); the
trained weights are written under ferrovis' names as OUT_RUN/weights/best.safetensors with a
`detect.json`, so `detect val --weights OUT_RUN data=DATA_DIR/shapes.yaml min_size=384
max_size=384 rpn_post_nms_top_n_test=100` scores them with the same metrics as the demo.
"""
import glob
import json
import os
import re
import sys
import time

import torch
from safetensors.torch import save_file
from torchvision.io import read_image
from torchvision.models import mobilenet_v2
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.misc import FrozenBatchNorm2d


def load(root, split):
    out = []
    for p in sorted(glob.glob(f"{root}/images/{split}/*.png")):
        img = read_image(p).float() / 255
        h, w = img.shape[1:]
        boxes, labels = [], []
        with open(p.replace("/images/", "/labels/").replace(".png", ".txt")) as f:
            for line in f:
                c, cx, cy, bw, bh = map(float, line.split())
                boxes.append([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
                labels.append(int(c) + 1)
        out.append((img, {"boxes": torch.tensor(boxes).view(-1, 4), "labels": torch.tensor(labels)}))
    return out


def main():
    root, weights, run = sys.argv[1:4]
    epochs = int(sys.argv[4]) if len(sys.argv) > 4 else 12
    torch.set_num_threads(2)
    torch.manual_seed(0)
    train = load(root, "train")
    backbone = mobilenet_v2(norm_layer=FrozenBatchNorm2d)
    backbone.load_state_dict(torch.load(weights), strict=False)
    features = backbone.features
    features.out_channels = 1280
    for p in features.parameters():
        p.requires_grad_(False)
    names = ["star", "hexagon", "cross"]  # the demo's classes, in its shapes.yaml order
    m = FasterRCNN(features, len(names) + 1,
                   rpn_anchor_generator=AnchorGenerator(((32, 64, 128, 256, 512),), ((0.5, 1.0, 2.0),)),
                   box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2), min_size=384, max_size=384,
                   rpn_post_nms_top_n_train=300, rpn_post_nms_top_n_test=100, box_batch_size_per_image=64)
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.01, momentum=0.9,
                          weight_decay=5e-4)
    steps = len(train) // 4
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.001, total_iters=steps - 1)
    for e in range(epochs):
        m.train()
        t, total = time.time(), 0.0
        perm = torch.randperm(len(train))
        for i in range(steps):
            images, targets = [], []
            for j in perm[i * 4:(i + 1) * 4]:
                img, tg = train[j]
                if torch.rand(1) < 0.5:
                    b = tg["boxes"].clone()
                    b[:, [0, 2]] = img.shape[-1] - tg["boxes"][:, [2, 0]]
                    img, tg = img.flip(-1), {"boxes": b, "labels": tg["labels"]}
                images.append(img)
                targets.append(tg)
            loss = sum(m(images, targets).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
            if e == 0:
                warm.step()
        print(f"epoch {e + 1}: loss {total / steps:.4f}, {time.time() - t:.1f} s", flush=True)
    # ferrovis' names: the backbone under `features`, MobileNetV2's BatchNorm step counters.
    sd = {re.sub(r"^backbone\.(\d+)\.", r"backbone.features.\1.", k): v.contiguous()
          for k, v in m.state_dict().items()}
    for k in [k for k in sd if k.startswith("backbone.") and k.endswith("running_var")]:
        sd[k.replace("running_var", "num_batches_tracked")] = torch.tensor(0)
    os.makedirs(f"{run}/weights", exist_ok=True)
    save_file(sd, f"{run}/weights/best.safetensors")
    with open(f"{run}/detect.json", "w") as f:
        json.dump({"scale": "-", "names": names, "imgsz": 384, "arch": "fasterrcnn_mobilenet_v2"}, f)


if __name__ == "__main__":
    main()
