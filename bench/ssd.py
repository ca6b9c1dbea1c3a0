"""ferrovis vs torchvision: SSD eval latency per image and one training step (batch 8, forward +
backward) for ssdlite320_mobilenet_v3_large and ssd300_vgg16, same weights, same inputs,
2 threads, in one invocation.

    python bench/ssd.py          (from the repository root, after `make setup`)

Seeded torchvision models (91 classes, built with no weights) are saved with torch.save, with
eight 480×640 images and their boxes; the criterion bench `detect/benches/ssd.rs` loads them;
torchvision is timed the same way (eval: one image under no_grad; train: zero_grad, the two
losses' sum, backward), median of 10 (SSD300's training step: 5) after a warm-up. Prints both
medians and the ratio ferrovis/torchvision (< 1 is faster).
"""
from torchvision.models.detection import ssd300_vgg16, ssdlite320_mobilenet_v3_large

from detector_bench import compare

BUILDERS = {
    "ssdlite320_mobilenet_v3_large": ssdlite320_mobilenet_v3_large,
    "ssd300_vgg16": ssd300_vgg16,
}


def main():
    # SSD300's training step takes seconds: 5 timed calls.
    compare(BUILDERS, 8, "ssd", "FERROVIS_BENCH_SSD",
            runs=lambda arch, case: 5 if (arch, case) == ("ssd300_vgg16", "train_step") else 10)


if __name__ == "__main__":
    main()
