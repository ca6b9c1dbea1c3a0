"""Reference side of the optimiser tests: torch.optim itself.

    optim.py OUT_DIR

For each optimiser configuration, a two-layer model with fixed initial weights takes 5 steps on a
fixed least-squares problem, with two parameter groups (weights: base lr and weight decay;
biases: half the lr, no decay). Writes OUT_DIR/optim.safetensors with the data, the initial
weights and, per configuration, the weights after the steps; and OUT_DIR/onecycle.json with
OneCycleLR's learning rates.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file

CONFIGS = {
    "sgd": lambda g: torch.optim.SGD(g, lr=0.1),
    "sgd_momentum": lambda g: torch.optim.SGD(g, lr=0.1, momentum=0.9, dampening=0.1),
    "sgd_nesterov": lambda g: torch.optim.SGD(g, lr=0.1, momentum=0.9, nesterov=True),
    "adam": lambda g: torch.optim.Adam(g, lr=0.01, betas=(0.9, 0.99), eps=1e-8),
    "adamw": lambda g: torch.optim.AdamW(g, lr=0.01, betas=(0.8, 0.95), eps=1e-6),
}


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(5)
    x, y = torch.randn(16, 4, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2)).double()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    result = {"x": x, "y": y}
    result.update({"init." + k: v for k, v in init.items()})
    for name, make in CONFIGS.items():
        model.load_state_dict(init)
        weights = [model[0].weight, model[2].weight]
        biases = [model[0].bias, model[2].bias]
        base_lr = make([torch.zeros(1, requires_grad=True)]).defaults["lr"]
        opt = make([{"params": weights, "weight_decay": 0.05},
                    {"params": biases, "lr": base_lr * 0.5, "weight_decay": 0.0}])
        for _ in range(5):
            opt.zero_grad()
            ((model(x) - y) ** 2).mean().backward()
            opt.step()
        result.update({f"{name}.{k}": v.detach().clone() for k, v in model.state_dict().items()})
    save_file(result, os.path.join(out, "optim.safetensors"))

    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=1.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=40, pct_start=0.3,
                                                div_factor=25.0, final_div_factor=1e4)
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    with open(os.path.join(out, "onecycle.json"), "w") as f:
        json.dump(lrs, f)


if __name__ == "__main__":
    main(sys.argv[1])
