"""Shared by the detector reference scripts: a random torchvision detector's heads rescaled so
its detections spread over classes and scores as a trained model's do (a random model's logits
are huge or flat: every score 1.0, or all equal), measured on `images`."""
import torch
from torch import nn


def calibrate_rcnn(m, images, spread=1.5):
    """Rescale the RPN's objectness and the classifier's logits to a spread a trained model has."""
    cap = {}
    head, predictor = m.rpn.head, m.roi_heads.box_predictor
    hooks = [
        head.cls_logits.register_forward_hook(lambda mod, i, o: cap.setdefault("rpn", []).append(o)),
        head.bbox_pred.register_forward_hook(lambda mod, i, o: cap.setdefault("rpn_box", []).append(o)),
        predictor.cls_score.register_forward_hook(lambda mod, i, o: cap.__setitem__("cls_in", i[0])),
        predictor.bbox_pred.register_forward_hook(lambda mod, i, o: cap.__setitem__("box", o)),
    ]
    m.eval()
    with torch.no_grad():
        m(images)
        std_of = lambda key: torch.cat([x.flatten() for x in cap[key]]).std()
        # Objectness and class logits spread as a trained model's; offsets of a trained model's
        # size (a random model's would send boxes thousands of pixels away).
        head.cls_logits.weight.mul_(2.0 / std_of("rpn"))
        head.cls_logits.bias.zero_()
        head.bbox_pred.weight.mul_(0.3 / std_of("rpn_box"))
        # A random head's logits differ by class far more than by proposal, which leaves many
        # proposals within 1e-7 of the same score and NMS choosing between them on rounding:
        # centre them per class and scale what varies between proposals.
        x = cap["cls_in"]
        w = predictor.cls_score.weight
        w.mul_(spread / ((x - x.mean(0)) @ w.t()).std())
        predictor.cls_score.bias.copy_(-(x.mean(0) @ w.t()))
        predictor.bbox_pred.weight.mul_(1.0 / cap["box"].std())
    for h in hooks:
        h.remove()


def calibrate_ssd(m, images):
    """Class logits spread as a trained model's (std 2, centred per class), offsets of a trained
    model's size (std 0.5)."""
    cap = {}
    heads = (m.head.classification_head, m.head.regression_head)
    hooks = [h.register_forward_hook(lambda mod, i, o, k=k: cap.__setitem__(k, o))
             for k, h in zip(("cls", "reg"), heads)]
    m.eval()
    with torch.no_grad():
        m(images)
        cls, reg = cap["cls"], cap["reg"]
        for mod in heads[0].module_list:
            last = mod if isinstance(mod, nn.Conv2d) else mod[1]
            last.weight.mul_(2.0 / (cls - cls.mean((0, 1))).std())
            last.bias.zero_()
        for mod in heads[1].module_list:
            last = mod if isinstance(mod, nn.Conv2d) else mod[1]
            last.weight.mul_(0.5 / reg.std())
            last.bias.zero_()
    for h in hooks:
        h.remove()


def calibrate_retinanet(m, images, spread=1.5, mean=-6.0):
    """RetinaNet's class logits centred per output at `mean` with std `spread` (a few per cent of
    the (anchor, class) pairs above the 0.05 score threshold: enough that the per-level top-k and
    the final cut both bind), offsets of a trained model's size (std 0.3)."""
    cap = {}
    heads = (m.head.classification_head.cls_logits, m.head.regression_head.bbox_reg)
    hooks = [h.register_forward_hook(lambda mod, i, o, k=k: cap.setdefault(k, []).append(o))
             for k, h in zip(("cls", "reg"), heads)]
    m.eval()
    with torch.no_grad():
        m(images)
        # Every level's outputs as (positions, channels).
        flat = lambda key: torch.cat([o.permute(0, 2, 3, 1).reshape(-1, o.shape[1]) for o in cap[key]])
        cls, reg = flat("cls"), flat("reg")
        conv = heads[0]
        y = cls - conv.bias
        scale = spread / (y - y.mean(0)).std()
        conv.weight.mul_(scale)
        conv.bias.copy_(mean - scale * y.mean(0))
        heads[1].weight.mul_(0.3 / reg.std())
        heads[1].bias.zero_()
    for h in hooks:
        h.remove()
