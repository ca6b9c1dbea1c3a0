"""Shared by the reference scripts: BatchNorm running statistics drawn at random, so a parity
check exercises them (fresh ones are 0 and 1, which would hide a mix-up)."""
import torch


def randomise_bn_stats(model, generator):
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=generator) * 0.1)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=generator) + 0.5)
