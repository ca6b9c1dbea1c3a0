"""ONNX export, ferrovis against PyTorch's exporters, and which runtime to deploy YOLO on (CPU).

    python bench/onnx_export.py [--runs N]      (N: export runs per side, default 5)

(from the repository root, with the setup's Python: ~/.cache/ferrovis/torch-2.13.0/bin/python.)
Everything runs in this invocation, on 2 threads per side:

1. Export time of YOLOv8n at 640. Ultralytics builds `yolov8n.yaml` (seeded, as
   `bench/detect_predict.py` does) and saves a real checkpoint, which both sides export: whole
   commands (`python -c "YOLO(ckpt).export(format='onnx', simplify=False)"` against
   `detect export --weights ckpt --format onnx`, release build), and in process (Ultralytics'
   call, model loading included, against ferrovis' command less its process start, the time
   `detect --help` takes).
2. Export time of ResNet-50 (batch 1 at 224, opset 18, the model already built):
   `torch.onnx.export(..., dynamo=False)` against the criterion bench `core/benches/onnx_export.rs`.
3. No target, for choosing a runtime: ONNX Runtime's latency on our exported YOLOv8n (exported
   with `--dynamic batch`) against the libtorch forward it replaces (criterion bench
   `detect/benches/yolo_forward.rs`: network, box decoding, class probabilities), at batch 1 and
   batch 8.

Medians; the ratios are ferrovis / the other (< 1: ferrovis is faster).
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from detect_predict import ensure_ultralytics, random_model  # noqa: E402
from timing import median_seconds  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREADS = "2"


def criterion_median(group, name):
    path = os.path.join(ROOT, "target", "criterion", group, name, "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"] / 1e9


def cargo_bench(package, bench, env=None):
    env = dict(os.environ, OMP_NUM_THREADS=THREADS, RAYON_NUM_THREADS=THREADS, **(env or {}))
    subprocess.run(["cargo", "bench", "-p", package, "--bench", bench, "--", "--noplot"],
                   cwd=ROOT, check=True, env=env)


def median_of(runs, step):
    return median_seconds(step, runs)


def main():
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5
    ensure_ultralytics()
    import numpy as np
    import onnxruntime as ort
    import torch
    import torchvision
    from ultralytics import YOLO

    torch.set_num_threads(int(THREADS))
    work = tempfile.mkdtemp()
    ckpt = random_model("yolov8n", work)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "ferrovis-detect"], cwd=ROOT,
                   check=True)
    detect = os.path.join(ROOT, "target", "release", "detect")
    env = dict(os.environ, OMP_NUM_THREADS=THREADS)

    # 1. YOLOv8n export, whole commands.
    ours_onnx = os.path.join(work, "ours.onnx")

    def ours_export(*extra):
        subprocess.run([detect, "export", "--weights", ckpt, "--format", "onnx", "--imgsz", "640",
                        "--out", ours_onnx, *extra], check=True, capture_output=True, env=env)

    def theirs_export():
        YOLO(ckpt).export(format="onnx", imgsz=640, simplify=False, device="cpu", verbose=False)

    def theirs_command():
        code = ("import sys; from ultralytics import YOLO; YOLO(sys.argv[1]).export("
                "format='onnx', imgsz=640, simplify=False, device='cpu', verbose=False)")
        subprocess.run([sys.executable, "-c", code, ckpt], check=True, capture_output=True,
                       env=dict(env, YOLO_OFFLINE="1"))

    def process_start():
        subprocess.run([detect, "--help"], check=True, capture_output=True, env=env)

    yolo_ours = median_of(runs, ours_export)
    yolo_theirs_command = median_of(runs, theirs_command)
    yolo_theirs = median_of(runs, theirs_export)
    start = median_of(runs, process_start)

    # 2. ResNet-50 export, the model already built.
    cargo_bench("ferrovis-core", "onnx_export")
    resnet_ours = criterion_median("onnx_export", "resnet50")
    resnet = torchvision.models.resnet50().eval()
    x = torch.rand(1, 3, 224, 224)
    path = os.path.join(work, "torch-resnet50.onnx")

    def torch_export():
        torch.onnx.export(resnet, (x,), path, opset_version=18, dynamo=False,
                          do_constant_folding=True, input_names=["images"],
                          output_names=["output0"])

    resnet_theirs = median_of(runs, torch_export)

    # 3. ONNX Runtime on our YOLOv8n (free batch) against the libtorch forward.
    ours_export("--dynamic", "batch")
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(THREADS)
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(ours_onnx, options, providers=["CPUExecutionProvider"])
    ort_latency = {}
    for batch in (1, 8):
        images = np.random.rand(batch, 3, 640, 640).astype(np.float32)
        ort_latency[batch] = median_of(max(runs, 10), lambda: session.run(None, {"images": images}))
    cargo_bench("ferrovis-detect", "yolo_forward", {"FERROVIS_BENCH_WEIGHTS": ckpt})
    torch_latency = {b: criterion_median("yolo_forward", f"batch{b}") for b in (1, 8)}

    print()
    print("export time (median)                         ferrovis   other      ratio")
    print(f"YOLOv8n 640, whole commands                  {yolo_ours:7.2f} s  "
          f"{yolo_theirs_command:7.2f} s  {yolo_ours / yolo_theirs_command:.2f}x")
    ours_in_process = yolo_ours - start
    print(f"YOLOv8n 640, in process (ours: less the      {ours_in_process:7.2f} s  "
          f"{yolo_theirs:7.2f} s  {ours_in_process / yolo_theirs:.2f}x")
    print(f"  {start:.2f} s `detect --help` takes)")
    print(f"ResNet-50 224, export only vs torch.onnx     {resnet_ours:7.2f} s  {resnet_theirs:7.2f} s"
          f"  {resnet_ours / resnet_theirs:.2f}x")
    print()
    print("YOLOv8n 640 inference (median)    ONNX Runtime   libtorch (ferrovis)   ORT / libtorch")
    for b in (1, 8):
        print(f"batch {b}                           {ort_latency[b] * 1000:8.1f} ms  "
              f"{torch_latency[b] * 1000:10.1f} ms        {ort_latency[b] / torch_latency[b]:.2f}")


if __name__ == "__main__":
    main()
