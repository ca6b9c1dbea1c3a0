"""DeepLabV3+ (Chen et al., 2018) in PyTorch, laid out as ferrovis' segment/src/deeplabv3plus.rs
(state-dict names `backbone.*`, `decoder.aspp.*`, `decoder.low_level.*`, `decoder.fuse.*`,
`segmentation_head.*`), built from the paper's description on torchvision's parts: a ResNet at
output stride 16 (`replace_stride_with_dilation=[False, False, True]`), torchvision's ASPP at rates
6/12/18 with dropout 0.1 after its projection, the stride-4 features reduced to 48 channels, two
3×3 256-channel conv-BN-ReLU, a 1×1 classifier, bilinear upsampling (align_corners=False).
bench/segment_train.py trains it; run as a script it writes a seeded model and its eval outputs
for tests/tests/suite/segment_reference.rs:

    python deeplabv3plus.py OUT_DIR
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import ASPP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bn_stats import randomise_bn_stats  # noqa: E402


def conv_bn_relu(c_in, c_out, k):
    return [nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


class Decoder(nn.Module):
    def __init__(self, c_low, c_high):
        super().__init__()
        self.aspp = ASPP(c_high, [6, 12, 18], 256)
        self.aspp.project[3].p = 0.1
        self.low_level = nn.Sequential(*conv_bn_relu(c_low, 48, 1))
        self.fuse = nn.Sequential(*conv_bn_relu(256 + 48, 256, 3), *conv_bn_relu(256, 256, 3))


class DeepLabV3Plus(nn.Module):
    def __init__(self, encoder="resnet50", num_classes=21):
        super().__init__()
        resnet = getattr(torchvision.models, encoder)(
            weights=None, replace_stride_with_dilation=[False, False, True])
        self.backbone = IntermediateLayerGetter(resnet, {"layer1": "low", "layer4": "out"})
        c_low, c_high = resnet.layer1[-1].conv1.in_channels, resnet.fc.in_features
        self.decoder = Decoder(c_low, c_high)
        self.segmentation_head = nn.Conv2d(256, num_classes, 1)

    def forward(self, x):
        feats = self.backbone(x)
        low = self.decoder.low_level(feats["low"])
        high = F.interpolate(self.decoder.aspp(feats["out"]), size=low.shape[-2:],
                             mode="bilinear", align_corners=False)
        y = self.decoder.fuse(torch.cat([high, low], 1))
        return F.interpolate(self.segmentation_head(y), size=x.shape[-2:], mode="bilinear",
                             align_corners=False)


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    m = DeepLabV3Plus("resnet50", 21)
    g = torch.Generator().manual_seed(1)
    randomise_bn_stats(m, g)
    m.eval()
    torch.save(m.state_dict(), os.path.join(out, "weights.pth"))
    x = torch.rand(1, 3, 67, 90, generator=g)
    with torch.no_grad():
        y = m(x)
    save_file({"input": x, "out": y.contiguous()}, os.path.join(out, "expected.safetensors"))
    print("parameters", sum(p.numel() for p in m.parameters()))


if __name__ == "__main__":
    main(sys.argv[1])
