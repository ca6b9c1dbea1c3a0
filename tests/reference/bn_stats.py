"""Shared by the reference scripts: BatchNorm running statistics drawn at random, so a parity
check exercises them (fresh ones are 0 and 1, which would hide a mix-up)."""
import torch


def randomise_bn_stats(model, generator, affine=False):
    """Running means N(0, 0.1²), variances U(0.5, 1.5); with `affine`, also the BatchNorms' weights
    U(0.5, 1.5) and biases N(0, 0.1²) (FrozenBatchNorm2d's buffers included)."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=generator) * 0.1)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=generator) + 0.5)
        if affine:
            for m in model.modules():
                if "BatchNorm" in type(m).__name__:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=generator) + 0.5)
                    m.bias.copy_(torch.randn(m.bias.shape, generator=generator) * 0.1)
