"""Reference for tests/tests/suite/timm_hub.rs: timm checkpoints as the Hugging Face Hub holds
them, made here with no download.

Each case is a timm model built with pretrained=False under its Hub name (so its pretrained_cfg
is that tag's), seeded, its norms randomised (norm affines, ConvNeXt's layer scales moved off
1e-6, BatchNorm statistics calibrated on random data) and saved with timm's own `save_for_hf` (config.json and
model.safetensors) into a Hugging Face cache laid out as huggingface_hub lays it
(`hub/models--timm--<name>/snapshots/<commit>/`, `refs/main`). Beside it, `<name>.safetensors`
holds a seeded input batch at the checkpoint's input size and timm's logits for it (eval mode)
and timm's evaluation preprocessing (`create_transform` of `resolve_data_config`, on PIL
images) of two real pictures from the repository, and `<name>.json` timm's
`resolve_data_config` for the model.

    python timm_hub.py OUT [NAME ...]   (default: every case)
"""
import json
import os
import sys

import timm
import torch
from safetensors.torch import save_file
from PIL import Image
from timm.data import create_transform, resolve_data_config
from timm.models import save_for_hf

CASES = [
    "resnet18.tv_in1k",
    "resnet50.a1_in1k",
    "convnext_tiny.fb_in1k",
    "efficientnet_b0.ra_in1k",
    "regnety_016.tv2_in1k",
    "regnetx_004_tv.tv2_in1k",
    "vit_base_patch16_224.augreg2_in21k_ft_in1k",
    "tf_efficientnet_b0.ns_jft_in1k",
    "tf_efficientnetv2_s.in21k_ft_in1k",
    "mobilenetv3_large_100.ra_in1k",
    "tf_mobilenetv3_small_100.in1k",
    "swin_tiny_patch4_window7_224.ms_in1k",
]
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
# A PNG (no decoder differences) and a JPEG, both public domain.
IMAGES = {
    "chelsea": os.path.join(ROOT, "style", "assets", "chelsea.png"),
    "starry_night": os.path.join(ROOT, "style", "assets", "starry_night.jpg"),
}
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def randomise(model, gen, size):
    """Norm affines away from (1, 0), constant tensors given noise, ConvNeXt's layer scales off
    1e-6, then BatchNorm running statistics calibrated on random data as a trained network's
    are (so activations keep their scale and float32 rounding stays small whatever the thread
    count)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)) or type(m).__name__ == "LayerNorm2d":
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.copy_(torch.rand(p.shape, generator=gen) * 0.5 + 0.25)
            elif p.numel() > 1 and float(p.std()) == 0.0:
                p.add_(torch.randn(p.shape, generator=gen) * 0.02)
        bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the calibration batch
        if bns:
            model.train()
            model(torch.randn(8, 3, size, size, generator=gen))
        for m in bns:
            m.momentum = 0.1
    model.eval()


def main():
    out = sys.argv[1]
    wanted = sys.argv[2:] or CASES
    torch.set_num_threads(2)
    for i, name in enumerate(CASES):
        if name not in wanted:
            continue
        torch.manual_seed(100 + i)
        model = timm.create_model(name, pretrained=False).eval()
        size = resolve_data_config({}, model=model)["input_size"][1]
        randomise(model, torch.Generator().manual_seed(200 + i), size)
        repo = os.path.join(out, "hub", "models--timm--" + name)
        snap = os.path.join(repo, "snapshots", COMMIT)
        os.makedirs(snap, exist_ok=True)
        save_for_hf(model, snap, safe_serialization=True)
        os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
        with open(os.path.join(repo, "refs", "main"), "w") as f:
            f.write(COMMIT)
        cfg = resolve_data_config({}, model=model)
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(300 + i))
        with torch.no_grad():
            logits = model(x)
        tensors = {"input": x, "logits": logits.contiguous()}
        transform = create_transform(**cfg)
        for key, path in IMAGES.items():
            with Image.open(path) as img:
                tensors["pixels_" + key] = transform(img.convert("RGB")).contiguous()
        save_file(tensors, os.path.join(out, name + ".safetensors"))
        with open(os.path.join(out, name + ".json"), "w") as f:
            json.dump({"data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
                       "parameters": sum(p.numel() for p in model.parameters()),
                       "tensors": len(model.state_dict())}, f, indent=1)
        print(name, tuple(logits.shape), cfg)


if __name__ == "__main__":
    main()
