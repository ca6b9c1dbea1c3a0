"""One fine-tuning step of ConvNeXt-T, ViT-B/16 and Swin-T in torch, for the Rust side to repeat
from the same weights (tests/tests/suite/zoo_finetune.rs).

    finetune_step.py OUT_DIR

For each architecture, OUT_DIR/<arch>/: weights.pth (a seeded network, normalisation randomised
as zoo.py does, a fresh 5-class head) and expected.safetensors: input (4×3×S×S), labels, and for
mode in (eval, train): loss_<mode> (cross-entropy of the logits in that mode) and gradnorm_<mode>
(the global L2 norm of every parameter's gradient). The training-mode pass runs with stochastic
depth at torchvision's rate (ConvNeXt-T 0.1, Swin-T 0.2; ViT has none, and dropout 0) right after
torch.manual_seed(SEED): libtorch's CPU generator draws the same per-sample masks for the Rust
side when it seeds it the same way and draws in the same order.
"""
import os
import sys

import torch
import torchvision
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from zoo import randomise  # noqa: E402

SEED = 1234
CASES = {"convnext_tiny": 64, "vit_b_16": 64, "swin_t": 64}


def step(model, x, y, train):
    model.zero_grad(set_to_none=True)
    model.train(train)
    torch.manual_seed(SEED)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters() if p.grad is not None))
    return loss.detach(), norm


def main(out):
    torch.set_num_threads(1)
    for arch, size in CASES.items():
        torch.manual_seed(0)
        kwargs = {"image_size": size} if arch.startswith("vit") else {}
        model = torchvision.models.get_model(arch, num_classes=5, **kwargs)
        model.zoo_size = (size, size)
        randomise(model)
        del model.zoo_size
        os.makedirs(os.path.join(out, arch), exist_ok=True)
        torch.save(model.state_dict(), os.path.join(out, arch, "weights.pth"))
        x = torch.randn(4, 3, size, size)
        y = torch.tensor([0, 3, 1, 4])
        result = {"input": x, "labels": y}
        for mode in ("eval", "train"):
            loss, norm = step(model, x, y, mode == "train")
            result[f"loss_{mode}"] = loss.reshape(1)
            result[f"gradnorm_{mode}"] = norm.reshape(1)
        save_file(result, os.path.join(out, arch, "expected.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1])
