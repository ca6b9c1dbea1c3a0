"""torchvision's SSD300-VGG16 and SSDlite320-MobileNetV3-Large, seeded and randomised, for the
SSD parity tests.

    ssd.py OUT_DIR

For each architecture with 91 classes (built with no weights, as `weights=None,
weights_backbone=None` builds it: SSDlite's MobileNetV3 then has the reduced tail): a seeded model
with randomised BatchNorm statistics and affine parameters, its classification head rescaled so
that its logits spread as a trained model's and its regression head so that boxes stay near their
default boxes, saved with torch.save as OUT_DIR/<arch>.pth; OUT_DIR/<arch>.safetensors holds two
images of different sizes, the eval-mode detections, the default boxes of the first image, and,
from the same model in training mode on two fixed targets, the matched indices, the two losses of
`compute_loss` and the gradients of the classification predictors' weights.

OUT_DIR/imagenet_vgg16.pth and imagenet_mobilenet_v3_large.pth are seeded ImageNet classification
checkpoints; OUT_DIR/backbone_<arch>.safetensors holds the backbone tensors torchvision's
extractors (`_vgg_extractor`, `_mobilenet_extractor`, as `weights_backbone` builds them) take
from them, under the detector's names. counts.json: state_dict keys and parameters of each model,
and trainable parameters of 2-class models with given trainable backbone layers.
"""
import json
import os
import sys
from functools import partial

import torch
from safetensors.torch import save_file
from torch import nn
from torchvision.models import mobilenet_v3_large, vgg16
from torchvision.models.detection import ssd300_vgg16, ssdlite320_mobilenet_v3_large
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.ssd import SSD, _vgg_extractor
from torchvision.models.detection.ssdlite import SSDLiteHead, _mobilenet_extractor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bn_stats import randomise_bn_stats  # noqa: E402
from detector_calibration import calibrate_ssd  # noqa: E402

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.set_num_threads(1)
counts = {}
g = torch.Generator().manual_seed(21)
# Large blobs rather than pixel noise, so the maps vary from place to place.
images = [torch.nn.functional.interpolate(torch.rand(1, 3, h // 30, w // 30, generator=g), size=(h, w),
                                          mode="bilinear", align_corners=False)[0]
          for h, w in ((240, 320), (330, 210))]
targets = [
    {"boxes": torch.tensor([[20.0, 30.0, 120.0, 150.0], [150.0, 40.0, 300.0, 220.0]]),
     "labels": torch.tensor([3, 17])},
    {"boxes": torch.tensor([[10.0, 60.0, 180.0, 280.0]]), "labels": torch.tensor([1])},
]


def count(name, m):
    counts[name] = {"keys": len(m.state_dict()), "params": sum(p.numel() for p in m.parameters())}


builders = {
    "ssd300_vgg16": lambda: ssd300_vgg16(weights=None, weights_backbone=None, num_classes=91),
    "ssdlite320_mobilenet_v3_large": lambda: ssdlite320_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=91),
}
for seed, (arch, build) in enumerate(builders.items()):
    torch.manual_seed(30 + seed)
    m = build()
    count(arch, m)
    randomise_bn_stats(m, torch.Generator().manual_seed(130 + seed), affine=True)
    calibrate_ssd(m, images)
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
    # Training mode: the losses of compute_loss, with the matched indices it used.
    m.train()
    matched = {}
    original = m.compute_loss

    def spy(targets_, head_outputs, anchors, matched_idxs):
        for i, mi in enumerate(matched_idxs):
            matched[f"matched{i}"] = mi
        return original(targets_, head_outputs, anchors, matched_idxs)

    m.compute_loss = spy
    losses = m(images, targets)
    sum(losses.values()).backward()
    data.update(matched)
    data.update({k: v.detach() for k, v in losses.items()})
    for i, mod in enumerate(m.head.classification_head.module_list):
        data[f"cls_grad{i}"] = (mod if isinstance(mod, nn.Conv2d) else mod[1]).weight.grad
    for i, t in enumerate(targets):
        data[f"target_boxes{i}"] = t["boxes"]
        data[f"target_labels{i}"] = t["labels"]
    save_file({k: v.contiguous() for k, v in data.items()}, os.path.join(out, arch + ".safetensors"))

# ImageNet checkpoints as the backbone, as `weights_backbone` takes them.
torch.manual_seed(40)
classifier = vgg16()
torch.save(classifier.state_dict(), os.path.join(out, "imagenet_vgg16.pth"))
extractor = _vgg_extractor(classifier, False, 4)
# What comes from the checkpoint: conv1_1–conv4_3 and conv5 (fc6, fc7 and the extras are new).
save_file({f"backbone.{k}": v.contiguous() for k, v in extractor.state_dict().items()
           if k.startswith("features.") or k.split(".")[:3] in (["extra", "0", "1"], ["extra", "0", "3"],
                                                                  ["extra", "0", "5"])},
          os.path.join(out, "backbone_ssd300_vgg16.safetensors"))
anchors = DefaultBoxGenerator([[2], [2, 3], [2, 3], [2, 3], [2], [2]],
                              scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05], steps=[8, 16, 32, 64, 100, 300])
for t in (4, 0):
    tuned = SSD(_vgg_extractor(vgg16(), False, t), anchors, (300, 300), 2)
    counts[f"ssd300_vgg16_2_classes_trainable_{t}"] = sum(
        p.numel() for p in tuned.parameters() if p.requires_grad)

torch.manual_seed(41)
norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
classifier = mobilenet_v3_large()
randomise_bn_stats(classifier, torch.Generator().manual_seed(141), affine=True)
torch.save(classifier.state_dict(), os.path.join(out, "imagenet_mobilenet_v3_large.pth"))
backbone = mobilenet_v3_large(norm_layer=norm)
backbone.load_state_dict(classifier.state_dict())
extractor = _mobilenet_extractor(backbone, 6, norm)
save_file({f"backbone.{k}": v.contiguous() for k, v in extractor.state_dict().items()
           if not k.startswith("extra.")},
          os.path.join(out, "backbone_ssdlite320_mobilenet_v3_large.safetensors"))
for t in (3,):
    ex = _mobilenet_extractor(mobilenet_v3_large(norm_layer=norm), t, norm)
    lite_anchors = DefaultBoxGenerator([[2, 3] for _ in range(6)], min_ratio=0.2, max_ratio=0.95)
    out_ch = [672, 960, 512, 256, 256, 128]
    tuned = SSD(ex, lite_anchors, (320, 320), 2,
                head=SSDLiteHead(out_ch, lite_anchors.num_anchors_per_location(), 2, norm))
    counts[f"ssdlite320_mobilenet_v3_large_2_classes_trainable_{t}"] = sum(
        p.numel() for p in tuned.parameters() if p.requires_grad)
with open(os.path.join(out, "counts.json"), "w") as fh:
    json.dump(counts, fh, indent=1)
print(json.dumps(counts))
