"""torchvision's fcn_resnet50 and fcn_resnet101 (with their auxiliary heads) and
lraspp_mobilenet_v3_large, 21 classes, for tests/tests/suite/fcn_lraspp.rs. Each is built seeded
with no weights, randomised as zoo.py's `randomise` does (norm affines away from (1, 0), zero
tensors given noise, BatchNorm statistics calibrated on data), and written to OUT_DIR/NAME/:

    weights.pth            its state_dict (torch.save)
    layout.json            {"parameters": trainable count, "state_dict": {name: shape}}
    expected.safetensors   input (1×3×67×90) and the eval-mode outputs "out" (and "aux"), NCHW,
                           and "out_cl" (and "aux_cl") of the model and input channels-last

and OUT_DIR/mobilenet_v3_large.pth, torchvision's ImageNet classifier (random init) whose
`features` LR-ASPP's encoder takes.

    python fcn_lraspp.py OUT_DIR NAME...
"""
import json
import os
import sys

import torch
import torchvision
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zoo import randomise  # noqa: E402


def main(out, names):
    torch.set_num_threads(1)
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    clf = torchvision.models.mobilenet_v3_large(weights=None)
    torch.save(clf.state_dict(), os.path.join(out, "mobilenet_v3_large.pth"))
    for name in names:
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        torch.manual_seed(0)
        kwargs = dict(weights=None, weights_backbone=None, num_classes=21)
        if name.startswith("fcn"):
            kwargs["aux_loss"] = True
        m = torchvision.models.get_model(name, **kwargs)
        # The BatchNorm calibration images: 64×64, 8×8 at the encoders' stride 8.
        m.zoo_size = (64, 64)
        randomise(m)
        m.eval()
        torch.save(m.state_dict(), os.path.join(d, "weights.pth"))
        layout = {
            "parameters": sum(p.numel() for p in m.parameters() if p.requires_grad),
            "state_dict": {k: list(v.shape) for k, v in m.state_dict().items()},
        }
        with open(os.path.join(d, "layout.json"), "w") as f:
            json.dump(layout, f)
        # Odd sizes: every bilinear resize in the heads has a fractional scale.
        g = torch.Generator().manual_seed(1)
        x = torch.rand(1, 3, 67, 90, generator=g)
        with torch.no_grad():
            y = m(x)
            # The same in channels-last, which convolves with other kernels (ferrovis trains so).
            m = m.to(memory_format=torch.channels_last)
            y_cl = m(x.contiguous(memory_format=torch.channels_last))
        outputs = {**y, **{k + "_cl": v for k, v in y_cl.items()}}
        save_file({"input": x, **{k: v.contiguous() for k, v in outputs.items()}},
                  os.path.join(d, "expected.safetensors"))
        print(name, "parameters", layout["parameters"], "outputs", ",".join(y))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
