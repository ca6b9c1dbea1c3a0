"""ferrovis vs Ultralytics: YOLO training throughput on the same data, CPU, one invocation.

    python bench/detect_train.py [--model yolo11n] [DATA_YAML]
        (default: yolov8n on ../shared/datasets/coco128/coco128.yaml)

Both train the model from scratch for 2 epochs at imgsz 320, batch 16, 2 loader workers, with their
default augmentation (mosaic, HSV, translate/scale, flips) and a validation pass per epoch; the
second epoch is timed (the first warms caches). Ultralytics is the setup environment's (see
bench/detect_predict.py). Prints training + validation images per second for both and the ratio
(target for YOLO11n: at least 1.5x Ultralytics').
"""
import csv
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from detect_predict import ROOT, ensure_ultralytics, model_arg  # noqa: E402

ARGS = dict(epochs=2, imgsz=320, batch=16, workers=2)


def main():
    name, rest = model_arg(sys.argv[1:])
    data = os.path.abspath(rest[0] if rest else os.path.join(
        ROOT, "..", "shared", "datasets", "coco128", "coco128.yaml"))
    ensure_ultralytics()
    import torch
    from ultralytics import YOLO

    import yaml

    torch.set_num_threads(2)
    work = tempfile.mkdtemp()
    # Ultralytics resolves a relative `path:` against its own datasets folder, not the YAML's:
    # give both sides a copy with the absolute path.
    with open(data) as f:
        cfg = yaml.safe_load(f)
    cfg["path"] = os.path.normpath(os.path.join(os.path.dirname(data), cfg.get("path", ".")))
    data = os.path.join(work, os.path.basename(data))
    with open(data, "w") as f:
        yaml.safe_dump(cfg, f)
    YOLO(f"{name}.yaml").train(data=data, device="cpu", plots=False, amp=False, project=work,
                               name="ultralytics", exist_ok=True, verbose=False, **ARGS)
    with open(os.path.join(work, "ultralytics", "results.csv")) as f:
        rows = [{k.strip(): v for k, v in r.items()} for r in csv.DictReader(f)]
    theirs = float(rows[-1]["time"]) - float(rows[-2]["time"])

    env = dict(os.environ, OMP_NUM_THREADS="2")
    subprocess.run(["cargo", "run", "--release", "-q", "-p", "ferrovis-detect", "--", "train",
                    f"data={data}", f"model={name}", f"project={work}", "name=ferrovis",
                    "device=cpu", *[f"{k}={v}" for k, v in ARGS.items()]],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL, env=env)
    with open(os.path.join(work, "ferrovis", "results.csv")) as f:
        ours = float(list(csv.DictReader(f))[-1]["seconds"])

    # Images per epoch: the training split plus the validation split.
    base = cfg["path"]
    count = sum(len([n for n in os.listdir(os.path.join(base, cfg[s]))
                     if n.lower().endswith((".jpg", ".jpeg", ".png"))]) for s in ("train", "val"))
    print(f"{name} from scratch, imgsz 320, batch 16, second of 2 epochs (train + val, {count} images)")
    print(f"{'':<12} {'seconds':>8} {'images/s':>9}")
    print(f"{'ferrovis':<12} {ours:>8.1f} {count / ours:>9.1f}")
    print(f"{'Ultralytics':<12} {theirs:>8.1f} {count / theirs:>9.1f}")
    print(f"ratio ferrovis/Ultralytics images/s: {theirs / ours:.2f}x")


if __name__ == "__main__":
    main()
