"""ferrovis vs torchvision: Faster R-CNN eval latency per image and one training step (batch 2,
forward + backward) at each architecture's default input size, same weights, same inputs,
2 threads, in one invocation.

    python bench/faster_rcnn.py          (from the repository root, after `make setup`)

For fasterrcnn_mobilenet_v3_large_320_fpn (320/640) and fasterrcnn_resnet50_fpn (800/1333),
seeded torchvision models (91 classes, plain BatchNorm as built without weights) are saved with
torch.save, with two 480×640 images and their boxes; the criterion bench
`detect/benches/faster_rcnn.rs` loads them; torchvision is timed the same way (eval: one image
under no_grad; train: zero_grad, the four losses' sum, backward), median of 10 after a warm-up.
Prints both medians and the ratio ferrovis/torchvision (< 1 is faster).
"""
from torchvision.models.detection import (fasterrcnn_mobilenet_v3_large_320_fpn,
                                          fasterrcnn_resnet50_fpn)

from detector_bench import compare

BUILDERS = {
    "fasterrcnn_mobilenet_v3_large_320_fpn": fasterrcnn_mobilenet_v3_large_320_fpn,
    "fasterrcnn_resnet50_fpn": fasterrcnn_resnet50_fpn,
}


def main():
    compare(BUILDERS, 2, "faster_rcnn", "FERROVIS_BENCH_FRCNN")


if __name__ == "__main__":
    main()
