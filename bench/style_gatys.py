"""ferrovis vs PyTorch: Gatys style transfer evaluations per second, and feed-forward stylisation
images per second, CPU, 2 threads, one invocation.

    python bench/style_gatys.py [EVALUATIONS]   (default 20)

Gatys: VGG19 (torchvision's, random init: the speed does not depend on the weights; saved once
and read by both), content conv4_2, style conv1_1/2_1/3_1/4_1/5_1, content initialisation, on the
embedded cat and Starry Night at 256² and 512² (longer side). PyTorch runs the tutorial's loop
(`torch.optim.LBFGS`, closure that clamps, runs the VGG trunk up to the deepest layer and the
MSE losses); ferrovis runs `style transfer` (L-BFGS with the strong-Wolfe line search). Each
side reports loss evaluations (forward + backward) per second; ratio = ferrovis / PyTorch
(target ≥ 1.0).

Stylise: Johnson's transformation network (random init) on 512² images, ferrovis
`style predict` vs the same network in PyTorch (built in this script from the paper's layer list).
"""
import os
import re
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
from transformer_net import TransformerNet  # noqa: E402
CONTENT = os.path.join(ROOT, "style", "assets", "chelsea.png")
STYLE = os.path.join(ROOT, "style", "assets", "starry_night.jpg")
LAYERS = {"conv1_1": 0, "conv2_1": 5, "conv3_1": 10, "conv4_1": 19, "conv4_2": 21, "conv5_1": 28}


def load(path, size):
    img = Image.open(path).convert("RGB")
    s = size / max(img.size)
    img = img.resize((round(img.size[0] * s), round(img.size[1] * s)), Image.BILINEAR)
    return torchvision.transforms.functional.to_tensor(img).unsqueeze(0)


def pytorch_gatys(vgg, size, evaluations):
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    style_idx = [LAYERS[n] for n in ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]]
    content_idx = LAYERS["conv4_2"]
    last = max(style_idx + [content_idx])

    def feats(x):
        out, y = {}, (x - mean) / std
        for i, layer in enumerate(vgg[: last + 1]):
            y = layer(y)
            out[i] = y
        return out

    def gram(f):
        n, c, h, w = f.shape
        f = f.view(n, c, h * w)
        return f @ f.transpose(1, 2) / (c * h * w)

    t0 = time.perf_counter()
    content, style = load(CONTENT, size), load(STYLE, size)
    with torch.no_grad():
        c_target = feats(content)[content_idx]
        s_feats = feats(style)
        s_targets = [gram(s_feats[i]) for i in style_idx]
    x = content.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x])
    count = [0]
    while count[0] < evaluations:
        def closure():
            with torch.no_grad():
                x.clamp_(0, 1)
            opt.zero_grad()
            f = feats(x)
            loss = F.mse_loss(f[content_idx], c_target)
            for i, t in zip(style_idx, s_targets):
                loss = loss + 1e6 * F.mse_loss(gram(f[i]), t)
            loss.backward()
            count[0] += 1
            return loss
        opt.step(closure)
    return count[0] / (time.perf_counter() - t0)


def ours_gatys(weights, size, evaluations):
    env = dict(os.environ, OMP_NUM_THREADS="2")
    out = subprocess.run(
        ["cargo", "run", "--release", "-q", "-p", "ferrovis-style", "--", "transfer",
         "--weights", weights, "--content", CONTENT, "--style", STYLE, "--size", str(size),
         "--iterations", str(evaluations), "--device", "cpu",
         "--out", os.path.join(tempfile.gettempdir(), f"ferrovis_gatys_{size}.png")],
        cwd=ROOT, check=True, capture_output=True, text=True, env=env).stdout
    m = re.search(r"in (\d+) evaluations, ([0-9.]+) s", out)
    return int(m.group(1)) / float(m.group(2))


def main():
    evaluations = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    torch.set_num_threads(2)
    work = tempfile.mkdtemp()
    torch.manual_seed(0)
    vgg = torchvision.models.vgg19(weights=None).eval()
    weights = os.path.join(work, "vgg19_features.pth")
    torch.save({k: v for k, v in vgg.state_dict().items() if k.startswith("features.")}, weights)
    for p in vgg.parameters():
        p.requires_grad_(False)
    print(f"Gatys, VGG19, {evaluations} loss evaluations, CPU, 2 threads")
    print(f"{'size':<8}{'ferrovis eval/s':>17}{'PyTorch eval/s':>16}{'ratio':>8}")
    for size in [256, 512]:
        ours = ours_gatys(weights, size, evaluations)
        theirs = pytorch_gatys(vgg.features, size, evaluations)
        print(f"{size:<8}{ours:>17.3f}{theirs:>16.3f}{ours / theirs:>8.2f}")

    net = TransformerNet().eval()
    model = os.path.join(work, "transformer.pth")
    torch.save(net.state_dict(), model)
    images = os.path.join(work, "images")
    os.makedirs(images)
    n = 8
    for i in range(n):
        Image.open(CONTENT).convert("RGB").resize((512, 512)).save(os.path.join(images, f"{i}.png"))
    env = dict(os.environ, OMP_NUM_THREADS="2")
    out = subprocess.run(
        ["cargo", "run", "--release", "-q", "-p", "ferrovis-style", "--", "predict", "--weights",
         model, images, "--out", os.path.join(work, "out"), "--device", "cpu"],
        cwd=ROOT, check=True, capture_output=True, text=True, env=env).stdout
    ours = float(re.search(r"\(([0-9.]+) images/s\)", out).group(1))
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(n):
            x = torchvision.transforms.functional.to_tensor(
                Image.open(os.path.join(images, f"{i}.png")).convert("RGB")).unsqueeze(0)
            y = (net(x * 255) / 255).clamp(0, 1)
            torchvision.transforms.functional.to_pil_image(y[0]).save(os.path.join(work, f"pt{i}.png"))
    theirs = n / (time.perf_counter() - t0)
    print(f"stylize 512x512 ({n} images, decode + network + PNG): ferrovis {ours:.2f} images/s, "
          f"PyTorch {theirs:.2f} images/s, ratio {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
