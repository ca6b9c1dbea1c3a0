"""Reference side of the backbone parity tests, computed by torchvision itself.

    backbones.py parity NAME OUT_DIR [OS]        a seeded model's state_dict (torch.save) and its
                                                 outputs: OUT_DIR/weights.pth, OUT_DIR/expected.safetensors
    backbones.py all OUT_DIR                     every parity case in CASES, each in
                                                 OUT_DIR/<case>/ (one process: imports dominate)

expected.safetensors holds: input; logits and feat0..feat4 in eval mode (and logits64, feat64_0..4
for the same network in float64); train_feat0..4 in
training mode; "grad:<param>" the gradient of the first convolution for the loss
sum_levels mean(level**2); "after:<buffer>" the first BatchNorm's running mean after that step.
Feature levels are the outputs of the modules listed in LEVELS (ferrovis' definition of the
pyramid: strides 2, 4, 8, 16, 32).
"""
import copy
import json
import os
import sys

import torch
import torchvision
from safetensors.torch import save_file
from torchvision.ops import StochasticDepth

LEVELS = {
    "resnet": ["relu", "layer1", "layer2", "layer3", "layer4"],
    "vgg16_bn": ["features.12", "features.22", "features.32", "features.42", "features.43"],
    "mobilenet_v2": ["features.1", "features.3", "features.6", "features.13", "features.17"],
    "efficientnet_b0": ["features.1", "features.2", "features.3", "features.5", "features.7"],
    "mobilenet_v3_large": ["features.1", "features.3", "features.6", "features.12", "features.16"],
    "mobilenet_v3_small": ["features.0", "features.1", "features.3", "features.8", "features.12"],
}
FIRST = {
    "resnet": ("conv1.weight", "bn1.running_mean"),
    "vgg16_bn": ("features.0.weight", "features.1.running_mean"),
    "mobilenet_v2": ("features.0.0.weight", "features.0.1.running_mean"),
    "efficientnet_b0": ("features.0.0.weight", "features.0.1.running_mean"),
    "mobilenet_v3_large": ("features.0.0.weight", "features.0.1.running_mean"),
    "mobilenet_v3_small": ("features.0.0.weight", "features.0.1.running_mean"),
}
# The plain architectures are zoo.py's cases (every torchvision classification model); these are
# the variants only ferrovis' options build: dilated, reduced tail.
CASES = {
    "resnet18": ("resnet18", 32),
    "resnet50_os8": ("resnet50", 8),
    "mobilenet_v3_large_os16": ("mobilenet_v3_large", 16),
    # SSDlite's backbone: the last stage at half width.
    "mobilenet_v3_large_reduced_tail": ("mobilenet_v3_large", 32, {"reduced_tail": True}),
}
def family(name):
    return "resnet" if name.startswith("resnet") else name


def build(name, output_stride, extra=None):
    kwargs = dict(extra or {})
    if name.startswith("mobilenet_v3") and output_stride == 16:
        kwargs["dilated"] = True  # torchvision's only dilated MobileNetV3: the last stage
    elif output_stride == 16:
        kwargs["replace_stride_with_dilation"] = [False, False, True]
    elif output_stride == 8:
        kwargs["replace_stride_with_dilation"] = [False, True, True]
    model = torchvision.models.get_model(name, **kwargs)
    # Stochastic depth is random in training; both sides switch it off for the training check.
    for m in model.modules():
        if isinstance(m, StochasticDepth):
            m.p = 0.0
    return model


def run_levels(model, names, x):
    feats = {}
    modules = dict(model.named_modules())
    hooks = [modules[n].register_forward_hook(lambda m, i, o, n=n: feats.__setitem__(n, o)) for n in names]
    logits = model(x)
    for h in hooks:
        h.remove()
    return logits, [feats[n] for n in names]


def parity(name, out, output_stride, extra=None):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    model = build(name, output_stride, extra)
    # Non-trivial BatchNorm affine parameters, and running statistics calibrated on data (as a
    # trained network's are), so that eval-mode activations keep a realistic O(1) scale.
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.1)
            m.momentum, m.saved_momentum = None, m.momentum  # cumulative average
            m.reset_running_stats()
        model.train()
        model(torch.randn(8, 3, 96, 96))
        for m in bns:
            m.momentum = m.saved_momentum
            del m.saved_momentum
    model.eval()
    torch.save(model.state_dict(), os.path.join(out, "weights.pth"))
    x = torch.randn(2, 3, 96, 96)
    levels = LEVELS[family(name)]
    with torch.no_grad():
        logits, feats = run_levels(model, levels, x)
    result = {"input": x, "logits": logits}
    result.update({f"feat{i}": f for i, f in enumerate(feats)})
    # The same network in float64: an exact port agrees to ~1e-12 there, which separates
    # implementation differences from float32 summation-order noise.
    with torch.no_grad():
        logits64, feats64 = run_levels(copy.deepcopy(model).double(), levels, x.double())
    result["logits64"] = logits64
    result.update({f"feat64_{i}": f for i, f in enumerate(feats64)})

    model.train()
    _, feats = run_levels(model, levels, x)
    loss = sum((f ** 2).mean() for f in feats)
    loss.backward()
    result.update({f"train_feat{i}": f.detach() for i, f in enumerate(feats)})
    grad_name, buffer_name = FIRST[family(name)]
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    result["grad:" + grad_name] = params[grad_name].grad
    result["after:" + buffer_name] = buffers[buffer_name]
    save_file({k: v.contiguous() for k, v in result.items()}, os.path.join(out, "expected.safetensors"))


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1] == "parity":
        parity(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 32)
    elif sys.argv[1] == "all":
        out = sys.argv[2]
        os.makedirs(out, exist_ok=True)
        for case, (name, output_stride, *extra) in CASES.items():
            parity(name, os.path.join(out, case), output_stride, *extra)
    else:
        raise SystemExit(f"unknown command {sys.argv[1]}")
