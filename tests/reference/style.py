"""References for tests/tests/style_reference.rs, from PyTorch:

- torchvision's vgg19 (random init, seed 0), its `features.*` state dict saved with torch.save
  (the classifier is not used by style transfer), and for a fixed input in [0, 1] (ImageNet
  normalisation applied first, as style transfer does) every trunk activation named
  conv{b}_{i} / relu{b}_{i} / pool{b};
- Gram matrices (F·Fᵀ / (C·H·W)), content and style MSE losses and total variation on seeded
  tensors;
- the PyTorch examples' TransformerNet (random init, seed 2, instance-norm scales and shifts
  randomised so they matter, output layer scaled to a trained network's 0–255 range), its state
  dict saved with torch.save, and its output for an image in [0, 1] passed on the examples'
  0–255 scale.

    python style.py OUT_DIR
"""
import os
import sys

import torch
import torchvision
from safetensors.torch import save_file

from transformer_net import TransformerNet


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    vgg = torchvision.models.vgg19(weights=None).eval()
    torch.save({k: v for k, v in vgg.state_dict().items() if k.startswith("features.")},
               os.path.join(out, "vgg19_features.pth"))
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, 48, 64, generator=g)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    y = (x - mean) / std
    acts = {"input": x}
    block, conv = 1, 0
    with torch.no_grad():
        for layer in vgg.features:
            y = layer(y)
            if isinstance(layer, torch.nn.Conv2d):
                conv += 1
                acts[f"conv{block}_{conv}"] = y.clone()
            elif isinstance(layer, torch.nn.ReLU):
                acts[f"relu{block}_{conv}"] = y.clone()
            else:
                acts[f"pool{block}"] = y.clone()
                block, conv = block + 1, 0
    save_file(acts, os.path.join(out, "vgg19_activations.safetensors"))

    f = torch.randn(2, 8, 5, 7, generator=g)
    target = torch.randn(2, 8, 5, 7, generator=g)
    n, c, h, w = f.shape
    flat = f.view(n, c, h * w)
    gram = flat @ flat.transpose(1, 2) / (c * h * w)
    tflat = target.view(n, c, h * w)
    tgram = tflat @ tflat.transpose(1, 2) / (c * h * w)
    img = torch.rand(1, 3, 9, 11, generator=g)
    tv = ((img[:, :, 1:] - img[:, :, :-1]).abs().mean()
          + (img[:, :, :, 1:] - img[:, :, :, :-1]).abs().mean())
    save_file({"f": f, "target": target, "gram": gram, "image": img,
               "content": torch.nn.functional.mse_loss(f, target).reshape(1),
               "style": torch.nn.functional.mse_loss(gram, tgram).reshape(1),
               "tv": tv.reshape(1)}, os.path.join(out, "losses.safetensors"))

    torch.manual_seed(2)
    net = TransformerNet().eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
        # A trained network's output spans 0–255; a fresh one's is ~1, too small to compare.
        net.deconv3.conv2d.weight.mul_(100)
        torch.save(net.state_dict(), os.path.join(out, "transformer.pth"))
        image = torch.rand(1, 3, 36, 44, generator=g)
        stylised = net(image * 255) / 255
    save_file({"image": image, "stylised": stylised},
              os.path.join(out, "transformer.safetensors"))
    print("activations", len(acts) - 1)


if __name__ == "__main__":
    main(sys.argv[1])
