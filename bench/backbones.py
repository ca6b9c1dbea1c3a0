"""ferrovis vs torchvision: forward (eval) and forward+backward (train) of backbones, batch 8 at
224 on the CPU, in one invocation with the same thread count, each side in both memory layouts
(contiguous and channels-last); the ratio compares each side's faster layout.

    python bench/backbones.py                 resnet18, mobilenet_v2 (eval, train)
    python bench/backbones.py --zoo           ConvNeXt-T, ViT-B/16, Swin-T, EfficientNetV2-S and
                                              RegNet-Y-1.6GF in eval; ConvNeXt-T and ViT-B/16 in train
    python bench/backbones.py NAME:MODE ...   any backbones (MODE eval or train)

(from the repository root, after `make setup`; FERROVIS_BENCH_THREADS sets the thread count,
default all cores.) Runs the criterion bench `core/benches/backbones.rs`, reads its medians, times
the same work in PyTorch (median of as many runs), and prints both and the ratio ferrovis/PyTorch
(< 1 is faster).
"""
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torchvision

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = [(m, mode) for m in ("resnet18", "mobilenet_v2") for mode in ("eval", "train")]
ZOO = [(m, "eval") for m in ("convnext_tiny", "vit_b_16", "swin_t", "efficientnet_v2_s",
                              "regnet_y_1_6gf")] + [("convnext_tiny", "train"), ("vit_b_16", "train")]
LAYOUTS = ("", "cl")


def ferrovis_medians(cases, threads):
    spec = ",".join(f"{m}:{mode}" + (f":{lay}" if lay else "") for m, mode in cases for lay in LAYOUTS)
    env = dict(os.environ, FERROVIS_BENCH_BACKBONES=spec, RAYON_NUM_THREADS=str(threads),
               OMP_NUM_THREADS=str(threads))
    subprocess.run(["cargo", "bench", "-p", "ferrovis-core", "--bench", "backbones", "--", "--noplot"],
                   cwd=ROOT, check=True, env=env)
    out = {}
    for model, mode in cases:
        for lay in LAYOUTS:
            ident = f"{mode}_{lay}" if lay else mode
            path = os.path.join(ROOT, "target", "criterion", model, ident, "new", "estimates.json")
            with open(path) as f:
                out[(model, mode, lay)] = json.load(f)["median"]["point_estimate"] / 1e9
    return out


def torch_median(model_name, mode, layout, runs=10):
    model = torchvision.models.get_model(model_name)
    x = torch.randn(8, 3, 224, 224)
    if layout == "cl":
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    if mode == "eval":
        model.eval()

        def step():
            with torch.no_grad():
                model(x)
    else:
        model.train()

        def step():
            model(x).mean().backward()
            model.zero_grad(set_to_none=False)
    for _ in range(2):
        step()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    args = sys.argv[1:]
    if args == ["--zoo"]:
        cases = ZOO
    elif args:
        cases = [tuple(a.split(":")) for a in args]
    else:
        cases = DEFAULT
    threads = int(os.environ.get("FERROVIS_BENCH_THREADS", os.cpu_count()))
    torch.set_num_threads(threads)
    ours = ferrovis_medians(cases, threads)
    print(f"\nbatch 8, 224x224, CPU, {threads} threads; medians in ms (contiguous / channels-last)")
    print(f"{'model':<20}{'mode':<7}{'ferrovis':>18}{'PyTorch':>18}{'best/best':>11}")
    for model, mode in cases:
        theirs = {lay: torch_median(model, mode, lay) for lay in LAYOUTS}
        mine = {lay: ours[(model, mode, lay)] for lay in LAYOUTS}
        fmt = lambda d: f"{d[''] * 1e3:.0f} / {d['cl'] * 1e3:.0f}"
        ratio = min(mine.values()) / min(theirs.values())
        print(f"{model:<20}{mode:<7}{fmt(mine):>18}{fmt(theirs):>18}{ratio:>11.3f}")


if __name__ == "__main__":
    sys.exit(main())
