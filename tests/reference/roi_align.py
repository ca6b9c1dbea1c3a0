"""torchvision.ops.roi_align and MultiScaleRoIAlign on seeded random inputs, for the RoIAlign
parity test.

    roi_align.py OUT.safetensors

Writes the inputs, a random output gradient, and torchvision's outputs and input gradients:
- roi_align on a (2, 3, 11, 14) feature map with 40 RoIs (some partly or wholly outside the map,
  some smaller than a cell, some on the border), spatial scale 0.5, for aligned False/True and
  sampling ratio 2 and adaptive (0), output 5×4;
- MultiScaleRoIAlign(7, sampling 2) on four levels of an 800×1024 image batch (strides 4…32,
  4 channels), 60 boxes of 4…900 pixels spread over every level, with images of different sizes.
"""
import sys

import torch
from safetensors.torch import save_file
from torchvision import ops

g = torch.Generator().manual_seed(5)
out = {}

feat = torch.randn(2, 3, 11, 14, generator=g, dtype=torch.float32)
n = 40
xy = torch.rand(n, 2, generator=g) * torch.tensor([36.0, 28.0]) - 4.0
wh = torch.rand(n, 2, generator=g) * 14.0
wh[:6] *= 0.05  # smaller than a cell
xy[6] = torch.tensor([-9.0, -9.0])  # wholly outside (above-left)
wh[6] = torch.tensor([3.0, 3.0])
xy[7] = torch.tensor([27.0, 21.0])  # ends on the last cell
wh[7] = torch.tensor([1.0, 1.0])
boxes = torch.cat([xy, xy + wh], 1)
batch = torch.randint(0, 2, (n, 1), generator=g).float()
rois = torch.cat([batch, boxes], 1)
out.update({"feat": feat, "rois": rois})
for aligned in (False, True):
    for ratio in (2, 0):
        key = f"{'a' if aligned else 'u'}{ratio}"
        x = feat.clone().requires_grad_(True)
        y = ops.roi_align(x, rois, (5, 4), spatial_scale=0.5, sampling_ratio=ratio, aligned=aligned)
        grad = torch.rand(y.shape, generator=g)
        y.backward(grad)
        out["out_" + key] = y.detach()
        out["gout_" + key] = grad
        out["gin_" + key] = x.grad

# Four FPN levels of two images padded to 800×1024; the second image is 704×960.
shapes = [(200, 256), (100, 128), (50, 64), (25, 32)]
levels = [torch.randn(2, 4, h, w, generator=g) for h, w in shapes]
per_image = []
for i in range(2):
    m = 30
    size = torch.exp(torch.rand(m, generator=g) * (torch.log(torch.tensor(900.0)) - torch.log(torch.tensor(4.0)))) * 4.0
    aspect = torch.exp(torch.randn(m, generator=g) * 0.4)
    w, h = size * aspect.sqrt(), size / aspect.sqrt()
    cx = torch.rand(m, generator=g) * 960.0
    cy = torch.rand(m, generator=g) * 704.0
    per_image.append(torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1))
image_sizes = [(800, 1024), (704, 960)]
pooler = ops.MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
xs = [t.clone().requires_grad_(True) for t in levels]
y = pooler({str(i): t for i, t in enumerate(xs)}, per_image, image_sizes)
grad = torch.rand(y.shape, generator=g)
y.backward(grad)
for i in range(4):
    out[f"ms_level{i}"] = levels[i]
    out[f"ms_gin{i}"] = xs[i].grad
for i in range(2):
    out[f"ms_boxes{i}"] = per_image[i]
out["ms_out"] = y.detach()
out["ms_gout"] = grad
out["ms_levels"] = pooler.map_levels(per_image)
out["ms_scales"] = torch.tensor(pooler.scales, dtype=torch.float64)
save_file({k: v.contiguous() for k, v in out.items()}, sys.argv[1])
