"""Runs a TorchScript file written by an `export` command on the inputs Rust saved and compares.

    torchscript.py MODEL.pt IO.safetensors

IO.safetensors holds `input` and `output` (what ferrovis computed). Prints a JSON line with the
largest absolute difference between torch.jit.load(MODEL)(input) and `output`.
"""
import json
import sys

import torch
from safetensors.torch import load_file

model = torch.jit.load(sys.argv[1])
model.eval()
io = load_file(sys.argv[2])
with torch.no_grad():
    got = model(io["input"])
print(json.dumps({"max_abs_diff": (got - io["output"]).abs().max().item(), "shape": list(got.shape)}))
