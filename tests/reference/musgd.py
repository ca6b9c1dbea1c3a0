"""Two steps of Ultralytics' MuSGD on a yolo26n's parameters, for tests/tests/suite/optim_and_freeze.rs
(the optimiser is Ultralytics' own, from the setup environment's package).

    musgd.py OUT_DIR

The parameters are split as Ultralytics' trainer splits them for MuSGD: every 2-D or 4-D tensor in
a Muon group (weight decay 5e-4), the rest (biases, BatchNorm weights) in a plain group (no
decay); lr 0.01, momentum 0.9, Nesterov, muon 0.2, sgd 1.0. Gradients are seeded normal noise of
each parameter's shape. OUT_DIR/musgd.safetensors holds `start.<name>` (the parameters before),
`grad1.<name>`, `grad2.<name>` and `end.<name>` (after both steps).
"""
import os
import sys
import tempfile

os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp())
os.environ.setdefault("YOLO_OFFLINE", "1")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from ultralytics.nn.tasks import DetectionModel  # noqa: E402
from ultralytics.optim import MuSGD  # noqa: E402

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.set_num_threads(1)
torch.manual_seed(0)
model = DetectionModel("yolo26n.yaml", nc=2, verbose=False)
named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
muon = [p for _, p in named if p.ndim in (2, 4)]
plain = [p for _, p in named if p.ndim not in (2, 4)]
opt = MuSGD([{"params": muon, "use_muon": True, "weight_decay": 5e-4},
             {"params": plain, "use_muon": False, "weight_decay": 0.0}],
            lr=0.01, momentum=0.9, nesterov=True, muon=0.2, sgd=1.0)
tensors = {f"start.{n}": p.detach().clone() for n, p in named}
g = torch.Generator().manual_seed(1)
for step in (1, 2):
    for n, p in named:
        p.grad = torch.randn(p.shape, generator=g) * 0.01
        tensors[f"grad{step}.{n}"] = p.grad.clone()
    opt.step()
tensors.update({f"end.{n}": p.detach().clone() for n, p in named})
save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "musgd.safetensors"))
print("parameters", len(named), "muon", len(muon), "plain", len(plain))
