"""The installed `ultralytics` package as the oracle of the YOLOv8 and YOLO11 tests
(tests/tests/suite/yolo_ultralytics.rs). Nothing here is ferrovis code; everything is computed by
Ultralytics itself.

    yolo_ultralytics.py shapes OUT          # OUT/shapes.json: every scale's parameter count and
                                            # state-dict names and shapes (80 classes); and
                                            # OUT/yolo11n-cls.pt, a classifier's checkpoint
    yolo_ultralytics.py model VERSION OUT   # VERSION = yolov8n, yolo11n or yolo26n, see model_case

`model` builds the model for 2 classes, draws its BatchNorm statistics at random, and trains it
for a few SGD steps with Ultralytics' own loss on two real photographs (the package's bus.jpg and
zidane.jpg, saved as PNG so both sides decode the same pixels) with hand-drawn boxes, so that its
scores spread out. It writes:
- OUT/images/*.png and OUT/data.yaml with OUT/val: eight crops of the two photographs of several
  aspect ratios with their YOLO labels (the boxes clipped to each crop);
- OUT/step.pt (the weights before the first step), OUT/step_batch.safetensors (the batch:
  `img`, `targets` rows (image, class, cx, cy, w, h)) and OUT/step_loss.json (the loss items
  box, cls, dfl Ultralytics computed on it);
- OUT/VERSION-2cls.pt: the trained model as an Ultralytics checkpoint (the pickled module in
  float16 under "ema", as its trainer saves it);
- OUT/predict.json: Ultralytics' predictor on OUT/images at imgsz 320, conf 0.1 (boxes in
  original pixels, scores, classes per image); for YOLO26 also OUT/predict_end2end.json, its
  NMS-free one-to-one path (`nms=False`);
- OUT/val.json: Ultralytics' validator on OUT/data.yaml at imgsz 320, batch 4 (mAP50, mAP50-95).
"""
import json
import os
import shutil
import sys
import tempfile
from copy import deepcopy

os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp())
os.environ.setdefault("YOLO_OFFLINE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import ultralytics  # noqa: E402
from ultralytics import YOLO  # noqa: E402
from ultralytics.cfg import get_cfg  # noqa: E402
from ultralytics.data.augment import LetterBox  # noqa: E402
from ultralytics.nn.tasks import DetectionModel  # noqa: E402

torch.set_num_threads(1)
STEPS = 60
ASSETS = os.path.join(os.path.dirname(ultralytics.__file__), "assets")
# Hand-drawn boxes (class, x1, y1, x2, y2 as fractions): 0 person, 1 bus.
LABELS = {
    "bus": [(1, 0.02, 0.22, 0.99, 0.78), (0, 0.06, 0.40, 0.30, 0.88), (0, 0.27, 0.41, 0.44, 0.86),
            (0, 0.73, 0.38, 0.99, 0.87)],
    "zidane": [(0, 0.06, 0.15, 0.88, 1.00), (0, 0.58, 0.05, 0.90, 1.00)],
}


def shapes_case(out):
    os.makedirs(out, exist_ok=True)
    result = {}
    for version in ("yolov8", "yolo11", "yolo26"):
        for scale in "nsmlx":
            name = f"{version}{scale}"
            model = DetectionModel(f"{name}.yaml", nc=80, verbose=False)
            sd = model.state_dict()
            result[name] = {
                "params": sum(p.numel() for p in model.parameters()),
                "keys": {k: list(v.shape) for k, v in sd.items()},
            }
    with open(os.path.join(out, "shapes.json"), "w") as f:
        json.dump(result, f)
    # A YOLO checkpoint of another task, as Ultralytics' trainer saves one: not a detector.
    from ultralytics.nn.tasks import ClassificationModel
    cls = ClassificationModel("yolo11n-cls.yaml", nc=10, verbose=False)
    torch.save({"model": None, "ema": cls.half(), "train_args": {}}, os.path.join(out, "yolo11n-cls.pt"))
    print({k: v["params"] for k, v in result.items()})


def crops():
    """Eight crops (name, BGR image, [(class, x1, y1, x2, y2) in pixels]) of several aspect ratios."""
    out = []
    for stem, boxes in LABELS.items():
        img = cv2.imread(os.path.join(ASSETS, f"{stem}.jpg"))
        h, w = img.shape[:2]
        px = [(c, x1 * w, y1 * h, x2 * w, y2 * h) for c, x1, y1, x2, y2 in boxes]
        for i, (fx1, fy1, fx2, fy2) in enumerate([(0, 0, 1, 1), (0, 0, 0.7, 1), (0, 0, 1, 0.6),
                                                   (0.2, 0.1, 0.9, 0.8)]):
            cx1, cy1, cx2, cy2 = int(fx1 * w), int(fy1 * h), int(fx2 * w), int(fy2 * h)
            crop = img[cy1:cy2, cx1:cx2]
            kept = []
            for c, x1, y1, x2, y2 in px:
                nx1, ny1 = max(x1, cx1) - cx1, max(y1, cy1) - cy1
                nx2, ny2 = min(x2, cx2) - cx1, min(y2, cy2) - cy1
                if nx2 - nx1 > 8 and ny2 - ny1 > 8:
                    kept.append((c, nx1, ny1, nx2, ny2))
            out.append((f"{stem}{i}", crop, kept))
    return out


def model_case(version, out):
    os.makedirs(out, exist_ok=True)
    images = os.path.join(out, "images")
    labels = os.path.join(out, "labels")
    os.makedirs(images, exist_ok=True)
    os.makedirs(labels, exist_ok=True)
    items = crops()
    for name, img, boxes in items:
        cv2.imwrite(os.path.join(images, f"{name}.png"), img)
        h, w = img.shape[:2]
        with open(os.path.join(labels, f"{name}.txt"), "w") as f:
            for c, x1, y1, x2, y2 in boxes:
                f.write(f"{c} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}\n")
    with open(os.path.join(out, "data.yaml"), "w") as f:
        f.write(f"path: {out}\ntrain: images\nval: images\nnames:\n  0: person\n  1: bus\n")

    torch.manual_seed(0)
    model = DetectionModel(f"{version}.yaml", nc=2, verbose=False)
    model.names = {0: "person", 1: "bus"}
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    model.args = get_cfg()

    # The training batch: the full photographs (crops 0 and 4) letterboxed to 320².
    letterbox = LetterBox((320, 320), auto=False, scaleup=True)
    imgs, rows = [], []
    for b, (name, img, boxes) in enumerate([items[0], items[4]]):
        h, w = img.shape[:2]
        r = min(320 / h, 320 / w)
        boxed = letterbox(image=img)
        dw, dh = (320 - round(w * r)) / 2, (320 - round(h * r)) / 2
        left, top = round(dw - 0.1), round(dh - 0.1)
        imgs.append(torch.from_numpy(np.ascontiguousarray(boxed[..., ::-1].transpose(2, 0, 1))).float() / 255)
        for c, x1, y1, x2, y2 in boxes:
            x1, x2 = x1 * r + left, x2 * r + left
            y1, y2 = y1 * r + top, y2 * r + top
            rows.append([b, c, (x1 + x2) / 640, (y1 + y2) / 640, (x2 - x1) / 320, (y2 - y1) / 320])
    img = torch.stack(imgs)
    targets = torch.tensor(rows, dtype=torch.float32)
    batch = {"img": img, "batch_idx": targets[:, 0], "cls": targets[:, 1:2], "bboxes": targets[:, 2:]}
    save_file({"img": img.contiguous(), "targets": targets}, os.path.join(out, "step_batch.safetensors"))
    torch.save(model.state_dict(), os.path.join(out, "step.pt"))

    # The training-step reference: Ultralytics' loss on the batch in training mode.
    model.train()
    loss, items_ = model.loss(batch)
    parts = [float(v) for v in items_.values()] if isinstance(items_, dict) else items_.tolist()
    with open(os.path.join(out, "step_loss.json"), "w") as f:
        json.dump({"items": parts, "total": float(loss.detach().sum())}, f)
    # Then fit the two photographs, and recompute BatchNorm's statistics on them (a cumulative
    # average over a few passes), so the evaluated network behaves as the trained one and its
    # scores spread from 0 to 1.
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    # YOLO26's two heads learn these photographs more slowly.
    for _ in range(STEPS * 2 if version.startswith("yolo26") else STEPS):
        loss, items_ = model.loss(batch)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    with torch.no_grad():
        for _ in range(2):
            model(img)
    for m in bns:
        m.momentum = 0.03
    model.eval()
    print("final loss items", [round(float(v), 4) for v in (items_.values() if isinstance(items_, dict) else items_)])
    model.eval()
    ckpt = os.path.join(out, f"{version}-2cls.pt")
    torch.save({"epoch": -1, "best_fitness": None, "model": None, "ema": deepcopy(model).half(),
                "updates": 0, "optimizer": None, "train_args": {"imgsz": 320}}, ckpt)

    yolo = YOLO(ckpt)
    files = sorted(os.listdir(images))
    preds = {}
    for name in files:
        r = yolo.predict(os.path.join(images, name), imgsz=320, conf=0.1, device="cpu", verbose=False)[0]
        preds[name] = {
            "boxes": r.boxes.xyxy.tolist(),
            "scores": r.boxes.conf.tolist(),
            "classes": [int(c) for c in r.boxes.cls.tolist()],
        }
    with open(os.path.join(out, "predict.json"), "w") as f:
        json.dump(preds, f)
    if version.startswith("yolo26"):
        # The NMS-free path of the one-to-one head (Ultralytics' nms=False).
        e2e = {}
        for name in files:
            r = yolo.predict(os.path.join(images, name), imgsz=320, conf=0.1, device="cpu", nms=False,
                             verbose=False)[0]
            e2e[name] = {"boxes": r.boxes.xyxy.tolist(), "scores": r.boxes.conf.tolist(),
                         "classes": [int(c) for c in r.boxes.cls.tolist()]}
        with open(os.path.join(out, "predict_end2end.json"), "w") as f:
            json.dump(e2e, f)
        print("end-to-end detections", {k: len(v["scores"]) for k, v in e2e.items()})
    print("detections", {k: len(v["scores"]) for k, v in preds.items()})

    project = tempfile.mkdtemp()
    metrics = yolo.val(data=os.path.join(out, "data.yaml"), imgsz=320, batch=4, device="cpu", plots=False,
                       verbose=False, project=project, name="val")
    with open(os.path.join(out, "val.json"), "w") as f:
        json.dump({"map50": float(metrics.box.map50), "map50_95": float(metrics.box.map)}, f)
    print("val", float(metrics.box.map50), float(metrics.box.map))
    shutil.rmtree(project, ignore_errors=True)
    for cache in (os.path.join(out, "labels.cache"),):
        if os.path.exists(cache):
            os.remove(cache)


if __name__ == "__main__":
    if sys.argv[1] == "shapes":
        shapes_case(sys.argv[2])
    else:
        model_case(sys.argv[2], sys.argv[3])
