"""torchvision's Faster R-CNNs, seeded and randomised, for the Faster R-CNN parity tests.

    faster_rcnn.py OUT_DIR [--only-train]

For each of `fasterrcnn_resnet50_fpn` (plain BatchNorm, as built with no weights),
`fasterrcnn_resnet50_fpn_v2`, `fasterrcnn_mobilenet_v3_large_fpn` (plain BatchNorm) and MobileNetV2 with
an FPN (torchvision's `_mobilenet_extractor(mobilenet_v2(), fpn=True)`), with
91 classes and a smaller input (min_size 256, max_size 400) to keep the test fast: a seeded model
with randomised BatchNorm statistics and affine parameters, its RPN objectness and class logits
rescaled so that detections spread over many classes and scores (a random model's logits are
huge: every score would be 1.0), saved with torch.save as OUT_DIR/<arch>.pth; two images of
different sizes and the eval-mode detections as OUT_DIR/<arch>.safetensors. The MobileNetV3
state dict also runs as `fasterrcnn_mobilenet_v3_large_320_fpn` (its own 320/640 transform and
150 proposals), OUT_DIR/fasterrcnn_mobilenet_v3_large_320_fpn.safetensors.

Training: `fasterrcnn_resnet50_fpn` with FrozenBatchNorm2d (what torchvision builds from
pretrained weights) in training mode after torch.manual_seed(123): the four losses and the
gradients of the box predictor, OUT_DIR/train.safetensors (with the images and targets), its state dict as
OUT_DIR/train.pth (with --only-train, only this and counts.json). The tutorial's MobileNetV2 model (its features as the backbone, one map,
2 classes): OUT_DIR/fasterrcnn_mobilenet_v2.{pth,safetensors}. OUT_DIR/legacy.pth is the v1 state dict with the FPN and RPN head keys of
checkpoints older than their version 2 (`backbone.fpn.inner_blocks.0.weight`,
`rpn.head.conv.weight`). OUT_DIR/imagenet_resnet50.pth and imagenet_mobilenet_v3_large.pth are classification
checkpoints for the backbone loads; counts.json also holds the trainable parameters of 2-class
models with torchvision's default 3 trainable backbone layers. counts.json: state_dict keys and parameters of each model, as torchvision
counts them.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from torchvision.models import mobilenet_v2, mobilenet_v3_large, resnet50
from torchvision.models.detection import (FasterRCNN, fasterrcnn_mobilenet_v3_large_320_fpn,
                                          fasterrcnn_mobilenet_v3_large_fpn, fasterrcnn_resnet50_fpn,
                                          fasterrcnn_resnet50_fpn_v2)
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import _mobilenet_extractor, _resnet_fpn_extractor
from torchvision.ops.misc import FrozenBatchNorm2d

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bn_stats import randomise_bn_stats  # noqa: E402
from detector_calibration import calibrate_rcnn  # noqa: E402

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.set_num_threads(1)  # the Rust side runs single-threaded too: the same summation order
counts = {}
g = torch.Generator().manual_seed(9)
images = [torch.rand(3, 240, 320, generator=g), torch.rand(3, 300, 200, generator=g)]


def count(name, m):
    sd = m.state_dict()
    counts[name] = {"keys": len(sd), "params": sum(p.numel() for p in m.parameters())}


def detections(m, prefix=""):
    m.eval()
    with torch.no_grad():
        dets = m(images)
    d = {}
    for i, det in enumerate(dets):
        for k in ("boxes", "scores", "labels"):
            d[f"{prefix}{k}{i}"] = det[k]
    return d


small = dict(min_size=256, max_size=400)
builders = {
    "fasterrcnn_resnet50_fpn": lambda: fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, **small),
    "fasterrcnn_resnet50_fpn_v2": lambda: fasterrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, **small),
    "fasterrcnn_mobilenet_v3_large_fpn": lambda: fasterrcnn_mobilenet_v3_large_fpn(
        weights=None, weights_backbone=None, **small),
    # torchvision's mobilenet_backbone("mobilenet_v2", fpn=True) with MobileNetV3's anchors and
    # RPN score threshold: ferrovis' fasterrcnn_mobilenet_v2_fpn.
    "fasterrcnn_mobilenet_v2_fpn": lambda: FasterRCNN(
        _mobilenet_extractor(mobilenet_v2(), True, 6), 91,
        rpn_anchor_generator=AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3),
        rpn_score_thresh=0.05, **small),
}
only_train = len(sys.argv) > 2 and sys.argv[2] == "--only-train"
if not only_train:
    noise = images
    for seed, (arch, build) in enumerate(builders.items()):
        if arch == "fasterrcnn_mobilenet_v2_fpn":
            # MobileNetV2's deepest maps are nearly flat on noise (see the tutorial model below),
            # which leaves many detections tied to the last bit: large blobs instead.
            g2 = torch.Generator().manual_seed(19)
            images = [torch.nn.functional.interpolate(torch.rand(1, 3, h // 40, w // 40, generator=g2),
                                                      size=(h, w), mode="bilinear", align_corners=False)[0]
                      for h, w in ((240, 320), (300, 200))]
        torch.manual_seed(seed)
        m = build()
        count(arch, m)
        randomise_bn_stats(m, torch.Generator().manual_seed(100 + seed), affine=True)
        calibrate_rcnn(m, images)
        torch.save(m.state_dict(), os.path.join(out, arch + ".pth"))
        if arch == "fasterrcnn_resnet50_fpn":
            # The spellings of checkpoints saved before the FPN and RPN head reached version 2.
            legacy = {k.replace(".0.weight", ".weight").replace(".0.bias", ".bias")
                      if k.startswith("backbone.fpn.") else
                      k.replace("rpn.head.conv.0.0.", "rpn.head.conv.") : v
                      for k, v in m.state_dict().items()}
            torch.save(legacy, os.path.join(out, "legacy.pth"))
        data = {"image0": images[0], "image1": images[1]}
        data.update(detections(m))
        save_file({k: v.contiguous() for k, v in data.items()}, os.path.join(out, arch + ".safetensors"))
        if arch == "fasterrcnn_mobilenet_v3_large_fpn":
            m320 = fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None)
            m320.load_state_dict(m.state_dict())
            save_file({k: v.contiguous() for k, v in detections(m320).items()},
                      os.path.join(out, "fasterrcnn_mobilenet_v3_large_320_fpn.safetensors"))
    images = noise

    # The tutorial's second recipe: MobileNetV2's features as the backbone, one feature map.
    from torchvision.ops import MultiScaleRoIAlign  # noqa: E402

    torch.manual_seed(5)
    # Noise averages out in a random network's deep layers, leaving a map that is nearly the same
    # everywhere and translated boxes that score alike to the last bit: these images have large
    # blobs instead, so that the one map varies from place to place.
    blobs = [torch.nn.functional.interpolate(torch.rand(1, 3, h // 40, w // 40, generator=g), size=(h, w),
                                             mode="bilinear", align_corners=False)[0]
             for h, w in ((240, 320), (300, 200))]
    features = mobilenet_v2().features
    features.out_channels = 1280
    m = FasterRCNN(features, 2,
                   rpn_anchor_generator=AnchorGenerator(((32, 64, 128, 256, 512),), ((0.5, 1.0, 2.0),)),
                   box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2), **small)
    count("fasterrcnn_mobilenet_v2", m)
    randomise_bn_stats(m, torch.Generator().manual_seed(105), affine=True)
    noise, images = images, blobs
    # Two classes: a narrower spread keeps the scores off the saturated end, where many round alike.
    calibrate_rcnn(m, images, spread=0.3)
    data = {"image0": blobs[0], "image1": blobs[1]}
    data.update(detections(m))
    torch.save(m.state_dict(), os.path.join(out, "fasterrcnn_mobilenet_v2.pth"))
    save_file({k: v.contiguous() for k, v in data.items()},
              os.path.join(out, "fasterrcnn_mobilenet_v2.safetensors"))
    images = noise

# What torchvision builds from pretrained weights: FrozenBatchNorm2d in the backbone.
torch.manual_seed(7)
backbone = _resnet_fpn_extractor(resnet50(norm_layer=FrozenBatchNorm2d), 3)
m = FasterRCNN(backbone, 91, **small)
count("fasterrcnn_resnet50_fpn_frozen", m)
randomise_bn_stats(m, torch.Generator().manual_seed(107), affine=True)
calibrate_rcnn(m, images)
torch.save(m.state_dict(), os.path.join(out, "train.pth"))
targets = [
    {"boxes": torch.tensor([[20.0, 30.0, 120.0, 150.0], [150.0, 40.0, 300.0, 220.0]]),
     "labels": torch.tensor([3, 17])},
    {"boxes": torch.tensor([[10.0, 60.0, 180.0, 280.0]]), "labels": torch.tensor([1])},
]
m.train()
torch.manual_seed(123)
losses = m(images, targets)
total = sum(losses.values())
total.backward()
data = {k: v.detach() for k, v in losses.items()}
data["image0"], data["image1"] = images
data["cls_score_grad"] = m.roi_heads.box_predictor.cls_score.weight.grad
data["bbox_pred_grad"] = m.roi_heads.box_predictor.bbox_pred.weight.grad
data["fc6_grad"] = m.roi_heads.box_head.fc6.weight.grad
for i, t in enumerate(targets):
    data[f"boxes{i}"] = t["boxes"]
    data[f"labels{i}"] = t["labels"]
save_file({k: v.contiguous() for k, v in data.items()}, os.path.join(out, "train.safetensors"))
if not only_train:
    # Fine-tuning as the tutorial does: ImageNet classification checkpoints as the backbone, two
    # classes, torchvision's default of 3 trainable backbone layers.
    torch.manual_seed(11)
    classifier = resnet50()
    randomise_bn_stats(classifier, torch.Generator().manual_seed(111), affine=True)
    torch.save(classifier.state_dict(), os.path.join(out, "imagenet_resnet50.pth"))
    tuned = FasterRCNN(_resnet_fpn_extractor(resnet50(norm_layer=FrozenBatchNorm2d), 3), 2)
    counts["resnet50_fpn_2_classes_trainable"] = sum(p.numel() for p in tuned.parameters() if p.requires_grad)
    torch.manual_seed(12)
    torch.save(mobilenet_v3_large().state_dict(), os.path.join(out, "imagenet_mobilenet_v3_large.pth"))
    mb = _mobilenet_extractor(mobilenet_v3_large(norm_layer=FrozenBatchNorm2d), True, 3)
    anchors = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
    tuned = FasterRCNN(mb, 2, rpn_anchor_generator=anchors)
    counts["mobilenet_v3_fpn_2_classes_trainable"] = sum(p.numel() for p in tuned.parameters() if p.requires_grad)
with open(os.path.join(out, "counts.json"), "w") as fh:
    json.dump(counts, fh, indent=1)
print(json.dumps(counts))
print({k: float(v) for k, v in losses.items()})
