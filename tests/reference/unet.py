"""A U-Net in plain PyTorch with the layout and state-dict names of segmentation_models.pytorch
(smp) `Unet(encoder_name="resnet34")`, written from its documented structure: a torchvision ResNet
without `fc` as `encoder`, five decoder blocks (256, 128, 64, 32, 16 channels; nearest ×2
upsampling, concatenation with the skip, two Conv-BN-ReLU), a 3×3 `segmentation_head`.
Used by tests/reference/segment.py and bench/segment_train.py.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


class ConvBnRelu(nn.Sequential):
    def __init__(self, c_in, c_out):
        super().__init__(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class DecoderBlock(nn.Module):
    def __init__(self, c_in, c_skip, c_out):
        super().__init__()
        self.conv1 = ConvBnRelu(c_in + c_skip, c_out)
        self.conv2 = ConvBnRelu(c_out, c_out)

    def forward(self, x, skip=None):
        size = skip.shape[-2:] if skip is not None else (2 * x.shape[-2], 2 * x.shape[-1])
        x = F.interpolate(x, size=size, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], 1)
        return self.conv2(self.conv1(x))


class ResNetEncoder(torchvision.models.ResNet):
    def __init__(self, block, layers):
        super().__init__(block, layers)
        del self.fc

    def forward(self, x):
        f1 = self.relu(self.bn1(self.conv1(x)))
        f2 = self.layer1(self.maxpool(f1))
        f3 = self.layer2(f2)
        f4 = self.layer3(f3)
        f5 = self.layer4(f4)
        return [f1, f2, f3, f4, f5]


class Decoder(nn.Module):
    def __init__(self, channels):  # encoder channels, fine to coarse (strides 2..32)
        super().__init__()
        widths = [256, 128, 64, 32, 16]
        c_in = channels[-1]
        skips = list(reversed(channels[:-1])) + [0]
        blocks = []
        for c_skip, c_out in zip(skips, widths):
            blocks.append(DecoderBlock(c_in, c_skip, c_out))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)


class Unet(nn.Module):
    def __init__(self, encoder="resnet34", classes=1):
        super().__init__()
        block, layers, channels = {
            "resnet18": (torchvision.models.resnet.BasicBlock, [2, 2, 2, 2], [64, 64, 128, 256, 512]),
            "resnet34": (torchvision.models.resnet.BasicBlock, [3, 4, 6, 3], [64, 64, 128, 256, 512]),
        }[encoder]
        self.encoder = ResNetEncoder(block, layers)
        self.decoder = Decoder(channels)
        self.segmentation_head = nn.Sequential(nn.Conv2d(16, classes, 3, padding=1))

    def forward(self, x):
        feats = self.encoder(x)
        y = feats[-1]
        skips = list(reversed(feats[:-1]))
        for i, block in enumerate(self.decoder.blocks):
            y = block(y, skips[i] if i < len(skips) else None)
        return self.segmentation_head(y)
