"""ferrovis vs Ultralytics on video: `detect predict` and `detect track` on a 1280x720,
300-frame clip with YOLOv8n at 640 on the CPU, both writing the annotated video.

    python bench/video_predict.py [--model yolov8n] [--frames 300]

1. The clip: a textured backdrop panning under moving shapes, written with OpenCV as MP4
   (mp4v) at 30 fps, 1280x720.
2. The model: Ultralytics' `yolov8n.yaml`, seeded and perturbed (as bench/detect_predict.py
   makes it), saved as a real Ultralytics checkpoint that ferrovis loads as it is.
3. Ultralytics, in this process: `model.predict(source=clip, imgsz=640, save=True,
   stream=True)` (what `yolo predict source=clip.mp4` runs), then `model.track(...,
   tracker=botsort.yaml)`; wall time from the call to the last frame written.
4. ferrovis (release build): `detect predict --weights ckpt clip.mp4`, then `detect track`;
   wall time of the command minus its start-up (the time to the model loaded, measured by a
   run on one image).
5. Frames per second of each, the ratio (target: ferrovis >= 1.5x Ultralytics' predict), and
   what tracking adds per frame on each side (target: <= 10 % for ferrovis), against predict
   at its default conf 0.25 and at the tracker's conf 0.1 (`track` keeps boxes from 0.1, on
   both sides, and a random-init model has many: the difference is then the tracker's own).
Both use 2 threads.
"""
import os
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from detect_predict import ROOT, ensure_ultralytics, model_arg, random_model  # noqa: E402


def write_clip(path, frames, w=1280, h=720, fps=30.0):
    rng = np.random.default_rng(0)
    blocks = rng.integers(30, 200, (h // 16 + 1, (w + 2 * frames) // 16 + 2), dtype=np.uint8)
    backdrop = cv2.cvtColor(cv2.resize(blocks, (blocks.shape[1] * 16, blocks.shape[0] * 16),
                                       interpolation=cv2.INTER_NEAREST), cv2.COLOR_GRAY2BGR)
    out = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in range(frames):
        img = np.ascontiguousarray(backdrop[:h, 2 * f:2 * f + w])
        for k in range(6):
            x = int((100 + 200 * k + 5 * f * (1 if k % 2 else -1)) % (w - 120))
            y = 120 + 80 * k
            cv2.rectangle(img, (x, y), (x + 110, y + 70), (40 * k, 255 - 30 * k, 90), -1)
        out.write(img)
    out.release()


def main():
    name, rest = model_arg(sys.argv[1:])
    frames = int(rest[rest.index("--frames") + 1]) if "--frames" in rest else 300
    ensure_ultralytics()
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(2)
    work = tempfile.mkdtemp()
    clip = os.path.join(work, "clip.mp4")
    write_clip(clip, frames)
    ckpt = random_model(name, work)

    def ultralytics(mode, conf=None):
        model = YOLO(ckpt)
        # Warm-up on one frame, as ferrovis' start-up is measured and subtracted.
        model.predict(np.zeros((720, 1280, 3), np.uint8), imgsz=640, device="cpu", verbose=False)
        run = model.track if mode == "track" else model.predict
        kwargs = {"tracker": "botsort.yaml"} if mode == "track" else {}
        if conf is not None:
            kwargs["conf"] = conf
        start = time.perf_counter()
        n = 0
        for _ in run(source=clip, imgsz=640, device="cpu", save=True, stream=True, verbose=False,
                     project=work, name=f"ultralytics-{mode}", exist_ok=True, **kwargs):
            n += 1
        return n, time.perf_counter() - start

    env = dict(os.environ, OMP_NUM_THREADS="2")
    binary = os.path.join(ROOT, "target", "release", "detect")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "ferrovis-detect"], cwd=ROOT,
                   check=True, env=env)
    still = os.path.join(work, "still.png")
    cv2.imwrite(still, np.zeros((720, 1280, 3), np.uint8))

    def ferrovis(mode, source, *settings):
        cmd = [binary, mode, "--weights", ckpt, "--out", os.path.join(work, f"ferrovis-{mode}"),
               "imgsz=640", *settings, source]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        return time.perf_counter() - start

    startup = min(ferrovis("predict", still) for _ in range(2))
    results = {}
    for label, mode, conf in (("predict", "predict", None), ("predict conf=0.1", "predict", 0.1),
                              ("track", "track", None)):
        settings = [f"conf={conf}"] if conf is not None else []
        seconds = ferrovis(mode, clip, *settings) - startup
        n, theirs = ultralytics(mode, conf)
        results[label] = (frames / seconds, n / theirs)
    print(f"{name} random init, {frames} frames 1280x720 mp4 at imgsz 640, CPU, 2 threads, "
          f"annotated video written by both")
    print(f"{'':<18} {'ferrovis frames/s':>18} {'Ultralytics frames/s':>21} {'ratio':>7}")
    for mode, (ours, theirs) in results.items():
        print(f"{mode:<18} {ours:>18.1f} {theirs:>21.1f} {ours / theirs:>7.2f}")
    print(f"ferrovis predict / Ultralytics predict: {results['predict'][0] / results['predict'][1]:.2f}"
          "  (target >= 1.5)")
    for side, i in (("ferrovis", 0), ("Ultralytics", 1)):
        added = results["predict"][i] / results["track"][i] - 1
        own = results["predict conf=0.1"][i] / results["track"][i] - 1
        print(f"{side}: tracking adds {100 * added:.1f} % per frame to predict, "
              f"{100 * own:.1f} % to predict at conf 0.1" + ("  (target <= 10 %)" if i == 0 else ""))
    print(f"(ferrovis' start-up, {startup:.2f} s, measured on one image and subtracted)")


if __name__ == "__main__":
    main()
