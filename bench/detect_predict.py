"""ferrovis vs Ultralytics: `predict` latency per image at 640 on the CPU, same random-init model.

    python bench/detect_predict.py [--model yolo11n] [IMAGES_DIR]
        (default: yolov8n on ../shared/datasets/coco128/images/train2017)

Ultralytics is a test oracle of the setup's environment; where it is missing this script installs
it (no torch: it uses this environment's) into ~/.cache/ferrovis/bench-ultralytics and imports it
from there. Both sides then run in this invocation:

1. Ultralytics builds the model from its yaml (`yolov8n.yaml`, `yolo11n.yaml`; seeded) and saves it
   with `Model.save`: a real
   Ultralytics checkpoint (pickled DetectionModel, float16), which ferrovis loads as it is.
2. Ultralytics predicts each image (`model.predict(path, imgsz=640)`), timed two ways: the sum of
   its own preprocess + inference + postprocess times (which leave out reading the file), and the
   wall time of the call (reading and decoding the file included, as ferrovis' time includes it).
3. `detect predict --weights that.pt` (release build) predicts the same images; its per-image time
   covers reading and decoding, letterbox, inference and NMS (drawing and writing excluded, as
   both of Ultralytics' times exclude them).
4. Medians (the first image dropped as warm-up), both ratios, and the top detections of both on
   the first image at conf 1e-6 (same weights, same preprocessing: they should agree).
Both use 2 threads.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ULTRA = os.path.expanduser("~/.cache/ferrovis/bench-ultralytics")
DEPS = ["ultralytics", "ultralytics-thop", "matplotlib", "opencv-python-headless", "pyyaml",
        "requests", "scipy", "tqdm", "psutil", "polars", "polars-runtime-32", "pillow", "cycler",
        "kiwisolver", "pyparsing", "fonttools", "contourpy", "python-dateutil", "six",
        "charset-normalizer", "idna", "urllib3", "certifi", "packaging"]


def ensure_ultralytics():
    os.environ.setdefault("YOLO_OFFLINE", "1")
    try:
        import ultralytics  # noqa: F401
        return
    except ImportError:
        pass
    if not os.path.isdir(os.path.join(ULTRA, "ultralytics")):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", ULTRA,
                        "--no-deps", *DEPS], check=True)
    sys.path.insert(0, ULTRA)
    os.environ.setdefault("YOLO_OFFLINE", "1")


def model_arg(argv):
    """`--model NAME` out of argv (default yolov8n); the rest."""
    if "--model" in argv:
        i = argv.index("--model")
        return argv[i + 1], argv[:i] + argv[i + 2:]
    return "yolov8n", argv


def random_model(name, work):
    """Ultralytics' `name.yaml`, seeded and perturbed, saved as a checkpoint in `work`: its path."""
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    model = YOLO(f"{name}.yaml")
    head = f"model.{len(model.model.model) - 1}.cv3."
    # Ultralytics' initialisation gives every anchor nearly the same class score (its bias
    # prior), so rankings tie; noise on the weights and spread class biases make the outputs
    # distinct and comparable.
    with torch.no_grad():
        for pname, p in model.model.named_parameters():
            p.add_(torch.randn_like(p) * 0.02)
            if pname.startswith(head) and pname.endswith(".2.bias"):
                p.copy_(torch.randn_like(p) - 3.0)
    ckpt = os.path.join(work, f"{name}-random.pt")
    model.save(ckpt)
    return ckpt


def main():
    name, rest = model_arg(sys.argv[1:])
    images = rest[0] if rest else os.path.join(
        ROOT, "..", "shared", "datasets", "coco128", "images", "train2017")
    files = sorted(os.path.join(images, f) for f in os.listdir(images)
                   if f.lower().endswith((".jpg", ".jpeg", ".png")))[:21]
    ensure_ultralytics()
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(2)
    work = tempfile.mkdtemp()
    ckpt = random_model(name, work)
    # Predict from the saved file, as ferrovis does: float16 weights widened to float32.
    model = YOLO(ckpt)

    theirs, theirs_wall = [], []
    for f in files:
        start = time.perf_counter()
        r = model.predict(f, imgsz=640, device="cpu", verbose=False)[0]
        theirs_wall.append((time.perf_counter() - start) * 1000)
        theirs.append(sum(r.speed.values()))
    r0 = model.predict(files[0], imgsz=640, device="cpu", conf=1e-6, verbose=False)[0]
    top_theirs = [(int(c), round(float(s), 4), [round(float(v), 1) for v in b])
                  for b, s, c in zip(r0.boxes.xyxy[:5], r0.boxes.conf[:5], r0.boxes.cls[:5])]

    folder = os.path.join(work, "images")
    os.makedirs(folder)
    for i, f in enumerate(files):
        os.symlink(f, os.path.join(folder, f"{i:03d}" + os.path.splitext(f)[1]))
    env = dict(os.environ, OMP_NUM_THREADS="2")

    def ferrovis(out_dir, *args):
        cmd = ["cargo", "run", "--release", "-q", "-p", "ferrovis-detect", "--", "predict",
               "--weights", ckpt, "--out", os.path.join(work, out_dir), *args]
        return subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True,
                              env=env).stdout

    out = ferrovis("ours", folder, "imgsz=640")
    ours = [float(m) for m in re.findall(r"\(([0-9.]+) ms\)", out)]
    ferrovis("first", files[0], "imgsz=640", "conf=0.000001")
    with open(os.path.join(work, "first", "predictions.json")) as fh:
        dets = json.load(fh)[0]["detections"][:5]
    top_ours = [(d["class"], round(d["confidence"], 4), [round(v, 1) for v in d["xyxy"]]) for d in dets]

    t_med, o_med = statistics.median(theirs[1:]), statistics.median(ours[1:])
    w_med = statistics.median(theirs_wall[1:])
    print(f"{name} random init, {len(files) - 1} images at imgsz 640 (after one warm-up), CPU, 2 threads")
    print(f"{'':<34} {'median ms/image':>16}")
    print(f"{'ferrovis (read + predict)':<34} {o_med:>16.1f}")
    print(f"{'Ultralytics speed (no reading)':<34} {t_med:>16.1f}")
    print(f"{'Ultralytics wall (read + predict)':<34} {w_med:>16.1f}")
    target = 0.6 if name.startswith(("yolo11", "yolo26")) else 0.8
    print(f"ferrovis time / Ultralytics speed: {o_med / t_med:.2f}  (target <= {target})")
    print(f"ferrovis time / Ultralytics wall time: {o_med / w_med:.2f}")
    print("top detections on", os.path.basename(files[0]), "(class, conf, xyxy):")
    for a, b in zip(top_ours, top_theirs):
        print(f"  ferrovis {a}   Ultralytics {b}")


if __name__ == "__main__":
    main()
