"""Reference for detect's ByteTrack (tests/tests/suite/bytetrack.rs): Ultralytics' own
BYTETracker (the installed package, a test oracle) fed synthetic detections frame by frame.

The scene: boxes moving at constant speed with jitter, two of them crossing, one occluded for
some frames (its detection missing, then low-scored), one leaving the picture and a new one
entering, plus low-score clutter. For every frame, `detections` holds (x1, y1, x2, y2, score,
class) rows and `tracks` the tracker's output rows (x1, y1, x2, y2, track id, score, class,
detection index), written as JSON.

A second, denser scene ("crowd"): ten boxes of random size and speed bouncing in a 640x480
frame for 100 frames, each missing 8 % of the time, scores anywhere in 0.15-0.95.

A third ("pan"), for BoT-SORT: the scripted scene filmed by a camera panning 3 px a frame
to the right over a textured backdrop, so every box drifts left. The frames are written as
PNGs to FRAMES_DIR (frame_000.png, ...) and Ultralytics' BOTSORT, with its botsort.yaml
(sparse optical-flow motion compensation), is fed each frame with its boxes.

    python bytetrack.py OUT.json [scene|crowd]
    python bytetrack.py OUT.json pan FRAMES_DIR
"""
import json
import sys
from types import SimpleNamespace

import numpy as np
import cv2
from ultralytics.trackers.bot_sort import BOTSORT
from ultralytics.trackers.byte_tracker import BYTETracker
from ultralytics.utils import YAML
from ultralytics.utils.checks import check_yaml

FRAMES = 60


class Dets:
    """What BYTETracker.update reads of a Results.boxes."""

    def __init__(self, rows):
        rows = np.asarray(rows, dtype=np.float32).reshape(-1, 6)
        self.xyxy = rows[:, :4]
        self.conf = rows[:, 4]
        self.cls = rows[:, 5]
        xy = (self.xyxy[:, :2] + self.xyxy[:, 2:]) / 2
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        self.xywh = np.concatenate([xy, wh], 1)

    def __len__(self):
        return len(self.conf)

    def __getitem__(self, idx):
        new = Dets.__new__(Dets)
        new.xyxy, new.conf, new.cls, new.xywh = (self.xyxy[idx], self.conf[idx], self.cls[idx],
                                                 self.xywh[idx])
        return new


def scene(rng):
    # (start x, start y, vx, vy, w, h, class, first frame, last frame)
    objects = [
        (20, 50, 4.0, 0.5, 40, 60, 0, 0, FRAMES),
        (400, 60, -4.0, 0.2, 42, 58, 0, 0, FRAMES),      # crosses the first around frame 47
        (100, 300, 2.0, -1.0, 80, 50, 1, 0, FRAMES),
        (500, 350, 6.0, 0.0, 50, 50, 2, 0, 30),          # leaves at frame 30
        (30, 420, 3.0, -0.5, 45, 45, 2, 25, FRAMES),     # enters at frame 25
    ]
    frames = []
    for f in range(FRAMES):
        rows = []
        for k, (x, y, vx, vy, w, h, c, first, last) in enumerate(objects):
            if not first <= f < last:
                continue
            score = 0.85 - 0.1 * k * rng.random()
            if k == 2 and 20 <= f < 26:
                continue  # occluded: no detection
            if k == 2 and 26 <= f < 30:
                score = 0.18  # coming back: only a low-score detection
            cx = x + vx * f + rng.normal(0, 1.0)
            cy = y + vy * f + rng.normal(0, 1.0)
            ww = w + rng.normal(0, 0.8)
            hh = h + rng.normal(0, 0.8)
            rows.append([cx - ww / 2, cy - hh / 2, cx + ww / 2, cy + hh / 2, score, c])
        for _ in range(rng.integers(0, 3)):  # clutter
            cx, cy = rng.uniform(0, 640, 2)
            rows.append([cx - 10, cy - 10, cx + 10, cy + 10, rng.uniform(0.05, 0.3), 3])
        frames.append(rows)
    return frames


def crowd(rng):
    n, frames = 10, 100
    pos = rng.uniform([50, 50], [590, 430], (n, 2))
    vel = rng.uniform(-6, 6, (n, 2))
    size = rng.uniform(20, 70, (n, 2))
    out = []
    for _ in range(frames):
        rows = []
        for k in range(n):
            pos[k] += vel[k]
            for a, hi in ((0, 640), (1, 480)):  # bounce off the borders
                if not 0 < pos[k, a] < hi:
                    vel[k, a] = -vel[k, a]
                    pos[k, a] = min(max(pos[k, a], 1), hi - 1)
            if rng.random() < 0.08:
                continue
            cx, cy = pos[k] + rng.normal(0, 1.5, 2)
            w, h = size[k] + rng.normal(0, 1.0, 2)
            rows.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, rng.uniform(0.15, 0.95), k % 3])
        out.append(rows)
    return out


PAN = 3.0  # pixels per frame


def pan(rng, frames_dir):
    """The scripted scene seen by a panning camera: (boxes, BGR frame) per frame."""
    h, w = 480, 640
    # A backdrop of random grey blocks (corners everywhere), wide enough for the whole pan.
    blocks = rng.integers(0, 256, (h // 8 + 1, (w + int(PAN * FRAMES)) // 8 + 2), dtype=np.uint8)
    backdrop = cv2.resize(blocks, (blocks.shape[1] * 8, blocks.shape[0] * 8),
                          interpolation=cv2.INTER_NEAREST)
    out = []
    for f, rows in enumerate(scene(rng)):
        shift = int(PAN * f)
        frame = cv2.cvtColor(np.ascontiguousarray(backdrop[:h, shift:shift + w]), cv2.COLOR_GRAY2BGR)
        moved = [[r[0] - shift, r[1], r[2] - shift, r[3], r[4], r[5]] for r in rows]
        cv2.imwrite(f"{frames_dir}/frame_{f:03d}.png", frame)
        out.append((moved, frame))
    return out


def main():
    rng = np.random.default_rng(7)
    which = sys.argv[2] if len(sys.argv) > 2 else "scene"
    # Ultralytics' own tracker file, as `yolo track tracker=...yaml` reads it.
    settings = YAML.load(check_yaml("botsort.yaml" if which == "pan" else "bytetrack.yaml"))
    args = SimpleNamespace(**settings)
    tracker = BOTSORT(args) if which == "pan" else BYTETracker(args)
    tracker.reset_id()
    if which == "pan":
        sequence = pan(rng, sys.argv[3])
    else:
        sequence = [(rows, None) for rows in (crowd if which == "crowd" else scene)(rng)]
    out = []
    for rows, frame in sequence:
        tracks = tracker.update(Dets(rows), frame)
        out.append({"detections": [[float(v) for v in r] for r in rows],
                    "tracks": [[float(v) for v in t] for t in tracks]})
    with open(sys.argv[1], "w") as f:
        json.dump({"frames": out, "settings": settings}, f)
    ids = {int(t[4]) for fr in out for t in fr["tracks"]}
    print(f"{len(out)} frames, track ids {sorted(ids)}")


if __name__ == "__main__":
    main()
