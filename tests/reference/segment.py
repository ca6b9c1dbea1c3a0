"""Reference values for tests/tests/segment_reference.rs, computed with PyTorch:

- segmentation losses on seeded logits and targets (some pixels 255 = ignore): cross-entropy
  (`F.cross_entropy(ignore_index=255)`), smp's multiclass soft Dice (its formula written out),
  softmax focal loss (γ = 2), and a sum;
- torchvision resnet18 and mobilenet_v2 classifiers (random init) for encoder loading;
- a U-Net with smp's layout on ResNet34 (tests/reference/unet.py), random init with randomised
  BatchNorm statistics, state_dict saved with torch.save, and its eval-mode output.

    python segment.py OUT_DIR
"""
import os
import sys

import torch
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bn_stats import randomise_bn_stats  # noqa: E402
from unet import Unet  # noqa: E402

IGNORE = 255


def dice_loss(logits, target):
    c = logits.shape[1]
    valid = (target != IGNORE)
    probs = logits.softmax(1) * valid.unsqueeze(1)
    onehot = F.one_hot(target * valid, c).permute(0, 3, 1, 2) * valid.unsqueeze(1)
    onehot = onehot.to(logits.dtype)
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    card = (probs + onehot).sum(dims)
    dice = (2 * inter) / card.clamp_min(1e-7)
    present = (onehot.sum(dims) > 0).to(logits.dtype)
    return ((1 - dice) * present).mean()


def focal_loss(logits, target, gamma=2.0):
    valid = target != IGNORE
    logp = logits.log_softmax(1).gather(1, (target * valid).unsqueeze(1)).squeeze(1)
    loss = -((1 - logp.exp()) ** gamma) * logp
    return (loss * valid).sum() / valid.sum()


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4, 9, 11, generator=g) * 2
    target = torch.randint(0, 4, (2, 9, 11), generator=g)
    target[torch.rand(2, 9, 11, generator=g) < 0.2] = IGNORE
    target[:, :, 0] = 1  # class 3 may be rare; keep every class present except by chance
    ce = F.cross_entropy(logits, target, ignore_index=IGNORE)
    dice = dice_loss(logits, target)
    focal = focal_loss(logits, target)
    # A target missing class 2 entirely: Dice counts that class as 0.
    target_missing = target.clone()
    target_missing[target_missing == 2] = 0
    values = {
        "logits": logits, "target": target, "target_missing": target_missing,
        "ce": ce.reshape(1), "dice": dice.reshape(1), "focal": focal.reshape(1),
        "dice_missing": dice_loss(logits, target_missing).reshape(1),
        "ce_plus_half_dice": (ce + 0.5 * dice).reshape(1),
    }
    save_file({k: v.contiguous() for k, v in values.items()}, os.path.join(out, "losses.safetensors"))

    torch.manual_seed(0)
    m = Unet("resnet34", classes=1)
    randomise_bn_stats(m, g)
    m.eval()
    torch.save(m.state_dict(), os.path.join(out, "unet.pth"))
    x = torch.rand(1, 3, 64, 96, generator=g)
    with torch.no_grad():
        y = m(x)
    save_file({"input": x, "out": y.contiguous()}, os.path.join(out, "unet.safetensors"))
    # ImageNet-style classifiers whose weights a segmentation encoder takes (classifier dropped;
    # MobileNetV3's has a hidden layer, classifier.0, which an encoder has no place for either).
    for name in ["resnet18", "mobilenet_v2", "mobilenet_v3_large"]:
        clf = getattr(torchvision.models, name)(weights=None)
        torch.save(clf.state_dict(), os.path.join(out, name + ".pth"))
    print("unet parameters", sum(p.numel() for p in m.parameters()))
    print("ce %.6f dice %.6f focal %.6f" % (ce, dice, focal))


if __name__ == "__main__":
    main(sys.argv[1])
