"""Reference for tests/tests/suite/dinov2.rs: DINOv2 checkpoints as the Hugging Face Hub holds
them (transformers' `facebook/dinov2-*` and timm's `vit_*_patch14_dinov2`), made here with no
download, and their tokens.

Each case is a seeded model at its published size (ViT-S/14, with and without registers; ViT-g
is too large for the test and is checked by a two-block SwiGLU model instead), its norms, layer
scales and tokens randomised, saved as its library saves it (transformers' `save_pretrained`
with the `BitImageProcessor` the Hub repositories ship, timm's `save_for_hf`) into a Hugging Face
cache laid out as huggingface_hub lays it. Beside it, `<case>.safetensors` holds seeded inputs at
224² and 280² (and 224×294 for one) and the class and patch tokens (after the final norm, eval
mode) the library computes for each.

    python dinov2.py OUT [dinov2-small]   (the one case only: what the workflow test needs)
"""
import json
import os
import sys

import timm
import torch
from safetensors.torch import save_file
from timm.models import save_for_hf
from transformers import (BitImageProcessor, Dinov2Config, Dinov2Model,
                          Dinov2WithRegistersConfig, Dinov2WithRegistersModel)

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
SMALL = dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, image_size=518,
             patch_size=14)
SIZES = [(224, 224), (280, 280), (224, 294)]


def randomise(model, gen):
    """Norm affines away from (1, 0), layer scales and the zero-initialised tokens given values
    of the size trained ones have."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
        for name, p in model.named_parameters():
            if name.endswith(("lambda1", "gamma")):
                p.copy_(torch.rand(p.shape, generator=gen) * 0.5 + 0.25)
            elif "token" in name or "position" in name or "pos_embed" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    model.eval()


def cache_dir(out, repo):
    folder = os.path.join(out, "hub", "models--" + repo.replace("/", "--"))
    snap = os.path.join(folder, "snapshots", COMMIT)
    os.makedirs(snap, exist_ok=True)
    os.makedirs(os.path.join(folder, "refs"), exist_ok=True)
    with open(os.path.join(folder, "refs", "main"), "w") as f:
        f.write(COMMIT)
    return snap


def tokens_for(forward, registers, seed):
    """Inputs at each size and the (class, patch) tokens `forward` gives."""
    out = {}
    for h, w in SIZES:
        x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(seed + h + w))
        with torch.no_grad():
            y = forward(x)
        out[f"input_{h}x{w}"] = x
        out[f"cls_{h}x{w}"] = y[:, 0].contiguous()
        out[f"patch_{h}x{w}"] = y[:, 1 + registers:].contiguous()
    return out


def transformers_case(out, name, model, registers, seed):
    randomise(model, torch.Generator().manual_seed(seed))
    snap = cache_dir(out, "facebook/" + name)
    model.save_pretrained(snap)
    # What the facebook/dinov2-* repositories ship.
    BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224},
                      resample=3, do_center_crop=True,
                      image_mean=[0.485, 0.456, 0.406],
                      image_std=[0.229, 0.224, 0.225]).save_pretrained(snap)
    data = tokens_for(lambda x: model(pixel_values=x).last_hidden_state, registers, seed)
    save_file(data, os.path.join(out, name + ".safetensors"))
    return sum(p.numel() for n, p in model.named_parameters() if "mask_token" not in n)


def timm_case(out, name, seed):
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, dynamic_img_size=True).eval()
    randomise(model, torch.Generator().manual_seed(seed))
    snap = cache_dir(out, "timm/" + name)
    save_for_hf(model, snap, safe_serialization=True)
    data = tokens_for(model.forward_features, model.num_prefix_tokens - 1, seed)
    save_file(data, os.path.join(out, name.split(".")[0] + ".safetensors"))
    return sum(p.numel() for p in model.parameters())


def main():
    out = sys.argv[1]
    torch.set_num_threads(2)
    counts = {}
    torch.manual_seed(1)
    counts["dinov2-small"] = transformers_case(
        out, "dinov2-small", Dinov2Model(Dinov2Config(**SMALL)), 0, 11)
    if sys.argv[2:] == ["dinov2-small"]:
        return
    torch.manual_seed(2)
    counts["dinov2-with-registers-small"] = transformers_case(
        out, "dinov2-with-registers-small",
        Dinov2WithRegistersModel(Dinov2WithRegistersConfig(**SMALL, num_register_tokens=4)), 4, 12)
    counts["vit_small_patch14_dinov2"] = timm_case(out, "vit_small_patch14_dinov2.lvd142m", 13)
    counts["vit_small_patch14_reg4_dinov2"] = timm_case(
        out, "vit_small_patch14_reg4_dinov2.lvd142m", 14)

    # ViT-g's SwiGLU feed-forward on a two-block model (widths 48, hidden 128 per branch).
    torch.manual_seed(3)
    tiny = Dinov2Model(Dinov2Config(hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
                                    image_size=518, patch_size=14, use_swiglu_ffn=True))
    randomise(tiny, torch.Generator().manual_seed(15))
    snap = os.path.join(out, "swiglu")
    tiny.save_pretrained(snap)
    save_file(tokens_for(lambda x: tiny(pixel_values=x).last_hidden_state, 0, 15),
              os.path.join(out, "swiglu.safetensors"))

    with open(os.path.join(out, "counts.json"), "w") as f:
        json.dump(counts, f, indent=1)
    print(counts)


if __name__ == "__main__":
    main()
