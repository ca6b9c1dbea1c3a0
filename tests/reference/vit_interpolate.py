"""Reference for ferrovis' ViT positional-embedding resize: a seeded vit_b_16 positional embedding
at 224 px (1 × 197 × 768) resized by torchvision's interpolate_embeddings to 384 px (24 × 24
patches) and to 160 px (10 × 10: a shrink).

    vit_interpolate.py OUT.safetensors

OUT holds pos (the input), pos_384 and pos_160.
"""
import sys

import torch
from safetensors.torch import save_file
from torchvision.models.vision_transformer import interpolate_embeddings

torch.manual_seed(0)
pos = torch.randn(1, 197, 768) * 0.02
out = {"pos": pos}
for size in (384, 160):
    state = interpolate_embeddings(size, 16, {"encoder.pos_embedding": pos.clone()})
    out[f"pos_{size}"] = state["encoder.pos_embedding"].contiguous()
save_file(out, sys.argv[1])
