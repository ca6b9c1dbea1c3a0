"""torchvision's BalancedPositiveNegativeSampler after torch.manual_seed, for the sampler test.

    sampler.py OUT.safetensors

Labels of three images (1 positive, 0 negative, -1 ignored): many positives, fewer positives
than the fraction allows, and no positives. For each sampler setting (256, 0.5) and (512, 0.25),
the global generator is seeded with 5 and the masks of all three images are drawn in order.
"""
import sys

import torch
from safetensors.torch import save_file
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler

g = torch.Generator().manual_seed(1)
labels = [
    torch.randint(-1, 2, (2000,), generator=g),
    torch.where(torch.rand(1500, generator=g) < 0.02, 1, torch.randint(-1, 1, (1500,), generator=g)),
    torch.randint(-1, 1, (800,), generator=g),
]
out = {f"labels{i}": l for i, l in enumerate(labels)}
for size, fraction in ((256, 0.5), (512, 0.25)):
    torch.manual_seed(5)
    pos, neg = BalancedPositiveNegativeSampler(size, fraction)(labels)
    for i, (p, n) in enumerate(zip(pos, neg)):
        out[f"pos_{size}_{i}"] = p
        out[f"neg_{size}_{i}"] = n
save_file(out, sys.argv[1])
