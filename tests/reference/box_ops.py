"""torchvision.ops' box operations on seeded random inputs, for the tensor box ops' parity test.

    box_ops.py OUT.safetensors

Writes the inputs and torchvision's outputs: 1,000 boxes (some partly outside a 300×400 image,
some smaller than a pixel) with scores rounded to two decimals (many exact ties) and 5 classes;
nms and batched_nms at IoU 0.3, 0.5, 0.7; box_iou, box_area, box_convert both ways,
clip_boxes_to_image, remove_small_boxes; and 5,000 boxes over 80 classes for batched_nms (the
size at which torchvision switches to its per-class loop on the CPU).
"""
import sys

import torch
from safetensors.torch import save_file
from torchvision import ops
from torchvision.models.detection._utils import BoxCoder, Matcher, SSDMatcher
from torchvision.models.detection.anchor_utils import AnchorGenerator, DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList


def random_boxes(n, g):
    xy = torch.rand(n, 2, generator=g) * torch.tensor([440.0, 340.0]) - 20.0
    wh = torch.rand(n, 2, generator=g) * 80.0
    tiny = torch.rand(n, generator=g) < 0.05
    wh[tiny] *= 0.01
    return torch.cat([xy, xy + wh], 1)


g = torch.Generator().manual_seed(7)
boxes = random_boxes(1000, g)
scores = (torch.rand(1000, generator=g) * 100).round() / 100
idxs = torch.randint(0, 5, (1000,), generator=g)
out = {"boxes": boxes, "scores": scores, "idxs": idxs}
for t in (0.3, 0.5, 0.7):
    key = str(int(t * 10))
    out["nms" + key] = ops.nms(boxes, scores, t)
    out["batched" + key] = ops.batched_nms(boxes, scores, idxs, t)
other = boxes[:37]
out["iou"] = ops.box_iou(boxes[:50], other)
out["area"] = ops.box_area(boxes)
out["xywh"] = ops.box_convert(boxes, "xyxy", "xywh")
out["cxcywh"] = ops.box_convert(boxes, "xyxy", "cxcywh")
out["from_cxcywh"] = ops.box_convert(out["cxcywh"], "cxcywh", "xyxy")
out["clipped"] = ops.clip_boxes_to_image(boxes, (300, 400))
out["small_1e-2"] = ops.remove_small_boxes(boxes, 1e-2)
out["small_5"] = ops.remove_small_boxes(boxes, 5.0)

big = random_boxes(5000, g)
big_scores = torch.rand(5000, generator=g)
big_idxs = torch.randint(0, 80, (5000,), generator=g)
out.update({"big_boxes": big, "big_scores": big_scores, "big_idxs": big_idxs})
out["big_batched5"] = ops.batched_nms(big, big_scores, big_idxs, 0.5)
out["empty"] = ops.nms(torch.zeros(0, 4), torch.zeros(0), 0.5)

# Matchers: 8 ground truths against 1,000 anchors; ground truth 0 equals anchors 5 and 17 (an
# exact tie for its highest quality), ground truth 1 overlaps no anchor (its highest quality, 0,
# is every anchor's).
g2 = torch.Generator().manual_seed(3)
anchors = random_boxes(1000, g2)
gts = random_boxes(8, g2)
anchors[17] = anchors[5]
gts[0] = anchors[5]
gts[1] = torch.tensor([500.0, 500.0, 503.0, 504.0])
iou = ops.box_iou(gts, anchors)
out["match_iou"] = iou
out["match_rpn"] = Matcher(0.7, 0.3, allow_low_quality_matches=True)(iou)
out["match_roi"] = Matcher(0.5, 0.5, allow_low_quality_matches=False)(iou)
out["match_ssd"] = SSDMatcher(0.5)(iou)

# BoxCoder with the RoI heads' / SSD's weights and the RPN's; some log sizes past the clip.
ref = random_boxes(500, g2)
props = random_boxes(500, g2)
rel = torch.randn(500, 8, generator=g2) * 3.0
rel[:20, 2] = 40.0
out.update({"coder_ref": ref, "coder_props": props, "rel": rel})
coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
out["encoded"] = coder.encode_single(ref, props)
out["decoded"] = coder.decode_single(rel, props)
coder1 = BoxCoder((1.0, 1.0, 1.0, 1.0))
out["encoded1"] = coder1.encode_single(ref, props)
out["decoded1"] = coder1.decode_single(rel[:, :4], props)


def anchors(generator, image_size, grids):
    images = ImageList(torch.zeros(1, 3, *image_size), [image_size])
    feats = [torch.zeros(1, 1, h, w) for h, w in grids]
    return generator(images, feats)[0]


fpn = AnchorGenerator(((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5)
out["anchors_fpn"] = anchors(fpn, (800, 1216), [(200, 304), (100, 152), (50, 76), (25, 38), (13, 19)])
# An image size no multiple of the strides: 600 // 38 = 15, 1000 // 63 = 15, …
out["anchors_odd"] = anchors(fpn, (600, 1000), [(150, 250), (75, 125), (38, 63), (19, 32), (10, 16)])
# fasterrcnn_mobilenet_v3_large_fpn: two stride-32 levels and the pool level, 15 per location.
mobile = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
out["anchors_mobile"] = anchors(mobile, (320, 320), [(10, 10), (10, 10), (5, 5)])
# SSD300's default boxes (8,732), SSDlite320's, and an unclipped generator on a non-square image.
ssd300 = DefaultBoxGenerator([[2], [2, 3], [2, 3], [2, 3], [2], [2]],
                             scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05],
                             steps=[8, 16, 32, 64, 100, 300])
grids300 = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]
out["dbox_ssd300"] = anchors(ssd300, (300, 300), grids300)
ssdlite = DefaultBoxGenerator([[2, 3] for _ in range(6)], min_ratio=0.2, max_ratio=0.95)
out["dbox_ssdlite"] = anchors(ssdlite, (320, 320), [(20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)])
free = DefaultBoxGenerator([[2], [2, 3], [2, 3]], min_ratio=0.1, max_ratio=0.8, clip=False)
out["dbox_free"] = anchors(free, (300, 500), [(19, 32), (10, 16), (5, 8)])
save_file({k: v.contiguous() for k, v in out.items()}, sys.argv[1])
print({k: tuple(v.shape) for k, v in out.items() if k.startswith(("nms", "batched", "big_b"))})
