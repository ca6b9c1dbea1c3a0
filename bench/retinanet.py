"""ferrovis vs torchvision: RetinaNet eval latency per image and one training step (batch 2,
forward + backward) for retinanet_resnet50_fpn and retinanet_resnet50_fpn_v2, same weights, same
inputs, 2 threads, in one invocation.

    python bench/retinanet.py          (from the repository root, after `make setup`)

Seeded torchvision models (91 classes, built with no weights) are saved with torch.save, with
two 480×640 images (resized to 800×1067 by the transform) and their boxes; the criterion bench
`detect/benches/retinanet.rs` loads them; torchvision is timed the same way (eval: one image under
no_grad; train: zero_grad, the two losses' sum, backward), median of 5 after a warm-up. Prints
both medians and the ratio ferrovis/torchvision (< 1 is faster).
"""
from torchvision.models.detection import retinanet_resnet50_fpn, retinanet_resnet50_fpn_v2

from detector_bench import compare

BUILDERS = {
    "retinanet_resnet50_fpn": retinanet_resnet50_fpn,
    "retinanet_resnet50_fpn_v2": retinanet_resnet50_fpn_v2,
}


def main():
    # A training step at 800 px takes seconds on two threads: 5 timed calls.
    compare(BUILDERS, 2, "retinanet", "FERROVIS_BENCH_RETINANET", runs=lambda arch, case: 5)


if __name__ == "__main__":
    main()
