"""Seeded torchvision checkpoints of the architectures named, written where torch.hub caches them
(OUT_DIR/<the file name of the architecture's DEFAULT weights>), as the classify test's stand-in
for downloaded ImageNet weights (nothing is downloaded in make test).

    zoo_checkpoints.py OUT_DIR ARCH...

DenseNet's are saved with the legacy dense-layer names torchvision's real DenseNet files carry
(`denselayer1.norm.1.weight`), which loading must rename.
"""
import os
import re
import sys

import torch
import torchvision
from torchvision.models import get_model_weights

sys.path.insert(0, os.path.dirname(__file__))
from zoo import randomise  # noqa: E402

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.set_num_threads(1)
for arch in sys.argv[2:]:
    torch.manual_seed(0)
    model = torchvision.models.get_model(arch)
    model.zoo_size = (64, 64)
    randomise(model)
    del model.zoo_size
    sd = model.state_dict()
    if arch.startswith("densenet"):
        legacy = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))((?:[12])\.(?:weight|bias|running_mean|running_var))$")
        sd = {legacy.sub(r"\1.\2", k): v for k, v in sd.items()}
    url = get_model_weights(arch).DEFAULT.url
    torch.save(sd, os.path.join(out, url.rsplit("/", 1)[1]))
