"""The least-squares problem of lbfgs.py (A: 20×5, b: 20, torch generator seed 0), as JSON."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

torch.set_default_dtype(torch.float64)
from lbfgs import least_squares_problem  # noqa: E402

a, b = least_squares_problem()
print(json.dumps({"a": a.flatten().tolist(), "b": b.tolist()}))
