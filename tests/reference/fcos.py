"""torchvision's FCOS (fcos_resnet50_fpn), seeded and calibrated, for the FCOS parity tests.

    fcos.py OUT_DIR

OUT_DIR/fcos_resnet50_fpn.pth: the model with 91 classes as built with no weights (plain
BatchNorm) and a smaller input (min_size 256, max_size 400) to keep the test fast, its BatchNorm
statistics and affine parameters randomised and its head calibrated so that detections spread
over classes and scores as a trained model's do (a fresh head scores every location 0.07, below
the 0.2 threshold). OUT_DIR/fcos_resnet50_fpn.safetensors: two images of different sizes, the
eval-mode detections, the first image's locations (anchors), and, from the same model in training
mode on two fixed targets, the matched indices `compute_loss` used, its three losses and the
gradients of the three predictors' weights.

OUT_DIR/frozen.pth: what torchvision builds from pretrained weights (FrozenBatchNorm2d, the COCO
checkpoint's keys), seeded. OUT_DIR/imagenet_resnet50.pth: a seeded ImageNet ResNet-50 for the
`weights_backbone` load. counts.json: state_dict keys and parameters of both models, and the
trainable parameters of a 2-class model from pretrained weights with torchvision's default 3
trainable backbone layers.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from torchvision.models import resnet50
from torchvision.models.detection import FCOS, fcos_resnet50_fpn
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops.feature_pyramid_network import LastLevelP6P7
from torchvision.ops.misc import FrozenBatchNorm2d

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bn_stats import randomise_bn_stats  # noqa: E402

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.set_num_threads(1)  # the Rust side runs single-threaded too: the same summation order
counts = {}
g = torch.Generator().manual_seed(23)
# Large blobs rather than pixel noise, so the maps vary from place to place.
images = [torch.nn.functional.interpolate(torch.rand(1, 3, h // 30, w // 30, generator=g), size=(h, w),
                                          mode="bilinear", align_corners=False)[0]
          for h, w in ((240, 320), (330, 210))]
targets = [
    {"boxes": torch.tensor([[20.0, 30.0, 120.0, 150.0], [150.0, 40.0, 300.0, 220.0],
                            [60.0, 70.0, 90.0, 95.0]]),
     "labels": torch.tensor([3, 17, 5])},
    {"boxes": torch.tensor([[10.0, 60.0, 180.0, 280.0], [40.0, 100.0, 70.0, 130.0]]),
     "labels": torch.tensor([1, 60])},
]
small = dict(min_size=256, max_size=400)


def count(name, m):
    counts[name] = {"keys": len(m.state_dict()), "params": sum(p.numel() for p in m.parameters())}


def calibrate_fcos(m, images):
    """Class logits centred per class at -3 with std 1 over the locations (so the best few percent
    pass the 0.2 score threshold and the best scores stay clear of 1, where they would round
    alike), centre-ness logits of std 0.5, side distances of about two strides (a random head's
    would be ~0)."""
    head = m.head
    convs = {"cls": head.classification_head.cls_logits, "reg": head.regression_head.bbox_reg,
             "ctr": head.regression_head.bbox_ctrness}
    cap = {}

    def run():
        cap.clear()
        hooks = [c.register_forward_hook(lambda mod, i, o, k=k: cap.setdefault(k, []).append(o))
                 for k, c in convs.items()]
        m.eval()
        with torch.no_grad():
            m(images)
        for h in hooks:
            h.remove()
        # (locations of every level and image, channels)
        return {k: torch.cat([o.permute(0, 2, 3, 1).reshape(-1, o.shape[1]) for o in v]) for k, v in cap.items()}

    with torch.no_grad():
        for c in convs.values():
            c.bias.zero_()
        o = run()
        cls = o["cls"]
        convs["cls"].weight.mul_(1.0 / (cls - cls.mean(0)).std())
        convs["reg"].weight.mul_(1.0 / o["reg"].std())
        convs["ctr"].weight.mul_(0.5 / o["ctr"].std())
        o = run()
        convs["cls"].bias.copy_(-o["cls"].mean(0) - 3.0)
        convs["reg"].bias.fill_(2.0)


torch.manual_seed(31)
m = fcos_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91, **small)
count("fcos_resnet50_fpn", m)
randomise_bn_stats(m, torch.Generator().manual_seed(131), affine=True)
calibrate_fcos(m, images)
torch.save(m.state_dict(), os.path.join(out, "fcos_resnet50_fpn.pth"))
data = {"image0": images[0], "image1": images[1]}
m.eval()
with torch.no_grad():
    for i, det in enumerate(m(images)):
        for k in ("boxes", "scores", "labels"):
            data[f"{k}{i}"] = det[k]
    tl, _ = m.transform(images)
    feats = list(m.backbone(tl.tensors).values())
    data["anchors0"] = m.anchor_generator(tl, feats)[0]

# Training mode: the losses of compute_loss, with the matched indices it used.
m.train()
matched = {}
original = m.head.compute_loss


def spy(targets_, head_outputs, anchors, matched_idxs):
    for i, mi in enumerate(matched_idxs):
        matched[f"matched{i}"] = mi
    return original(targets_, head_outputs, anchors, matched_idxs)


m.head.compute_loss = spy
losses = m(images, targets)
sum(losses.values()).backward()
data.update(matched)
data.update({k: v.detach() for k, v in losses.items()})
data["cls_logits_grad"] = m.head.classification_head.cls_logits.weight.grad
data["bbox_reg_grad"] = m.head.regression_head.bbox_reg.weight.grad
data["bbox_ctrness_grad"] = m.head.regression_head.bbox_ctrness.weight.grad
for i, t in enumerate(targets):
    data[f"target_boxes{i}"] = t["boxes"]
    data[f"target_labels{i}"] = t["labels"]
save_file({k: v.contiguous() for k, v in data.items()}, os.path.join(out, "fcos_resnet50_fpn.safetensors"))


def frozen_fcos(num_classes, trainable):
    body = resnet50(norm_layer=FrozenBatchNorm2d)
    backbone = _resnet_fpn_extractor(body, trainable, returned_layers=[2, 3, 4],
                                     extra_blocks=LastLevelP6P7(256, 256))
    return FCOS(backbone, num_classes, **small)


# What torchvision builds from pretrained weights: FrozenBatchNorm2d in the ResNet.
torch.manual_seed(32)
frozen = frozen_fcos(91, 3)
count("fcos_resnet50_fpn_frozen", frozen)
randomise_bn_stats(frozen, torch.Generator().manual_seed(132), affine=True)
torch.save(frozen.state_dict(), os.path.join(out, "frozen.pth"))
counts["frozen_2_classes_trainable_3"] = sum(
    p.numel() for p in frozen_fcos(2, 3).parameters() if p.requires_grad)

torch.manual_seed(33)
classifier = resnet50()
randomise_bn_stats(classifier, torch.Generator().manual_seed(133), affine=True)
torch.save(classifier.state_dict(), os.path.join(out, "imagenet_resnet50.pth"))
with open(os.path.join(out, "counts.json"), "w") as fh:
    json.dump(counts, fh, indent=1)
print(json.dumps(counts))
print({k: float(v) for k, v in losses.items()})
print([len(data[f"scores{i}"]) for i in range(2)])
