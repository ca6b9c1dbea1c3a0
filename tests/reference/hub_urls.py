"""The URL torchvision gives each weight set, for the registry check: one line per member of the
weight enums of the architectures named on the command line,

    ARCH:WEIGHT URL default|-                                    (detection, segmentation)
    ARCH:WEIGHT URL default|- CROP RESIZE INTERP M0,M1,M2 S0,S1,S2  (classification: its transforms)
"""
import sys

from torchvision.models import get_model_weights
from torchvision.transforms._presets import ImageClassification

for arch in sys.argv[1:]:
    enum = get_model_weights(arch)
    for w in enum:
        line = f"{arch}:{w.name} {w.url} {'default' if w == enum.DEFAULT else '-'}"
        t = w.transforms
        if getattr(t, "func", None) is ImageClassification:
            # The transform's own defaults for the arguments the weight set leaves out.
            tf = t()
            mean = ",".join(repr(float(v)) for v in tf.mean)
            std = ",".join(repr(float(v)) for v in tf.std)
            line += f" {tf.crop_size[0]} {tf.resize_size[0]} {tf.interpolation.value} {mean} {std}"
        print(line)
