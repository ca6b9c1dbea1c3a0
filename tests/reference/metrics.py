"""Reference side of the metric tests: random cases with their expected values.

    metrics.py cases OUT.json

- classification: scikit-learn itself (confusion_matrix, precision_recall_fscore_support with
  zero_division=0, accuracy, balanced accuracy, top-k accuracy);
- segmentation: numpy, from the definitions in core/src/metrics/segmentation.rs;
- detection, Ultralytics mode: an independent numpy implementation of the published definitions
  (matching rule, 101-point interpolated envelope + trapezoid, P/R at max smoothed mean F1);
- detection, COCO mode: pycocotools' COCOeval itself.
"""
import contextlib
import io
import json
import sys

import numpy as np
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix,
                             precision_recall_fscore_support, top_k_accuracy_score)

rng = np.random.default_rng(2026)


def classification_cases():
    cases = []
    for c, n, absent in [(2, 50, []), (3, 120, []), (5, 200, [3]), (7, 150, [0, 6]), (4, 9, [])]:
        present = [k for k in range(c) if k not in absent]
        y = rng.choice(present, size=n)
        scores = rng.normal(size=(n, c))
        scores[np.arange(n), y] += rng.uniform(0, 2.5, size=n)  # better than chance
        pred = scores.argmax(1)
        labels = list(range(c))
        case = {"num_classes": c, "targets": y.tolist(), "scores": scores.ravel().tolist(),
                "predictions": pred.tolist(),
                "confusion": confusion_matrix(y, pred, labels=labels).ravel().tolist(),
                "accuracy": accuracy_score(y, pred)}
        with np.errstate(all="ignore"), contextlib.redirect_stderr(io.StringIO()):
            import warnings
            warnings.simplefilter("ignore")
            p, r, f, s = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
            case["per_class"] = {"precision": p.tolist(), "recall": r.tolist(), "f1": f.tolist(),
                                 "support": s.tolist()}
            for avg in ("macro", "weighted", "micro"):
                p, r, f, _ = precision_recall_fscore_support(y, pred, labels=labels, average=avg,
                                                             zero_division=0)
                case[avg] = [p, r, f]
            case["balanced_accuracy"] = balanced_accuracy_score(y, pred)
        if c > 2:
            case["top2"] = top_k_accuracy_score(y, scores, k=2, labels=labels)
        cases.append(case)
    return cases


def segmentation_cases():
    cases = []
    for c in (2, 5):
        target = rng.integers(0, c, size=(3, 24, 20))
        if c == 5:
            target[target == 4] = 0  # class 4 absent from the ground truth …
        target[:, :3, :] = 255  # … and an ignored band
        pred = np.where(rng.random(target.shape) < 0.7, np.where(target == 255, 0, target),
                        rng.integers(0, c, size=target.shape))
        if c == 5:
            pred[pred == 3] = 2  # class 3 never predicted
        valid = target != 255
        cm = np.bincount(target[valid] * c + pred[valid], minlength=c * c).reshape(c, c)
        tp = np.diag(cm).astype(float)
        fp = cm.sum(0) - tp
        fn = cm.sum(1) - tp
        union = tp + fp + fn
        present = union > 0
        gt = cm.sum(1)
        iou = np.where(present, tp / np.maximum(union, 1), np.nan)
        dice = np.where(present, 2 * tp / np.maximum(2 * tp + fp + fn, 1), np.nan)
        acc = np.where(gt > 0, tp / np.maximum(gt, 1), np.nan)
        cases.append({"num_classes": c, "shape": list(target.shape),
                      "target": target.ravel().tolist(), "prediction": pred.ravel().tolist(),
                      "iou": [None if np.isnan(v) else v for v in iou],
                      "mean_iou": np.nanmean(iou), "mean_dice": np.nanmean(dice),
                      "mean_class_accuracy": np.nanmean(acc),
                      "pixel_accuracy": tp.sum() / cm.sum()})
    return cases


def box_iou(a, b):
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def random_images(num_classes, count):
    images = []
    for _ in range(count):
        gts = []
        for _ in range(rng.integers(0, 7)):
            w, h = rng.uniform(6, 220, size=2)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 640 - h)
            gts.append([x, y, x + w, y + h, int(rng.integers(0, num_classes))])
        dets = []
        for g in gts:
            if rng.random() < 0.8:
                w, h = g[2] - g[0], g[3] - g[1]
                j = rng.normal(0, 0.08, size=4) * [w, h, w, h]
                cls = g[4] if rng.random() < 0.85 else int(rng.integers(0, num_classes))
                dets.append([g[0] + j[0], g[1] + j[1], g[2] + j[2], g[3] + j[3],
                             float(rng.uniform(0.05, 1.0)), cls])
        for _ in range(rng.integers(0, 4)):  # false positives
            w, h = rng.uniform(6, 150, size=2)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 640 - h)
            dets.append([x, y, x + w, y + h, float(rng.uniform(0.0, 0.6)),
                         int(rng.integers(0, num_classes))])
        images.append({"truths": gts, "detections": dets})
    return images


IOUV = np.linspace(0.5, 0.95, 10)


def match(dets, gts):
    """Per detection (in decreasing confidence), TP flag at each IoU threshold."""
    correct = np.zeros((len(dets), 10), dtype=bool)
    if len(dets) == 0 or len(gts) == 0:
        return correct
    iou = box_iou(gts[:, :4], dets[:, :4]) * (gts[:, 4:5] == dets[None, :, 5])
    for t, thr in enumerate(IOUV):
        g, d = np.nonzero(iou >= thr)
        if len(g) == 0:
            continue
        order = np.argsort(-iou[g, d], kind="stable")
        g, d = g[order], d[order]
        best = {}
        for gi, di in zip(g, d):  # each detection: its highest-IoU pair
            best.setdefault(di, gi)
        taken = set()
        for di in sorted(best):  # each truth: the earliest detection claiming it
            if best[di] not in taken:
                taken.add(best[di])
                correct[di, t] = True
    return correct


def compute_ap(recall, precision):
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([1.0], precision, [0.0]))
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    x = np.linspace(0, 1, 101)
    y = np.interp(x, mrec, mpre)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def ultralytics_reference(images, num_classes):
    tps, confs, pcls, tcls = [], [], [], []
    for im in images:
        dets = np.array(im["detections"], dtype=np.float64).reshape(-1, 6)
        dets = dets[np.argsort(-dets[:, 4], kind="stable")]
        gts = np.array(im["truths"], dtype=np.float64).reshape(-1, 5)
        tps.append(match(dets, gts))
        confs.append(dets[:, 4])
        pcls.append(dets[:, 5])
        tcls.append(gts[:, 4])
    tp, conf, pred_cls, target_cls = map(np.concatenate, (tps, confs, pcls, tcls))
    order = np.argsort(-conf, kind="stable")
    tp, conf, pred_cls = tp[order], conf[order], pred_cls[order]
    classes = [k for k in range(num_classes) if (target_cls == k).any()]
    px = np.linspace(0, 1, 1000)
    ap = np.zeros((len(classes), 10))
    p_curve = np.zeros((len(classes), 1000))
    r_curve = np.zeros((len(classes), 1000))
    eps = 1e-16
    for ci, k in enumerate(classes):
        sel = pred_cls == k
        n_gt = (target_cls == k).sum()
        if sel.sum() == 0:
            continue
        tpc = tp[sel].cumsum(0)
        fpc = (1 - tp[sel]).cumsum(0)
        recall = tpc / (n_gt + eps)
        precision = tpc / (tpc + fpc)
        r_curve[ci] = np.interp(-px, -conf[sel], recall[:, 0], left=0)
        p_curve[ci] = np.interp(-px, -conf[sel], precision[:, 0], left=1)
        for t in range(10):
            ap[ci, t] = compute_ap(recall[:, t], precision[:, t])
    f1 = 2 * p_curve * r_curve / (p_curve + r_curve + eps)
    mean_f1 = f1.mean(0)
    nf = round(len(mean_f1) * 0.1 * 2) // 2 + 1
    padded = np.concatenate((np.full(nf // 2, mean_f1[0]), mean_f1, np.full(nf // 2, mean_f1[-1])))
    best = int(np.convolve(padded, np.ones(nf) / nf, mode="valid").argmax())
    return {"classes": classes, "ap50": ap[:, 0].tolist(), "ap50_95": ap.mean(1).tolist(),
            "precision": p_curve[:, best].tolist(), "recall": r_curve[:, best].tolist(),
            "map50": ap[:, 0].mean(), "map50_95": ap.mean(), "mp": p_curve[:, best].mean(),
            "mr": r_curve[:, best].mean()}


def coco_reference(images, num_classes):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    gt = {"images": [{"id": i + 1} for i in range(len(images))],
          "categories": [{"id": k + 1} for k in range(num_classes)], "annotations": []}
    dets = []
    for i, im in enumerate(images):
        for g in im["truths"]:
            w, h = g[2] - g[0], g[3] - g[1]
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i + 1,
                                      "category_id": g[4] + 1, "bbox": [g[0], g[1], w, h],
                                      "area": w * h, "iscrowd": 0})
        for d in im["detections"]:
            dets.append([i + 1, d[0], d[1], d[2] - d[0], d[3] - d[1], d[4], d[5] + 1])
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        res = coco.loadRes(np.array(dets))
        ev = COCOeval(coco, res, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]


def detection_cases():
    cases = []
    for num_classes, count in [(3, 12), (5, 40), (2, 25)]:
        images = random_images(num_classes, count)
        cases.append({"num_classes": num_classes, "images": images,
                      "ultralytics": ultralytics_reference(images, num_classes),
                      "coco": coco_reference(images, num_classes)})
    return cases


if __name__ == "__main__":
    if sys.argv[1] != "cases":
        raise SystemExit(f"unknown command {sys.argv[1]}")
    out = {"classification": classification_cases(), "segmentation": segmentation_cases(),
           "detection": detection_cases()}
    with open(sys.argv[2], "w") as f:
        json.dump(out, f, default=float)
