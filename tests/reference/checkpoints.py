"""Reference side of the checkpoint tests: PyTorch itself writes the files ferrovis must read, and
reads back the files ferrovis writes.

    checkpoints.py fixtures OUT_DIR        write fixture checkpoints + OUT_DIR/expected.json
    checkpoints.py describe FILE OUT.json  describe what torch.load finds in FILE (validation)
    checkpoints.py roundtrip DIR           load DIR/weights.safetensors into the reference model,
                                           compare its output with DIR/output.safetensors

expected.json maps fixture file -> ordered list of {name, dtype, shape, sha256} where sha256 is
taken over the tensor's contiguous little-endian bytes, so a reader can be checked bit for bit.
"""
import collections
import hashlib
import json
import os
import sys

import torch
import torch.nn as nn


def describe_tensor(name, t):
    t = t.detach().contiguous().cpu()
    raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
    return {
        "name": name,
        "dtype": str(t.dtype).replace("torch.", ""),
        "shape": list(t.shape),
        "sha256": hashlib.sha256(raw).hexdigest(),
    }


class Block(nn.Module):
    """A module with every state_dict feature: bias=None, BatchNorm buffers, a non-persistent buffer."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.register_buffer("scratch", torch.zeros(2), persistent=False)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = Block()
        self.layers = nn.Sequential(nn.Conv2d(4, 6, 1), nn.ReLU(), nn.Conv2d(6, 2, 1))
        self.head = nn.Linear(2, 3)


def small_cnn():
    """The model the round-trip test builds identically in Rust (names 0.*, 1.*, 4.*)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 4)
    )


def fixtures(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(1234)
    expected = {}

    def save(fname, obj, tensors, **kw):
        torch.save(obj, os.path.join(out, fname), **kw)
        expected[fname] = [describe_tensor(n, t) for n, t in tensors.items()]

    legacy = dict(_use_new_zipfile_serialization=False)

    plain = {"w": torch.randn(3, 4), "b": torch.randn(4), "i": torch.arange(5)}
    save("plain_zip.pt", plain, plain)
    save("plain_legacy.pt", plain, plain, **legacy)
    save("plain_protocol4.pt", plain, plain, pickle_protocol=4)

    net = Net()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        net.stem.bn.running_mean.normal_()
        net.stem.bn.running_var.uniform_(0.5, 2.0)
        net.stem.bn.num_batches_tracked.fill_(7)
    sd = net.state_dict()
    assert isinstance(sd, collections.OrderedDict) and hasattr(sd, "_metadata")
    save("ordered_dict_zip.pth", sd, sd)
    save("ordered_dict_legacy.pth", sd, sd, **legacy)

    dtypes = {
        "f16": torch.randn(2, 3).half(),
        "bf16": torch.randn(2, 3).bfloat16(),
        "f64": torch.randn(3).double(),
        "i32": torch.randint(-1000, 1000, (4,), dtype=torch.int32),
        "i16": torch.randint(-1000, 1000, (4,), dtype=torch.int16),
        "i8": torch.randint(-100, 100, (4,), dtype=torch.int8),
        "u8": torch.randint(0, 255, (4,), dtype=torch.uint8),
        "flag": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
    }
    save("dtypes_zip.pt", dtypes, dtypes)
    save("dtypes_legacy.pt", dtypes, dtypes, **legacy)

    base = torch.randn(4, 6)
    views = {
        "transposed": base.t(),  # non-contiguous
        "strided": base[1:, ::2],  # offset + strides
        "whole": base,  # shares storage with both views
        "expanded": torch.randn(3, 1).expand(3, 5),  # stride 0
    }
    assert not views["transposed"].is_contiguous()
    save("views_zip.pt", views, views)
    save("views_legacy.pt", views, views, **legacy)

    nested = {"model": sd, "epoch": 3, "optimizer": {"lr": 0.1, "state": {}}, "note": "trained"}
    save("nested.pt", nested, sd)

    parallel = collections.OrderedDict(("module." + k, v) for k, v in sd.items())
    save("data_parallel.pt", parallel, sd)

    # Ultralytics layout: a pickled module in float16 under "model", "ema" None, plus metadata.
    half_net = Net().half()
    ultra = {"epoch": -1, "best_fitness": None, "model": half_net, "ema": None, "updates": 0,
             "train_args": {"imgsz": 640, "data": "coco128.yaml"}, "date": "2026-01-01"}
    save("pickled_module.pt", ultra, half_net.state_dict())

    # Not loadable (so not in `expected`): a tensor beside an object that is not a tensor.
    import fractions
    mixed = {"fc.weight": torch.ones(2, 3), "x": fractions.Fraction(1, 3)}
    torch.save(mixed, os.path.join(out, "tensor_beside_object.pt"))

    torch.manual_seed(99)
    cnn = small_cnn()
    from safetensors.torch import save_file
    st = {k: v.contiguous() for k, v in cnn.state_dict().items()}
    save_file(st, os.path.join(out, "hub.safetensors"))
    expected["hub.safetensors"] = [describe_tensor(n, t) for n, t in st.items()]

    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


def describe(path, out):
    obj = torch.load(path, map_location="cpu", weights_only=False)
    if not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SystemExit(f"{path}: not a flat state dict")
    with open(out, "w") as f:
        json.dump([describe_tensor(n, t) for n, t in obj.items()], f)


def roundtrip(d):
    from safetensors.torch import load_file
    model = small_cnn().eval()
    model.load_state_dict(load_file(os.path.join(d, "weights.safetensors")), strict=True)
    io = load_file(os.path.join(d, "io.safetensors"))
    with torch.no_grad():
        y = model(io["input"])
    diff = (y - io["output"]).abs().max().item()
    print(f"max abs difference between ferrovis and PyTorch outputs: {diff:.3g}")
    if not diff <= 1e-5:
        raise SystemExit(f"outputs differ by {diff}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "fixtures":
        fixtures(sys.argv[2])
    elif cmd == "describe":
        describe(sys.argv[2], sys.argv[3])
    elif cmd == "roundtrip":
        roundtrip(sys.argv[2])
    else:
        raise SystemExit(f"unknown command {cmd}")
