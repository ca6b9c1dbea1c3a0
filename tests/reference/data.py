"""Reference side of the data tests.

    data.py fixtures DIR      images in odd modes, with what PIL decodes them to (DIR/<name>.rgb)
    data.py rrc W H N SEED    statistics of torchvision's RandomResizedCrop.get_params over N draws

Decoding references are PIL (with the EXIF orientation applied and conversion to RGB); a 16-bit
PNG is scaled by >> 8, as OpenCV converts 16-bit to 8-bit (PIL would clip instead).
"""
import json
import math
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms import RandomResizedCrop

rng = np.random.default_rng(7)


def smooth_rgb(h, w):
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) * 255 // (w + h)], -1)
    return img.astype(np.uint8)


def save_expected(out, name, rgb):
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    with open(os.path.join(out, name + ".rgb"), "wb") as f:
        f.write(np.array([rgb.shape[1], rgb.shape[0]], dtype="<u4").tobytes())
        f.write(rgb.tobytes())


def pil_expected(path):
    return np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))


def fixtures(out):
    os.makedirs(out, exist_ok=True)
    base = smooth_rgb(48, 64)
    cases = {}
    # Grayscale, RGBA (alpha dropped, colour kept), BMP, TIFF, WebP (lossless).
    Image.fromarray(base[..., 0]).save(os.path.join(out, "gray.png"))
    cases["gray.png"] = None
    rgba = np.concatenate([base, np.full((48, 64, 1), 100, np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(os.path.join(out, "rgba.png"))
    cases["rgba.png"] = base
    for name in ["plain.bmp", "plain.tiff"]:
        Image.fromarray(base).save(os.path.join(out, name))
        cases[name] = None
    Image.fromarray(base).save(os.path.join(out, "lossless.webp"), lossless=True)
    cases["lossless.webp"] = None
    # 16-bit grayscale PNG.
    deep = (np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)
    Image.fromarray(deep).save(os.path.join(out, "deep16.png"))
    cases["deep16.png"] = np.repeat((deep >> 8).astype(np.uint8)[..., None], 3, -1)
    # CMYK JPEG, as some hymenoptera photos are.
    Image.fromarray(base).convert("CMYK").save(os.path.join(out, "cmyk.jpg"), quality=95)
    cases["cmyk.jpg"] = None
    # JPEG whose EXIF says "rotate 90° clockwise to display" (orientation 6): stored 64x48,
    # displayed 48x64.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(base).save(os.path.join(out, "exif6.jpg"), quality=95, exif=exif)
    cases["exif6.jpg"] = None
    for name, expected in cases.items():
        path = os.path.join(out, name)
        save_expected(out, name, pil_expected(path) if expected is None else expected)
    # Masks: a palette PNG whose palette colours say nothing about the indices, a 16-bit mask,
    # grey stored as RGB, and a real colour image (not a mask).
    idx = (np.arange(48 * 64).reshape(48, 64) % 5).astype(np.uint8)
    idx[idx == 4] = 255
    pal = Image.fromarray(idx, "P")
    palette = list(rng.integers(0, 256, size=768).astype(int))
    pal.putpalette(palette)
    pal.save(os.path.join(out, "mask_palette.png"))
    with open(os.path.join(out, "mask_palette.idx"), "wb") as f:
        f.write(idx.tobytes())
    Image.fromarray(idx.astype(np.uint16) * 1).save(os.path.join(out, "mask16.png"))
    Image.fromarray(np.repeat(idx[..., None], 3, -1)).save(os.path.join(out, "mask_greyrgb.png"))
    Image.fromarray(base).save(os.path.join(out, "mask_colour.png"))
    big = np.full((8, 8), 300, np.uint16)
    Image.fromarray(big).save(os.path.join(out, "mask16_big.png"))
    # Resizing references: Pillow's BILINEAR / BICUBIC (what torchvision's Resize does to PIL
    # images), shrinking and enlarging a noisy picture.
    noisy = np.clip(smooth_rgb(61, 97).astype(int) + rng.integers(-40, 40, size=(61, 97, 3)), 0, 255)
    src = Image.fromarray(noisy.astype(np.uint8))
    src.save(os.path.join(out, "resize_src.png"))
    for name, size, method in [("down_bilinear", (40, 25), Image.BILINEAR),
                               ("up_bilinear", (150, 90), Image.BILINEAR),
                               ("down_bicubic", (33, 47), Image.BICUBIC)]:
        save_expected(out, name, np.asarray(src.resize(size, method)))
    print(json.dumps(sorted(cases)))


def rrc(w, h, n, seed):
    torch.manual_seed(seed)
    img = torch.zeros(1, h, w)
    areas, logr, fallbacks, lefts = [], [], 0, []
    for _ in range(n):
        i, j, ch, cw = RandomResizedCrop.get_params(img, scale=[0.08, 1.0], ratio=[3 / 4, 4 / 3])
        areas.append(ch * cw / (w * h))
        logr.append(math.log(cw / ch))
        if i == (h - ch) // 2 and j == (w - cw) // 2 and (cw == w or ch == h):
            fallbacks += 1
        lefts.append(j / max(w - cw, 1) if w > cw else 0.5)
    a, r = np.array(areas), np.array(logr)
    print(json.dumps({
        "area_mean": a.mean(), "area_std": a.std(), "logratio_mean": r.mean(), "logratio_std": r.std(),
        "area_p10": float(np.quantile(a, 0.1)), "area_p90": float(np.quantile(a, 0.9)),
        "left_mean": float(np.mean(lefts)), "fallback_fraction": fallbacks / n,
    }))


if __name__ == "__main__":
    if sys.argv[1] == "fixtures":
        fixtures(sys.argv[2])
    elif sys.argv[1] == "rrc":
        rrc(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
