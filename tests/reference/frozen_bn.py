"""torchvision's ResNet-50 with FrozenBatchNorm2d, for the frozen-BatchNorm parity test.

    frozen_bn.py OUT_DIR

OUT_DIR/resnet50_bn.pth is an ordinary ResNet-50 state_dict (BatchNorm, num_batches_tracked
included) with randomised statistics; for eps 1e-5 and 0.0, OUT_DIR/frozen_<eps>.safetensors holds
the input and the logits and layer4 output of resnet50(norm_layer=FrozenBatchNorm2d(eps)) loaded
from it (as torchvision's detection models load an ImageNet checkpoint), and counts.json its
parameter count. For MobileNetV3-Large (what fasterrcnn_mobilenet_v3_large_fpn builds), the same:
OUT_DIR/mobilenet_v3_large_bn.pth, and OUT_DIR/mnv3_frozen.safetensors with the logits of
mobilenet_v3_large(norm_layer=FrozenBatchNorm2d) (eps 1e-5) loaded from it; and the running means
of its first BatchNorm after one training-mode forward with SSDlite's BatchNorm(eps 0.001,
momentum 0.03), `mnv3_momentum.safetensors`.
"""
import json
import os
import sys
from functools import partial

import torch
import torchvision
from safetensors.torch import save_file
from torchvision.ops.misc import FrozenBatchNorm2d

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bn_stats import randomise_bn_stats  # noqa: E402

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.set_num_threads(1)  # the Rust side runs single-threaded too: the same summation order
torch.manual_seed(0)
m = torchvision.models.resnet50()
randomise_bn_stats(m, torch.Generator().manual_seed(2), affine=True)
with torch.no_grad():
    for b in m.modules():
        if isinstance(b, torch.nn.BatchNorm2d):
            b.num_batches_tracked.fill_(5)
sd = m.state_dict()
torch.save(sd, os.path.join(out, "resnet50_bn.pth"))
x = torch.randn(2, 3, 96, 96)
counts = {}
for eps, tag in ((1e-5, "1e-5"), (0.0, "0")):
    f = torchvision.models.resnet50(norm_layer=partial(FrozenBatchNorm2d, eps=eps))
    f.load_state_dict(sd)
    f.eval()
    feats = {}
    f.layer4.register_forward_hook(lambda mod, i, o: feats.__setitem__("layer4", o))
    with torch.no_grad():
        logits = f(x)
    save_file({"input": x, "logits": logits, "layer4": feats["layer4"].contiguous()},
              os.path.join(out, f"frozen_{tag}.safetensors"))
    counts[tag] = sum(p.numel() for p in f.parameters())

m3 = torchvision.models.mobilenet_v3_large()
randomise_bn_stats(m3, torch.Generator().manual_seed(4), affine=True)
sd3 = m3.state_dict()
torch.save(sd3, os.path.join(out, "mobilenet_v3_large_bn.pth"))
f3 = torchvision.models.mobilenet_v3_large(norm_layer=FrozenBatchNorm2d)
f3.load_state_dict(sd3)
f3.eval()
x3 = torch.randn(2, 3, 96, 96)
with torch.no_grad():
    save_file({"input": x3, "logits": f3(x3)}, os.path.join(out, "mnv3_frozen.safetensors"))
counts["mnv3_frozen"] = sum(p.numel() for p in f3.parameters())
b3 = torchvision.models.mobilenet_v3_large(norm_layer=partial(torch.nn.BatchNorm2d, eps=0.001, momentum=0.03))
b3.load_state_dict(sd3)
b3.train()
with torch.no_grad():
    b3(x3)
save_file({"running_mean": b3.features[0][1].running_mean.clone(),
           "running_var": b3.features[0][1].running_var.clone()},
          os.path.join(out, "mnv3_momentum.safetensors"))
with open(os.path.join(out, "counts.json"), "w") as fh:
    json.dump(counts, fh)
print(counts)
