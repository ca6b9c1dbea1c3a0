"""The URL torchvision gives each weight set, for the registry check: one `ARCH:WEIGHT URL` line
per member of the weight enums of the architectures named on the command line."""
import sys

from torchvision.models import get_model_weights

for arch in sys.argv[1:]:
    enum = get_model_weights(arch)
    for w in enum:
        print(f"{arch}:{w.name} {w.url} {'default' if w == enum.DEFAULT else ''}".rstrip())
