"""ferrovis vs torchvision: FCOS eval latency per image and one training step (batch 2, forward +
backward) at its default input size (800/1333), same weights, same inputs, 2 threads, in one
invocation.

    python bench/fcos.py          (from the repository root, after `make setup`)

A seeded torchvision fcos_resnet50_fpn (91 classes, plain BatchNorm as built without weights) is
saved with torch.save, with two 480×640 images and their boxes; the criterion bench
`detect/benches/fcos.rs` loads them; torchvision is timed the same way (eval: one image under
no_grad; train: zero_grad, the three losses' sum, backward), median of 5 after a warm-up. Prints
both medians and the ratio ferrovis/torchvision (< 1 is faster).
"""
from torchvision.models.detection import fcos_resnet50_fpn

from detector_bench import compare


def main():
    # A training step at 800 px takes seconds: 5 timed calls.
    compare({"fcos_resnet50_fpn": fcos_resnet50_fpn}, 2, "fcos", "FERROVIS_BENCH_FCOS",
            runs=lambda arch, case: 5)


if __name__ == "__main__":
    main()
