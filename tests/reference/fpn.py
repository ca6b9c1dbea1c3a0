"""torchvision's FeaturePyramidNetwork on seeded inputs, for the FPN parity test.

    fpn.py OUT_DIR

For each case (LastLevelMaxPool; LastLevelP6P7 from C5 and from P5; BatchNorm as Faster R-CNN
v2 builds it) writes OUT_DIR/<case>.pth (the state_dict) and OUT_DIR/<case>.safetensors (the
inputs in0…in3 and each output level out_<name>, eval mode). maxpool_legacy.pth is the
maxpool case's state_dict with the old spellings (inner_blocks.i.weight), as FPN checkpoints
before torchvision's version 2 have them.
"""
import os
import sys
from collections import OrderedDict

import torch
from safetensors.torch import save_file
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bn_stats import randomise_bn_stats  # noqa: E402

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
torch.set_num_threads(1)  # the Rust side runs single-threaded too: the same summation order
shapes = [(64, 40, 52), (128, 20, 26), (256, 10, 13), (512, 5, 7)]
feats = OrderedDict((str(i), torch.randn(2, c, h, w)) for i, (c, h, w) in enumerate(shapes))
channels = [c for c, _, _ in shapes]
cases = {
    "maxpool": FeaturePyramidNetwork(channels, 256, extra_blocks=LastLevelMaxPool()),
    "p6p7_c5": FeaturePyramidNetwork(channels, 256, extra_blocks=LastLevelP6P7(512, 256)),
    "p6p7_p5": FeaturePyramidNetwork(channels, 256, extra_blocks=LastLevelP6P7(256, 256)),
    "bn": FeaturePyramidNetwork(channels, 256, extra_blocks=LastLevelMaxPool(),
                                norm_layer=torch.nn.BatchNorm2d),
}
for name, m in cases.items():
    randomise_bn_stats(m, torch.Generator().manual_seed(2), affine=True)
    m.eval()
    torch.save(m.state_dict(), os.path.join(out, name + ".pth"))
    with torch.no_grad():
        y = m(feats)
    tensors = {f"in{i}": v for i, v in enumerate(feats.values())}
    tensors.update({f"out_{k}": v.contiguous() for k, v in y.items()})
    save_file(tensors, os.path.join(out, name + ".safetensors"))
    print(name, list(y.keys()))

legacy = OrderedDict(
    (k.replace(".0.weight", ".weight").replace(".0.bias", ".bias"), v)
    for k, v in cases["maxpool"].state_dict().items()
)
torch.save(legacy, os.path.join(out, "maxpool_legacy.pth"))
