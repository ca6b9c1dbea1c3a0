"""Reference side of the classification-zoo parity tests: every architecture
torchvision.models.list_models(module=torchvision.models) names, computed by torchvision itself.

    zoo.py layout OUT.json            for every architecture: trainable parameter count and the
                                      state_dict's names and shapes, built on the meta device (no
                                      memory, no time)
    zoo.py parity OUT_DIR NAME...     for each NAME, a seeded model with randomised
                                      normalisation and the outputs ferrovis must reproduce:
                                      OUT_DIR/NAME/weights.pth and OUT_DIR/NAME/expected.safetensors,
                                      then OUT_DIR/NAME/done once both are whole
    zoo.py parity OUT_DIR --small     every architecture not in VALIDATE_ONLY (make test), and
                                      OUT_DIR/cases.json: {"small": [...], "large": [...]}
    zoo.py parity OUT_DIR --large     the VALIDATE_ONLY ones (make validate): LARGE and
                                      SIZE_VARIANTS

expected.safetensors holds: input (2×3×S×S, S from SPECS); logits and feat0..featK in eval mode,
float32. With "f64" in the case's checks: logits64 and feat64_0..K for the same network in
float64. With "train": train_feat0..K in training mode (stochastic depth and dropout switched
off on both sides), "grad:<param>" the gradient of the spec's first parameter for the loss
sum_levels mean(level**2), and "after:<buffer>" the spec's buffer after that step (if it names
one). Feature levels are the outputs of the modules SPECS lists, turned to N×C×H×W by the spec's
"layout" (Swin's stages are N×H×W×C; ViT's are token sequences).
"""
import contextlib
import copy
import json
import os
import sys
import warnings

import torch
import torchvision
from safetensors.torch import save_file


def nhwc(x):
    return x.permute(0, 3, 1, 2)


def vit_tokens(x):
    # The class token dropped, the patch tokens laid out on their grid.
    n, t, c = x.shape
    side = int(round((t - 1) ** 0.5))
    return x[:, 1:].transpose(1, 2).reshape(n, c, side, side)


def vgg_levels(model):
    pools = [i for i, m in enumerate(model.features) if isinstance(m, torch.nn.MaxPool2d)]
    return [f"features.{i - 1}" for i in pools[1:]] + [f"features.{pools[-1]}"]


LAYOUTS = {"nchw": lambda x: x, "nhwc": nhwc, "vit_tokens": vit_tokens}

# Per architecture (longest matching name prefix wins): the modules whose outputs are the feature
# levels, finest first; the input side; the parameter whose gradient and the buffer whose
# post-step value the training check compares; how a level's output becomes N×C×H×W; extra
# keyword arguments to the torchvision constructor (sizes that depend on the input).
SPECS = {
    "resnet": dict(levels=["relu", "layer1", "layer2", "layer3", "layer4"],
                   first=("conv1.weight", "bn1.running_mean")),
    "resnext": dict(levels=["relu", "layer1", "layer2", "layer3", "layer4"],
                    first=("conv1.weight", "bn1.running_mean")),
    "wide_resnet": dict(levels=["relu", "layer1", "layer2", "layer3", "layer4"],
                        first=("conv1.weight", "bn1.running_mean")),
    # VGG: the last ReLU before each max-pool from the second on (strides 2, 4, 8, 16), then the
    # last max-pool (32); the indices depend on the variant, so they are found in the model.
    "vgg": dict(levels=lambda m: vgg_levels(m), first=("features.0.weight", None)),
    "vgg11_bn": dict(levels=lambda m: vgg_levels(m),
                     first=("features.0.weight", "features.1.running_mean")),
    "vgg13_bn": dict(levels=lambda m: vgg_levels(m),
                     first=("features.0.weight", "features.1.running_mean")),
    "vgg16_bn": dict(levels=lambda m: vgg_levels(m),
                     first=("features.0.weight", "features.1.running_mean")),
    "vgg19_bn": dict(levels=lambda m: vgg_levels(m),
                     first=("features.0.weight", "features.1.running_mean")),
    "mobilenet_v2": dict(levels=["features.1", "features.3", "features.6", "features.13",
                                 "features.17"],
                         first=("features.0.0.weight", "features.0.1.running_mean")),
    "mobilenet_v3_large": dict(levels=["features.1", "features.3", "features.6", "features.12",
                                       "features.16"],
                               first=("features.0.0.weight", "features.0.1.running_mean")),
    "mobilenet_v3_small": dict(levels=["features.0", "features.1", "features.3", "features.8",
                                       "features.12"],
                               first=("features.0.0.weight", "features.0.1.running_mean")),
    # --- families added by the zoo work: one entry (or a few) per family ---
    # An 80-pixel input leaves odd maps (5×5, 3×3) for the last stride-2 blocks.
    "regnet": dict(levels=["stem", "trunk_output.block1", "trunk_output.block2",
                           "trunk_output.block3", "trunk_output.block4"],
                   size=80, first=("stem.0.weight", "stem.1.running_mean")),
    "convnext": dict(levels=["features.1", "features.3", "features.5", "features.7"],
                     first=("features.0.0.weight", None)),
    "shufflenet_v2": dict(levels=["conv1", "maxpool", "stage2", "stage3", "conv5"],
                          first=("conv1.0.weight", "conv1.1.running_mean")),
    # Sizes at which every ceil-mode pool rounds up (an odd span before it).
    "squeezenet1_0": dict(levels=["features.1", "features.5", "features.10", "features.12"],
                          size=70, first=("features.0.weight", None)),
    "squeezenet1_1": dict(levels=["features.1", "features.4", "features.7", "features.12"],
                          size=66, first=("features.0.weight", None)),
    "alexnet": dict(levels=["features.1", "features.4", "features.11", "features.12"],
                    size=224, first=("features.0.weight", None)),
    # 224 is the smallest side whose every block is a multiple of the 7×7 partitions.
    "maxvit": dict(levels=["stem", "blocks.0", "blocks.1", "blocks.2", "blocks.3"], size=224,
                   first=("blocks.0.layers.0.layers.window_attention.attn_layer.1."
                          "relative_position_bias_table",
                          "blocks.0.layers.0.layers.MBconv.layers.pre_norm.running_mean")),
    # EfficientNet V1 and V2: the last stage at each stride (V2-S has six stages, V2-M/L seven).
    "efficientnet_b": dict(levels=["features.1", "features.2", "features.3", "features.5",
                                   "features.7"],
                           first=("features.0.0.weight", "features.0.1.running_mean")),
    "efficientnet_v2": dict(levels=["features.1", "features.2", "features.3", "features.5",
                                    "features.7"],
                            first=("features.0.0.weight", "features.0.1.running_mean")),
    "efficientnet_v2_s": dict(levels=["features.1", "features.2", "features.3", "features.5",
                                      "features.6"],
                              first=("features.0.0.weight", "features.0.1.running_mean")),
    # MNASNet: the stem's projection (stride 2), then the last stack at each stride. Its BatchNorm
    # momentum is 3e-4, so the first BatchNorm's mean moves by less than the check's tolerance in
    # one step; a deep running variance moves by ~3e-3 and tells a wrong (or absent) update.
    "mnasnet": dict(levels=["layers.7", "layers.8", "layers.9", "layers.11", "layers.13"],
                    first=("layers.0.weight", "layers.12.3.layers.7.running_var")),
    # Swin: 224 (V1, window 7) and 256 (V2, window 8) shift windows in stages 1-3; 200 pads every
    # stage to a window multiple and merges an odd 25×25 map.
    "swin": dict(levels=["features.1", "features.3", "features.5", "features.7"], size=200,
                 layout="nhwc", first=("features.0.0.weight", None)),
    "swin_t": dict(levels=["features.1", "features.3", "features.5", "features.7"], size=224,
                   layout="nhwc", first=("features.0.0.weight", None)),
    "swin_v2_t": dict(levels=["features.1", "features.3", "features.5", "features.7"], size=256,
                      layout="nhwc", first=("features.0.0.weight", None)),
    # DenseNet's last level is norm5 and the forward's functional ReLU, which runs in place on
    # norm5's output: the hooked tensor is the rectified one.
    "densenet": dict(levels=["features.relu0", "features.denseblock1", "features.denseblock2",
                             "features.denseblock3", "features.norm5"],
                     first=("features.conv0.weight", "features.norm0.running_mean")),
    # 112: the ceil-mode max-pools round up at every stage (7 → 4 before inception5a).
    "googlenet": dict(levels=["conv1", "conv3", "inception3b", "inception4e", "inception5b"],
                      size=112, first=("conv1.conv.weight", "conv1.bn.running_mean")),
    # 171: the smallest side whose levels are at nominal strides 2 … 32 (83, 39, 19, 9, 4); the
    # auxiliary classifier, which would need 299, is off in the training passes (without_aux).
    "inception_v3": dict(levels=["Conv2d_2b_3x3", "Conv2d_4a_3x3", "Mixed_5d", "Mixed_6e",
                                 "Mixed_7c"],
                         size=171, first=("Conv2d_1a_3x3.conv.weight",
                                          "Conv2d_1a_3x3.bn.running_mean")),
    # ViT is built for its input size; ViT-H/14's patches need a multiple of 14.
    "vit_": dict(levels=["encoder"], layout="vit_tokens", kwargs={"image_size": 64},
                 first=("conv_proj.weight", None)),
    "vit_h_14": dict(levels=["encoder"], layout="vit_tokens", size=56, kwargs={"image_size": 56},
                     first=("conv_proj.weight", None)),
}

# Which checks each case runs beyond float32 eval: "f64" (the same network in float64) and
# "train" (training-mode levels, a gradient, a buffer). One architecture per family runs them.
CHECKS = {
    "resnet50": ("f64", "train"),
    "resnext50_32x4d": ("f64", "train"),
    "vgg16_bn": ("f64", "train"),
    "efficientnet_b0": ("f64", "train"),
    "mobilenet_v2": ("f64", "train"),
    "mobilenet_v3_large": ("f64", "train"),
    "mobilenet_v3_small": ("f64", "train"),
    "regnet_y_400mf": ("f64", "train"),
    "regnet_x_400mf": ("f64", "train"),
    "convnext_tiny": ("f64", "train"),
    "shufflenet_v2_x1_0": ("f64", "train"),
    "squeezenet1_1": ("f64", "train"),
    "alexnet": ("f64", "train"),
    "maxvit_t": ("f64", "train"),
    "efficientnet_v2_s": ("f64", "train"),
    "mnasnet1_0": ("f64", "train"),
    "swin_t": ("f64", "train"),
    "swin_v2_t": ("f64", "train"),
    "densenet121": ("f64", "train"),
    "googlenet": ("f64", "train"),
    "inception_v3": ("f64", "train"),
    "vit_b_16": ("f64", "train"),
}

# Architectures too large for make test's budget (over ~80 M parameters, or slow at their
# smallest input: AlexNet's and VGG's 4096-wide classifiers, MaxViT-T at 224): their layout is
# checked there, their forward in make validate (which runs `zoo.py parity` on them like any
# other). VGG keeps vgg16_bn in make test, the one code path of all eight variants.
LARGE = {
    "alexnet", "convnext_base", "convnext_large", "efficientnet_v2_l", "maxvit_t",
    "regnet_x_16gf", "regnet_x_32gf", "regnet_y_128gf", "regnet_y_16gf", "regnet_y_32gf",
    "resnext101_32x8d", "resnext101_64x4d", "swin_b", "swin_v2_b", "vgg11", "vgg11_bn", "vgg13",
    "vgg13_bn", "vgg16", "vgg19", "vgg19_bn", "vit_h_14", "vit_l_16", "vit_l_32",
    "wide_resnet101_2",
}

# Size variants whose every code path a make-test case of the same family runs (same blocks,
# other widths and depths; their layouts, widths included, are checked for all 80 in make test):
# their forward is checked in make validate too, for make test's 20-minute budget.
SIZE_VARIANTS = {
    "resnet34", "resnet101", "resnet152", "wide_resnet50_2",
    "densenet161", "densenet169", "densenet201",
    "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4", "efficientnet_b6",
    "efficientnet_b7", "mnasnet0_75", "mnasnet1_3",
    "regnet_x_800mf", "regnet_x_1_6gf", "regnet_x_3_2gf", "regnet_x_8gf",
    "regnet_y_800mf", "regnet_y_1_6gf", "regnet_y_3_2gf", "regnet_y_8gf",
    "shufflenet_v2_x0_5", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
    "convnext_small", "swin_s", "swin_v2_s", "vit_b_32",
}

# What make validate checks instead of make test.
VALIDATE_ONLY = LARGE | SIZE_VARIANTS


def spec(name):
    key = max((k for k in SPECS if name.startswith(k)), key=len, default=None)
    if key is None:
        raise SystemExit(f"zoo.py: no SPECS entry for {name}")
    s = dict(size=64, layout="nchw", kwargs={})
    s.update(SPECS[key])
    return s


def layout(out):
    # RegNet computes its stage widths with tensor arithmetic, which the meta device cannot
    # read back: that arithmetic runs on the CPU.
    regnet = torchvision.models.regnet.BlockParams
    from_init = regnet.from_init_params.__func__

    def on_cpu(cls, *args, **kwargs):
        with torch.device("cpu"):
            return from_init(cls, *args, **kwargs)

    regnet.from_init_params = classmethod(on_cpu)
    result = {}
    for name in torchvision.models.list_models(module=torchvision.models):
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # GoogLeNet's, Inception's init notice
            model = torchvision.models.get_model(name)
        result[name] = {
            "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "state_dict": {k: list(v.shape) for k, v in model.state_dict().items()},
        }
    with open(out, "w") as f:
        json.dump(result, f)


@contextlib.contextmanager
def without_aux(model):
    """GoogLeNet's and Inception v3's auxiliary classifiers run in training only, no check
    compares their outputs, and Inception v3's needs a 299×299 input: they are detached for the
    training passes (their parameters stay in the state_dict) so that cases can be smaller."""
    names = ("aux1", "aux2", "AuxLogits")
    saved = {n: getattr(model, n) for n in names if getattr(model, n, None) is not None}
    for n in saved:
        setattr(model, n, None)
    try:
        yield
    finally:
        for n, m in saved.items():
            setattr(model, n, m)


def randomise(model):
    """Realistic, asymmetric parameters: norm affines away from (1, 0), every constant-initialised
    tensor (zero biases, zero-initialised heads, layer scales of 1e-6) given noise, BatchNorm
    running statistics calibrated on data as a trained network's are."""
    norms = (torch.nn.BatchNorm2d, torch.nn.LayerNorm, torch.nn.GroupNorm)
    with torch.no_grad():
        norm_params = set()
        for m in model.modules():
            if isinstance(m, norms) and getattr(m, "weight", None) is not None:
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                norm_params.update({id(m.weight), id(m.bias)})
        for n, p in model.named_parameters():
            if id(p) in norm_params or p.numel() == 0:
                continue
            if p.numel() == 1 or float(p.std()) == 0.0:
                scale = 0.5 if "layer_scale" in n or "logit_scale" in n else 0.02
                p.add_(torch.randn_like(p) * scale)
        bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        for m in bns:
            m.momentum, m.saved_momentum = None, m.momentum  # cumulative average
            m.reset_running_stats()
        if bns:
            model.train()
            with without_aux(model):
                model(torch.randn(8, 3, *model.zoo_size))
        for m in bns:
            m.momentum = m.saved_momentum
            del m.saved_momentum
    model.eval()


def no_randomness(model):
    # Stochastic depth and dropout are random in training; both sides switch them off for the
    # training check.
    for m in model.modules():
        if isinstance(m, torchvision.ops.StochasticDepth):
            m.p = 0.0
        elif isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        elif hasattr(m, "stochastic_depth_prob"):
            m.stochastic_depth_prob = 0.0


def run_levels(model, names, x, to_nchw):
    feats = {}
    modules = dict(model.named_modules())
    hooks = [modules[n].register_forward_hook(lambda m, i, o, n=n: feats.__setitem__(n, o))
             for n in names]
    logits = model(x)
    for h in hooks:
        h.remove()
    if isinstance(logits, tuple):  # Inception's and GoogLeNet's (logits, aux…) in training
        logits = logits[0]
    return logits, [to_nchw(feats[n]).contiguous() for n in names]


def parity(name, out):
    os.makedirs(out, exist_ok=True)
    s = spec(name)
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, **s["kwargs"])
    model.zoo_size = (s["size"], s["size"])
    randomise(model)
    del model.zoo_size
    torch.save(model.state_dict(), os.path.join(out, "weights.pth"))
    x = torch.randn(2, 3, s["size"], s["size"])
    to_nchw = LAYOUTS[s["layout"]]
    if callable(s["levels"]):
        s["levels"] = s["levels"](model)
    with torch.no_grad():
        logits, feats = run_levels(model, s["levels"], x, to_nchw)
    result = {"input": x, "logits": logits}
    result.update({f"feat{i}": f for i, f in enumerate(feats)})
    checks = CHECKS.get(name, ())
    if "f64" in checks:
        # An exact port agrees to ~1e-12 in float64, which separates implementation differences
        # from float32 summation-order noise.
        with torch.no_grad():
            logits64, feats64 = run_levels(copy.deepcopy(model).double(), s["levels"], x.double(),
                                           to_nchw)
        result["logits64"] = logits64
        result.update({f"feat64_{i}": f for i, f in enumerate(feats64)})
    if "train" in checks:
        no_randomness(model)
        model.train()
        with without_aux(model):
            _, feats = run_levels(model, s["levels"], x, to_nchw)
        loss = sum((f ** 2).mean() for f in feats)
        loss.backward()
        result.update({f"train_feat{i}": f.detach() for i, f in enumerate(feats)})
        grad_name, buffer_name = s["first"]
        result["grad:" + grad_name] = dict(model.named_parameters())[grad_name].grad
        if buffer_name is not None:
            result["after:" + buffer_name] = dict(model.named_buffers())[buffer_name]
    save_file({k: v.contiguous() for k, v in result.items()},
              os.path.join(out, "expected.safetensors"))
    # The Rust side checks a case as soon as this marker says its files are whole.
    open(os.path.join(out, "done"), "w").close()


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1] == "layout":
        layout(sys.argv[2])
    elif sys.argv[1] == "parity":
        out, names = sys.argv[2], sys.argv[3:]
        everything = torchvision.models.list_models(module=torchvision.models)
        if names in (["--small"], ["--large"]):
            small = [n for n in everything if n not in VALIDATE_ONLY]
            large = [n for n in everything if n in VALIDATE_ONLY]
            os.makedirs(out, exist_ok=True)
            with open(os.path.join(out, "cases.json.partial"), "w") as f:
                json.dump({"small": small, "large": large}, f)
            os.replace(os.path.join(out, "cases.json.partial"), os.path.join(out, "cases.json"))
            names = small if names == ["--small"] else large
        for name in names:
            parity(name, os.path.join(out, name))
    else:
        raise SystemExit(f"unknown command {sys.argv[1]}")
