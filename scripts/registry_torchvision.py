"""Prints the classification part of core/src/hub/registry.rs's ENTRIES from torchvision's own
weight enums: every weight set of every architecture list_models(module=torchvision.models)
names, with its URL, file size and the transforms its `weights.transforms()` applies.

    ~/.cache/ferrovis/torch-2.13.0/bin/python scripts/registry_torchvision.py > /tmp/entries.rs

then paste the output between the markers in registry.rs (and run cargo fmt). The registry test
(tests/tests/suite/hub.rs) checks the result against torchvision again.
"""
import torchvision
from torchvision.models import get_model_weights
from torchvision.transforms._presets import ImageClassification

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def stats(values, imagenet, name):
    return name if tuple(values) == imagenet else "[" + ", ".join(repr(float(v)) for v in values) + "]"


for arch in torchvision.models.list_models(module=torchvision.models):
    enum = get_model_weights(arch)
    for w in enum:
        t = w.transforms
        assert t.func is ImageClassification, (arch, w)
        kw = dict(resize_size=256, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                  interpolation=torchvision.transforms.InterpolationMode.BILINEAR)
        kw.update(t.keywords)
        interp = {"bilinear": "Bilinear", "bicubic": "Bicubic"}[kw["interpolation"].value]
        print(f'    c("{arch}", "{w.name}", {"true" if w == enum.DEFAULT else "false"}, '
              f'"{w.url}", {w.meta["_file_size"]!r}, '
              f'tf({kw["crop_size"]}, {kw["resize_size"]}, Interpolation::{interp}, '
              f'{stats(kw["mean"], IMAGENET_MEAN, "IMAGENET_MEAN")}, '
              f'{stats(kw["std"], IMAGENET_STD, "IMAGENET_STD")})),')
