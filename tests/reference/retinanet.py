"""torchvision's RetinaNets, seeded and randomised, for the RetinaNet parity tests.

    retinanet.py OUT_DIR

For `retinanet_resnet50_fpn` (plain BatchNorm, as built with no weights) and
`retinanet_resnet50_fpn_v2` (BatchNorm, GroupNorm towers), 91 classes and a smaller input
(min_size 256, max_size 400) to keep the test fast: a seeded model with randomised BatchNorm
statistics and affine parameters (GroupNorm's affine parameters too), its classification
predictor rescaled so that scores spread over classes and anchors as a trained model's and its
regression predictor so that boxes stay near their anchors (`calibrate_retinanet`), saved with
torch.save as OUT_DIR/<arch>.pth. OUT_DIR/<arch>.safetensors: two images of different sizes, the
eval-mode detections, the anchors of the first image; and, from the same model in training mode
on two fixed targets, the matched indices, the two losses and the gradients of both predictors'
weights.

`retinanet_resnet50_fpn_frozen`: v1 as torchvision builds it from pretrained weights
(FrozenBatchNorm2d, 3 trainable backbone layers), its training step likewise in
OUT_DIR/retinanet_resnet50_fpn_frozen.{pth,safetensors}. OUT_DIR/legacy.pth: its state dict
spelled as checkpoints older than version 2 of the FPN and the heads
(`backbone.fpn.inner_blocks.0.weight`, `head.classification_head.conv.2.weight`).
OUT_DIR/imagenet_resnet50.pth: a seeded ResNet-50 classification checkpoint for the backbone
load. counts.json: state_dict keys and parameters of each model, and the trainable parameters of
a 2-class v1 from ImageNet weights with torchvision's default 3 trainable backbone layers.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from torchvision.models import resnet50
from torchvision.models.detection import RetinaNet, retinanet_resnet50_fpn, retinanet_resnet50_fpn_v2
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops.feature_pyramid_network import LastLevelP6P7
from torchvision.ops.misc import FrozenBatchNorm2d

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bn_stats import randomise_bn_stats  # noqa: E402
from detector_calibration import calibrate_retinanet  # noqa: E402

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
    {"boxes": torch.tensor([[20.0, 30.0, 120.0, 150.0], [150.0, 40.0, 300.0, 220.0]]),
     "labels": torch.tensor([3, 17])},
    {"boxes": torch.tensor([[10.0, 60.0, 180.0, 280.0]]), "labels": torch.tensor([1])},
]
small = dict(min_size=256, max_size=400)


def count(name, m):
    counts[name] = {"keys": len(m.state_dict()), "params": sum(p.numel() for p in m.parameters())}


def frozen_v1(num_classes, **kwargs):
    """v1 as torchvision builds it from pretrained weights."""
    body = _resnet_fpn_extractor(resnet50(norm_layer=FrozenBatchNorm2d), 3, returned_layers=[2, 3, 4],
                                 extra_blocks=LastLevelP6P7(256, 256))
    return RetinaNet(body, num_classes, **kwargs)


def randomise(m, seed):
    gen = torch.Generator().manual_seed(seed)
    randomise_bn_stats(m, gen, affine=True)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.GroupNorm):
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=gen) + 0.5)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=gen) * 0.1)


def train_step(m, data):
    """One training-mode pass on `targets`: losses, matches and predictor gradients into `data`."""
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
    for i, t in enumerate(targets):
        data[f"target_boxes{i}"] = t["boxes"]
        data[f"target_labels{i}"] = t["labels"]
    return {k: float(v.detach()) for k, v in losses.items()}


builders = {
    "retinanet_resnet50_fpn": lambda: retinanet_resnet50_fpn(weights=None, weights_backbone=None, **small),
    "retinanet_resnet50_fpn_v2": lambda: retinanet_resnet50_fpn_v2(weights=None, weights_backbone=None, **small),
    "retinanet_resnet50_fpn_frozen": lambda: frozen_v1(91, **small),
}
for seed, (arch, build) in enumerate(builders.items()):
    torch.manual_seed(50 + seed)
    m = build()
    count(arch, m)
    randomise(m, 150 + seed)
    calibrate_retinanet(m, images)
    torch.save(m.state_dict(), os.path.join(out, arch + ".pth"))
    data = {"image0": images[0], "image1": images[1]}
    m.eval()
    with torch.no_grad():
        for i, det in enumerate(m(images)):
            for k in ("boxes", "scores", "labels"):
                data[f"{k}{i}"] = det[k]
        tl, _ = m.transform(images)
        feats = list(m.backbone(tl.tensors).values())
        data["anchors0"] = m.anchor_generator(tl, feats)[0]
    print(arch, "detections", [len(data[f"scores{i}"]) for i in range(2)], train_step(m, data))
    save_file({k: v.contiguous() for k, v in data.items()}, os.path.join(out, arch + ".safetensors"))
    if arch == "retinanet_resnet50_fpn_frozen":
        # The spellings of checkpoints saved before the FPN and the heads reached version 2.
        legacy = {}
        for k, v in torch.load(os.path.join(out, arch + ".pth")).items():
            if k.startswith("backbone.fpn.") and "_blocks." in k:
                k = k.replace(".0.weight", ".weight").replace(".0.bias", ".bias")
            elif k.startswith("head.") and ".conv." in k:
                parts = k.split(".")
                i = parts.index("conv")
                k = ".".join(parts[:i + 1] + [str(2 * int(parts[i + 1]))] + parts[i + 3:])
            legacy[k] = v
        torch.save(legacy, os.path.join(out, "legacy.pth"))

# The COCO checkpoints' layout: v1 with FrozenBatchNorm2d (what torchvision loads them into).
counts["retinanet_resnet50_fpn_coco"] = counts["retinanet_resnet50_fpn_frozen"]
# Fine-tuning from an ImageNet backbone: two classes, 3 trainable backbone layers.
torch.manual_seed(13)
classifier = resnet50()
randomise_bn_stats(classifier, torch.Generator().manual_seed(113), affine=True)
torch.save(classifier.state_dict(), os.path.join(out, "imagenet_resnet50.pth"))
tuned = frozen_v1(2)
counts["retinanet_resnet50_fpn_2_classes_trainable"] = sum(
    p.numel() for p in tuned.parameters() if p.requires_grad)
with open(os.path.join(out, "counts.json"), "w") as fh:
    json.dump(counts, fh, indent=1)
print(json.dumps(counts))
