"""The synthetic clip of detect's video tests (tests/tests/suite/video.rs), and the scorer of
their tracking, with OpenCV (the wheel's) and motmetrics.

    python video_clip.py write OUT_DIR
    python video_clip.py score OUT_DIR/truth.json HYPOTHESIS_MOT.txt

`write` draws 60 frames, 320x240, of four shapes on a textured backdrop with known
trajectories: a red and a green square crossing each other (frames ~25-35), a blue disc moving
down that passes behind a grey bar (hidden frames 27-32), and a yellow square that leaves by
the right edge (frame 8) and comes back (frame 15). It writes

  frames/frame_NNN.png   each frame, losslessly;
  clip.mkv               the same frames as a lossless FFV1 video at 25 fps (decoded, it is the
                         PNGs exactly, whatever FFmpeg build reads it);
  clip.avi               the same frames as MJPG (lossy, what OpenCV writes by default);
  clip_cut.avi           clip.avi cut at 55 % of its bytes (a recording that stopped);
  truth.json             per frame, the visible shapes: [id, x1, y1, x2, y2];
  detections.json        per frame, the truth as a detector would give it: boxes jittered by
                         1 px, 5 % missed, scores 0.55-0.95, plus low-score clutter:
                         [x1, y1, x2, y2, score, class].

`score` matches the hypothesis tracks (MOT Challenge text: frame,id,left,top,width,height,...)
to the truth at IoU 0.5 with motmetrics' accumulator and prints JSON: idf1, num_switches, mota,
num_frames. (motmetrics 1.4's own iou_matrix calls numpy's removed asfarray, so the IoU
distances are computed here.)
"""
import json
import os
import sys

import cv2
import numpy as np

W, H, FRAMES, FPS = 320, 240, 60, 25.0
BAR = (150, 130, 200, 165)  # x1, y1, x2, y2 of the grey bar the disc passes behind


def shapes(f):
    """(id, kind, colour BGR, x1, y1, x2, y2) of every shape at frame f, before occlusion."""
    out = [
        (1, "square", (40, 40, 230), 10 + 4.5 * f, 60, 10 + 4.5 * f + 32, 92),
        (2, "square", (40, 200, 40), 280 - 4.5 * f, 72, 280 - 4.5 * f + 32, 104),
        (3, "disc", (230, 120, 30), 160, 20 + 2.2 * f, 190, 20 + 2.2 * f + 30),
    ]
    # The yellow square: right, out of the picture, then back in moving left.
    if f < 12:
        x = 250 + 8.0 * f
    else:
        x = 250 + 8.0 * 12 - 6.0 * (f - 12)
    out.append((4, "square", (30, 220, 230), x, 170, x + 28, 198))
    return out


def visible(box):
    x1, y1, x2, y2 = box
    cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, W), min(y2, H)
    if cx2 - cx1 < 8 or cy2 - cy1 < 8:
        return None
    return [cx1, cy1, cx2, cy2]


def hidden_by_bar(box):
    x1, y1, x2, y2 = box
    return x1 >= BAR[0] and x2 <= BAR[2] and y1 >= BAR[1] - 12 and y2 <= BAR[3] + 12


def write(out):
    rng = np.random.default_rng(11)
    os.makedirs(f"{out}/frames", exist_ok=True)
    backdrop = rng.integers(20, 70, (H // 4, W // 4), dtype=np.uint8)
    backdrop = cv2.resize(backdrop, (W, H), interpolation=cv2.INTER_NEAREST)
    backdrop = cv2.cvtColor(backdrop, cv2.COLOR_GRAY2BGR)
    lossless = cv2.VideoWriter(f"{out}/clip.mkv", cv2.VideoWriter_fourcc(*"FFV1"), FPS, (W, H))
    mjpg = cv2.VideoWriter(f"{out}/clip.avi", cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    assert lossless.isOpened() and mjpg.isOpened()
    truth, detections = [], []
    for f in range(FRAMES):
        img = backdrop.copy()
        gt = []
        for sid, kind, colour, x1, y1, x2, y2 in shapes(f):
            p1, p2 = (int(round(x1)), int(round(y1))), (int(round(x2)) - 1, int(round(y2)) - 1)
            if kind == "disc":
                centre = ((p1[0] + p2[0]) // 2, (p1[1] + p2[1]) // 2)
                cv2.circle(img, centre, (p2[0] - p1[0]) // 2, colour, -1)
            else:
                cv2.rectangle(img, p1, p2, colour, -1)
            box = visible((p1[0], p1[1], p2[0] + 1, p2[1] + 1))
            if box is not None and not (sid == 3 and hidden_by_bar(box)):
                gt.append([sid] + [float(v) for v in box])
        # The bar is drawn last: the disc passes behind it.
        cv2.rectangle(img, BAR[:2], (BAR[2] - 1, BAR[3] - 1), (128, 128, 128), -1)
        cv2.imwrite(f"{out}/frames/frame_{f:03d}.png", img)
        lossless.write(img)
        mjpg.write(img)
        truth.append(gt)
        rows = []
        for sid, *box in gt:
            if rng.random() < 0.05:
                continue
            jitter = rng.normal(0, 1.0, 4)
            rows.append([float(b + j) for b, j in zip(box, jitter)]
                        + [float(rng.uniform(0.55, 0.95)), float(0 if sid != 3 else 1)])
        for _ in range(rng.integers(0, 3)):
            cx, cy = rng.uniform(0, W), rng.uniform(0, H)
            rows.append([cx - 6, cy - 6, cx + 6, cy + 6, float(rng.uniform(0.05, 0.2)), 0.0])
        detections.append(rows)
    lossless.release()
    mjpg.release()
    data = open(f"{out}/clip.avi", "rb").read()
    open(f"{out}/clip_cut.avi", "wb").write(data[: int(len(data) * 0.55)])
    json.dump(truth, open(f"{out}/truth.json", "w"))
    json.dump(detections, open(f"{out}/detections.json", "w"))
    print(f"{FRAMES} frames, {sum(len(g) for g in truth)} visible shapes")


def iou_distance(a, b):
    """1 - IoU between xyxy boxes, NaN where IoU < 0.5 (motmetrics' convention)."""
    d = np.full((len(a), len(b)), np.nan)
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            inter = iw * ih
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            iou = inter / union if union > 0 else 0.0
            if iou >= 0.5:
                d[i, j] = 1.0 - iou
    return d


def score(truth_file, mot_file):
    import motmetrics as mm

    truth = json.load(open(truth_file))
    hyp = {}
    for line in open(mot_file):
        if not line.strip():
            continue
        f, tid, left, top, w, h = (float(v) for v in line.split(",")[:6])
        hyp.setdefault(int(f), []).append((int(tid), [left, top, left + w, top + h]))
    acc = mm.MOTAccumulator(auto_id=True)
    for f, gt in enumerate(truth, start=1):
        hs = hyp.get(f, [])
        acc.update([g[0] for g in gt], [h[0] for h in hs],
                   iou_distance([g[1:] for g in gt], [h[1] for h in hs]))
    summary = mm.metrics.create().compute(
        acc, metrics=["idf1", "num_switches", "mota", "num_frames"], name="clip")
    print(json.dumps({k: float(summary[k].iloc[0]) for k in summary.columns}))


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        score(sys.argv[2], sys.argv[3])
