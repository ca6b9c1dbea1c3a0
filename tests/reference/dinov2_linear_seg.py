"""Reference for DINOv2's linear segmentation probe (tests/tests/suite/dinov2.rs): the probe as
DINOv2's segmentation evaluation builds it, on transformers' `Dinov2Model`.

The image is padded as DINOv2's `CenterPadding(14)` pads it (each side to the next multiple of
14, the odd pixel right/bottom); the encoder's patch tokens after its final norm, on their grid,
go through BatchNorm (MMSegmentation's `BNHead`, eval mode) and a 1x1 convolution (`conv_seg`),
and the logits are resized bilinearly (align_corners=False) to the unpadded size. The head is
seeded (BatchNorm statistics and affine randomised).

    python dinov2_linear_seg.py OUT.safetensors SNAPSHOT   (a facebook/dinov2-* snapshot folder)
"""
import math
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import Dinov2Model

CLASSES = 3
SIZES = [(60, 50), (56, 84)]


def center_pad(x, multiple=14):
    pads = []
    for size in x.shape[:1:-1]:  # width, then height, as F.pad takes them
        total = math.ceil(size / multiple) * multiple - size
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def main():
    out, snapshot = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    model = Dinov2Model.from_pretrained(snapshot).eval()
    width = model.config.hidden_size
    gen = torch.Generator().manual_seed(41)
    bn = torch.nn.BatchNorm2d(width)
    conv = torch.nn.Conv2d(width, CLASSES, 1)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(width, generator=gen) + 0.5)
        bn.bias.copy_(torch.randn(width, generator=gen) * 0.1)
        bn.running_mean.copy_(torch.randn(width, generator=gen) * 0.1)
        bn.running_var.copy_(torch.rand(width, generator=gen) + 0.5)
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * 0.05)
        conv.bias.copy_(torch.randn(CLASSES, generator=gen) * 0.1)
    bn.eval()
    tensors = {
        "decode_head.bn.weight": bn.weight.detach(),
        "decode_head.bn.bias": bn.bias.detach(),
        "decode_head.bn.running_mean": bn.running_mean,
        "decode_head.bn.running_var": bn.running_var,
        "decode_head.conv_seg.weight": conv.weight.detach(),
        "decode_head.conv_seg.bias": conv.bias.detach(),
    }
    for h, w in SIZES:
        x = torch.randn(2, 3, h, w, generator=gen)
        with torch.no_grad():
            padded = center_pad(x)
            gh, gw = padded.shape[2] // 14, padded.shape[3] // 14
            tokens = model(pixel_values=padded).last_hidden_state[:, 1:, :]
            grid = tokens.transpose(1, 2).reshape(2, width, gh, gw)
            logits = F.interpolate(conv(bn(grid)), size=(h, w), mode="bilinear",
                                   align_corners=False)
        tensors[f"input_{h}x{w}"] = x
        tensors[f"logits_{h}x{w}"] = logits.contiguous()
        print(f"{h}x{w}: padded to {tuple(padded.shape[2:])}, logits {tuple(logits.shape)}")
    save_file({k: v.contiguous() for k, v in tensors.items()}, out)


if __name__ == "__main__":
    main()
