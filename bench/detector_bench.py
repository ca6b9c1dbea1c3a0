"""What the torchvision-detector bench scripts share: seeded torchvision models and 480×640 inputs
written for a criterion bench of `ferrovis-detect`, that bench run, torchvision timed the same way
(eval: one image under no_grad; train: zero_grad, the losses' sum, backward), and the table of
medians and ratios ferrovis/torchvision (< 1 is faster)."""
import json
import os
import subprocess
import tempfile

import torch
from safetensors.torch import save_file

from timing import median_seconds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def compare(builders, batch, bench, env_var, runs=None):
    """Benches each of `builders` (arch → torchvision builder, called with no weights) on `batch`
    images: writes `<arch>.pth` and `inputs.safetensors` to a folder named by `env_var` for
    `cargo bench --bench <bench>`, then times torchvision. `runs(arch, case)` gives torchvision's
    timed calls (default 10). Prints the table."""
    torch.set_num_threads(2)
    out = tempfile.mkdtemp()
    g = torch.Generator().manual_seed(3)
    images = [torch.rand(3, 480, 640, generator=g) for _ in range(batch)]
    targets = [{"boxes": torch.tensor([[50.0, 60.0, 200.0, 220.0], [300.0, 100.0, 500.0, 400.0]]),
                "labels": torch.tensor([1, 2])} for _ in range(batch)]
    data = {f"image{i}": im for i, im in enumerate(images)}
    for i, t in enumerate(targets):
        data[f"boxes{i}"] = t["boxes"]
        data[f"labels{i}"] = t["labels"]
    save_file(data, os.path.join(out, "inputs.safetensors"))
    models = {}
    for seed, (arch, build) in enumerate(builders.items()):
        torch.manual_seed(seed)
        m = build(weights=None, weights_backbone=None)
        torch.save(m.state_dict(), os.path.join(out, arch + ".pth"))
        models[arch] = m
    env = dict(os.environ, **{env_var: out})
    subprocess.run(["cargo", "bench", "-p", "ferrovis-detect", "--bench", bench, "--", "--noplot"],
                   cwd=ROOT, check=True, env=env)
    rows = []
    for arch, m in models.items():
        def evaluate():
            m.eval()
            with torch.no_grad():
                m(images[:1])

        def train_step():
            m.train()
            m.zero_grad()
            sum(m(images, targets).values()).backward()

        for case, fn in (("eval", evaluate), ("train_step", train_step)):
            theirs = median_seconds(fn, runs(arch, case) if runs else 10)
            # criterion writes "a/b" function names as "a_b".
            est = os.path.join(ROOT, "target", "criterion", bench, f"{arch}_{case}", "new",
                               "estimates.json")
            with open(est) as f:
                ours = json.load(f)["median"]["point_estimate"] / 1e9
            rows.append((f"{arch} {case}", ours, theirs))
    print(f"\n{'case':<50}{'ferrovis':>11}{'torchvision':>13}{'ratio':>7}")
    for case, ours, theirs in rows:
        print(f"{case:<50}{ours * 1e3:>9.0f}ms{theirs * 1e3:>11.0f}ms{ours / theirs:>7.2f}")
