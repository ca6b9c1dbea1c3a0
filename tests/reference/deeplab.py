"""torchvision's deeplabv3_resnet50 (random init, seeded, BatchNorm statistics randomised so they
matter), its state_dict saved with torch.save, and its eval-mode outputs (main and aux) for a fixed
input: tests/tests/segment_reference.rs loads the weights by name and compares.

    python deeplab.py OUT_DIR
"""
import os
import sys

import torch
import torchvision
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bn_stats import randomise_bn_stats  # noqa: E402


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    m = torchvision.models.segmentation.deeplabv3_resnet50(
        weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    g = torch.Generator().manual_seed(1)
    randomise_bn_stats(m, g)
    m.eval()
    torch.save(m.state_dict(), os.path.join(out, "weights.pth"))
    x = torch.rand(1, 3, 67, 90, generator=g)
    with torch.no_grad():
        y = m(x)
    save_file({"input": x, "out": y["out"].contiguous(), "aux": y["aux"].contiguous()},
              os.path.join(out, "expected.safetensors"))
    print("parameters", sum(p.numel() for p in m.parameters()))


if __name__ == "__main__":
    main(sys.argv[1])
