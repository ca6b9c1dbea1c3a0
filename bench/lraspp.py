"""ferrovis vs torchvision: LR-ASPP MobileNetV3-Large inference (and FCN-ResNet50's for scale),
CPU, 2 threads, one invocation.

    python bench/lraspp.py [STEPS] [ROUNDS]   (defaults 20 and 4)

One image at 520×520 (the size torchvision's COCO_WITH_VOC_LABELS_V1 transforms resize to),
21 classes, random initialisation; a timed call is an eval-mode forward under no_grad, which is
what `segment predict` runs per image. ferrovis runs `cargo run --release -p ferrovis-segment
--example train_step -- lraspp mobilenet_v3_large 21 520 1 N <cl> eval`; torchvision runs its
`lraspp_mobilenet_v3_large` as a user writes it (NCHW) and in channels-last. The sides take
turns (ROUNDS rounds, each a fresh process or model with two warm-up calls, STEPS / ROUNDS timed
calls) because this machine's speed drifts; each figure is the median of all its timed calls.
Prints seconds per image and the ratio ferrovis (its faster layout) / torchvision (its faster
layout); the target is ≤ 1.0.
"""
import statistics
import sys
import time

import torch
import torchvision

from segment_train import ferrovis_step_times

SIZE, CLASSES = 520, 21


def torchvision_times(arch, steps, channels_last):
    torch.manual_seed(0)
    if arch == "lraspp":
        model = torchvision.models.segmentation.lraspp_mobilenet_v3_large(
            weights=None, weights_backbone=None, num_classes=CLASSES)
    else:
        model = torchvision.models.segmentation.fcn_resnet50(
            weights=None, weights_backbone=None, num_classes=CLASSES, aux_loss=True)
    model.eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    with torch.no_grad():
        for _ in range(steps + 2):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return times[2:]


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    per_round = max(1, steps // rounds)
    torch.set_num_threads(2)
    print(f"inference, 1 image {SIZE}x{SIZE}, CPU, 2 threads, median of {rounds} x {per_round} "
          f"calls taken in turns")
    print(f"{'model':<26}{'ferrovis NCHW':>14}{'ferrovis CL':>12}{'tv NCHW':>10}{'tv CL':>10}"
          f"{'ratio':>8}")
    for label, arch, encoder in [("LR-ASPP MobileNetV3-L", "lraspp", "mobilenet_v3_large"),
                                 ("FCN ResNet50", "fcn", "resnet50")]:
        ours, ours_cl, theirs, theirs_cl = [], [], [], []
        for _ in range(rounds):
            ours += ferrovis_step_times(arch, encoder, CLASSES, per_round, size=SIZE, batch=1,
                                        channels_last=False, mode="eval")
            ours_cl += ferrovis_step_times(arch, encoder, CLASSES, per_round, size=SIZE, batch=1,
                                           channels_last=True, mode="eval")
            theirs += torchvision_times(arch, per_round, channels_last=False)
            theirs_cl += torchvision_times(arch, per_round, channels_last=True)
        ours, ours_cl, theirs, theirs_cl = (statistics.median(t)
                                            for t in (ours, ours_cl, theirs, theirs_cl))
        ratio = min(ours, ours_cl) / min(theirs, theirs_cl)
        print(f"{label:<26}{ours:>14.4f}{ours_cl:>12.4f}{theirs:>10.4f}{theirs_cl:>10.4f}"
              f"{ratio:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
