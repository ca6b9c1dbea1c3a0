"""Independent PyTorch reference for the YOLOv8 tests (tests/tests/detect_reference.rs).

Written for these tests from the published layer table and loss definitions (see
detect/src/yolov8.rs and detect/src/loss.rs), with plain torch ops; it imports nothing from
ferrovis or Ultralytics.

    python yolo.py model DIR   # weights + eval outputs of yolov8n (3 classes), and an
                               # Ultralytics-style checkpoint (pickled module, float16, 80 classes)
    python yolo.py loss DIR    # loss value and gradients on fixed predictions and targets
"""
import math
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn


def ch(c, width, max_ch):
    return int(math.ceil(min(c, max_ch) * width / 8) * 8)


class Conv(nn.Module):
    def __init__(self, c1, c2, k=1, s=1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)

    def forward(self, x):
        return F.silu(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c, shortcut):
        super().__init__()
        self.cv1, self.cv2, self.add = Conv(c, c, 3), Conv(c, c, 3), shortcut

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    def __init__(self, c1, c2, n, shortcut):
        super().__init__()
        self.c = c2 // 2
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).split(self.c, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c1, c2):
        super().__init__()
        self.cv1, self.cv2 = Conv(c1, c1 // 2, 1), Conv(c1 // 2 * 4, c2, 1)

    def forward(self, x):
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(F.max_pool2d(y[-1], 5, 1, 2))
        return self.cv2(torch.cat(y, 1))


class DFL(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(16, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(16.0).view(1, 16, 1, 1)


class Detect(nn.Module):
    def __init__(self, nc, chs):
        super().__init__()
        self.nc = nc
        c2, c3 = max(16, chs[0] // 4, 64), max(chs[0], min(nc, 100))
        self.cv2 = nn.ModuleList(nn.Sequential(Conv(c, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 64, 1)) for c in chs)
        self.cv3 = nn.ModuleList(nn.Sequential(Conv(c, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for c in chs)
        self.dfl = DFL()

    def forward(self, xs):
        return [torch.cat((a(x), b(x)), 1) for x, a, b in zip(xs, self.cv2, self.cv3)]


class Upsample(nn.Module):
    def forward(self, x):
        return F.interpolate(x, scale_factor=2.0, mode="nearest")


class Concat(nn.Module):
    pass


# (from, module builder) per layer; channels/repeats scaled for yolov8n.
def build_layers(nc, depth=0.33, width=0.25, max_ch=1024):
    c = lambda v: ch(v, width, max_ch)  # noqa: E731
    n = lambda r: max(round(r * depth), 1) if r > 1 else r  # noqa: E731
    return [
        (-1, Conv(3, c(64), 3, 2)), (-1, Conv(c(64), c(128), 3, 2)), (-1, C2f(c(128), c(128), n(3), True)),
        (-1, Conv(c(128), c(256), 3, 2)), (-1, C2f(c(256), c(256), n(6), True)),
        (-1, Conv(c(256), c(512), 3, 2)), (-1, C2f(c(512), c(512), n(6), True)),
        (-1, Conv(c(512), c(1024), 3, 2)), (-1, C2f(c(1024), c(1024), n(3), True)),
        (-1, SPPF(c(1024), c(1024))),
        (-1, Upsample()), ([-1, 6], Concat()), (-1, C2f(c(1024) + c(512), c(512), n(3), False)),
        (-1, Upsample()), ([-1, 4], Concat()), (-1, C2f(c(512) + c(256), c(256), n(3), False)),
        (-1, Conv(c(256), c(256), 3, 2)), ([-1, 12], Concat()), (-1, C2f(c(256) + c(512), c(512), n(3), False)),
        (-1, Conv(c(512), c(512), 3, 2)), ([-1, 9], Concat()), (-1, C2f(c(512) + c(1024), c(1024), n(3), False)),
        ([15, 18, 21], Detect(nc, [c(256), c(512), c(1024)])),
    ]


class DetectionModel(nn.Module):
    def __init__(self, nc):
        super().__init__()
        layers = build_layers(nc)
        self.froms = [f for f, _ in layers]
        self.model = nn.Sequential(*[m for _, m in layers])

    def forward(self, x):
        outs = []
        for f, m in zip(self.froms, self.model):
            if isinstance(m, Concat):
                x = torch.cat([x, outs[f[1]]], 1)
            elif isinstance(m, Detect):
                x = m([outs[i] for i in f])
            else:
                x = m(x)
            outs.append(x)
        return x


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("dfl.conv.weight") or name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif name.endswith("bn.weight"):
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75)
            else:
                fan_in = t[0].numel() if t.dim() > 1 else 10
                t.copy_(torch.randn(t.shape, generator=g) / math.sqrt(fan_in))


def make_anchors(sizes, strides):
    points, st = [], []
    for (h, w), s in zip(sizes, strides):
        sy, sx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
        points.append(torch.stack((sx, sy), -1).view(-1, 2))
        st.append(torch.full((h * w, 1), float(s)))
    return torch.cat(points), torch.cat(st)


def decode(raw, nc):
    b = raw[0].shape[0]
    x = torch.cat([r.view(b, 64 + nc, -1) for r in raw], 2)
    box, cls = x.split((64, nc), 1)
    anchors, strides = make_anchors([r.shape[2:] for r in raw], (8, 16, 32))
    a = box.shape[2]
    d = (box.view(b, 4, 16, a).softmax(2) * torch.arange(16.0).view(1, 1, 16, 1)).sum(2)
    lt, rb = d.chunk(2, 1)
    pts = anchors.T.unsqueeze(0)
    x1y1, x2y2 = pts - lt, pts + rb
    xywh = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * strides.T.unsqueeze(0)
    return torch.cat((xywh, cls.sigmoid()), 1)


def model_case(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    m = DetectionModel(3)
    randomize(m, 1)
    m.eval()
    torch.save(m.state_dict(), os.path.join(out, "weights.pt"))
    x = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        raw = m(x)
        expected = {"input": x, "decoded": decode(raw, 3)}
        expected.update({f"raw{i}": r for i, r in enumerate(raw)})
    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(out, "expected.safetensors"))
    # An Ultralytics-style checkpoint: the pickled module in float16 under "model", "ema" None.
    coco = DetectionModel(80)
    randomize(coco, 3)
    # Ultralytics keeps the class names on the model; these differ from COCO's on purpose.
    coco.names = {i: f"thing{i}" for i in range(80)}
    torch.save({"epoch": -1, "best_fitness": None, "model": coco.half(), "ema": None,
                "updates": None, "optimizer": None, "train_args": {"imgsz": 640}},
               os.path.join(out, "yolov8n-style.pt"))
    print("tensors", len(coco.state_dict()))


# ---------------------------------------------------------------------------------------------
# Loss, from the definitions (task-aligned assigner, BCE, CIoU, DFL).

def ciou(b1, b2, eps=1e-7):
    (x1, y1, x2, y2), (u1, v1, u2, v2) = b1.chunk(4, -1), b2.chunk(4, -1)
    w1, h1, w2, h2 = x2 - x1, y2 - y1 + eps, u2 - u1, v2 - v1 + eps
    inter = (torch.min(x2, u2) - torch.max(x1, u1)).clamp(0) * (torch.min(y2, v2) - torch.max(y1, v1)).clamp(0)
    iou = inter / (w1 * h1 + w2 * h2 - inter + eps)
    cw, chh = torch.max(x2, u2) - torch.min(x1, u1), torch.max(y2, v2) - torch.min(y1, v1)
    c2 = cw ** 2 + chh ** 2 + eps
    rho2 = ((u1 + u2 - x1 - x2) ** 2 + (v1 + v2 - y1 - y2) ** 2) / 4
    v = (4 / math.pi ** 2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


def assign(scores, pboxes, anchors, labels, gboxes, gmask, nc, topk=10, alpha=0.5, beta=6.0):
    """Loop-based, per image and ground truth: a deliberately different formulation."""
    b, a, _ = scores.shape
    t_boxes = torch.zeros(b, a, 4)
    t_scores = torch.zeros(b, a, nc)
    fg = torch.zeros(b, a, dtype=torch.bool)
    for i in range(b):
        gts = [j for j in range(gboxes.shape[1]) if gmask[i, j, 0] > 0]
        pos = torch.zeros(len(gts), a)
        metric = torch.zeros(len(gts), a)
        over = torch.zeros(len(gts), a)
        for k, j in enumerate(gts):
            g = gboxes[i, j]
            inside = ((anchors[:, 0] - g[0]) > 1e-9) & ((anchors[:, 1] - g[1]) > 1e-9) & \
                     ((g[2] - anchors[:, 0]) > 1e-9) & ((g[3] - anchors[:, 1]) > 1e-9)
            u = ciou(g.expand(a, 4), pboxes[i]).squeeze(-1).clamp(0) * inside
            s = scores[i, :, int(labels[i, j, 0])] * inside
            metric[k] = s ** alpha * u ** beta
            over[k] = u
            top = metric[k].topk(min(topk, a)).indices
            pos[k, top] = 1.0
            pos[k] *= inside
        for anc in range(a):
            owners = [k for k in range(len(gts)) if pos[k, anc] > 0]
            if len(owners) > 1:
                best = int(over[:, anc].argmax())
                pos[:, anc] = 0
                pos[best, anc] = 1
        metric = metric * pos
        for anc in range(a):
            owners = [k for k in range(len(gts)) if pos[k, anc] > 0]
            if not owners:
                continue
            k = owners[0]
            j = gts[k]
            fg[i, anc] = True
            t_boxes[i, anc] = gboxes[i, j]
            norm = metric[k, anc] * (over[k] * pos[k]).max() / (metric[k].max() + 1e-9)
            t_scores[i, anc, int(labels[i, j, 0])] = norm
    return t_boxes, t_scores, fg


def loss_case(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    nc, b = 3, 2
    sizes = [(8, 12), (4, 6), (2, 3)]
    raw = [(torch.randn(b, 64 + nc, h, w) * 2).requires_grad_() for h, w in sizes]
    # (image, class, cx, cy, w, h) normalised to the 64×96 input.
    targets = torch.tensor([
        [0, 0, 0.30, 0.40, 0.30, 0.50],
        [0, 2, 0.70, 0.60, 0.40, 0.30],
        [0, 1, 0.50, 0.50, 0.90, 0.80],
        [1, 1, 0.25, 0.25, 0.20, 0.30],
    ])
    x = torch.cat([r.view(b, 64 + nc, -1) for r in raw], 2)
    pdist, plog = x.split((64, nc), 1)
    pdist, plog = pdist.permute(0, 2, 1), plog.permute(0, 2, 1)
    anchors, strides = make_anchors(sizes, (8, 16, 32))
    a = plog.shape[1]
    d = (pdist.view(b, a, 4, 16).softmax(3) * torch.arange(16.0)).sum(3)
    pboxes = torch.cat((anchors - d[..., :2], anchors + d[..., 2:]), -1)
    H, W = 64, 96
    m = 3
    labels, gboxes, gmask = torch.zeros(b, m, 1), torch.zeros(b, m, 4), torch.zeros(b, m, 1)
    counts = [0] * b
    for r in targets:
        i = int(r[0])
        j = counts[i]
        counts[i] += 1
        cx, cy, w, h = r[2] * W, r[3] * H, r[4] * W, r[5] * H
        labels[i, j, 0], gmask[i, j, 0] = r[1], 1
        gboxes[i, j] = torch.tensor([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    with torch.no_grad():
        t_boxes, t_scores, fg = assign(plog.sigmoid(), pboxes * strides, anchors * strides,
                                       labels, gboxes, gmask, nc)
    ssum = max(t_scores.sum(), 1)
    cls = F.binary_cross_entropy_with_logits(plog, t_scores, reduction="sum") / ssum
    t_boxes = t_boxes / strides
    wgt = t_scores.sum(-1)[fg].unsqueeze(-1)
    box = ((1 - ciou(pboxes[fg], t_boxes[fg])) * wgt).sum() / ssum
    tl = torch.cat((anchors - t_boxes[..., :2], t_boxes[..., 2:] - anchors), -1).clamp(0, 15 - 0.01)[fg]
    logits = pdist[fg].reshape(-1, 16)
    left = tl.long()
    wl = (left + 1) - tl
    ce = lambda t: F.cross_entropy(logits, t.view(-1), reduction="none").view(t.shape)  # noqa: E731
    dfl = ((ce(left) * wl + ce(left + 1) * (1 - wl)).mean(-1, keepdim=True) * wgt).sum() / ssum
    parts = torch.stack((box * 7.5, cls * 0.5, dfl * 1.5))
    total = parts.sum() * b
    total.backward()
    tensors = {f"raw{i}": r.detach() for i, r in enumerate(raw)}
    tensors.update({f"grad{i}": r.grad for i, r in enumerate(raw)})
    tensors.update({"targets": targets, "parts": parts.detach(), "total": total.detach().view(1),
                    "foreground": fg.float(), "target_scores": t_scores})
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "loss.safetensors"))
    print("positives", int(fg.sum()), "total", float(total.detach()))


if __name__ == "__main__":
    {"model": model_case, "loss": loss_case}[sys.argv[1]](sys.argv[2])
