"""fastai's learning-rate suggestions, transcribed with NumPy: the oracle of `engine::lr_find`.

    lr_find_suggest.py CURVE.json

CURVE holds `lrs`, `losses` (the whole recorded curve) and `num_it`. As fastai's `lr_find` does,
the curve loses its first num_it//10 and last 5 points and is cut at the first NaN; then each
rule (valley, minimum, steep, slide, fastai.callback.schedule) gives (suggestion, (lr, loss)).
Prints them as JSON.
"""
import json
import sys

import numpy as np


def valley(lrs, losses, num_it):
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return float(lrs[idx]), (float(lrs[idx]), float(losses[idx]))


def minimum(lrs, losses, num_it):
    i = int(np.argmin(losses))
    return float(lrs[i]) / 10, (float(lrs[i]), float(losses[i]))


def steep(lrs, losses, num_it):
    grads = (losses[1:] - losses[:-1]) / (np.log(lrs[1:]) - np.log(lrs[:-1]))
    i = int(np.argmin(grads))
    return float(lrs[i]), (float(lrs[i]), float(losses[i]))


def slide(lrs, losses, num_it, lr_diff=15, thresh=.005, adjust_value=1.):
    loss_grad = np.gradient(losses)
    r_idx = -1
    l_idx = r_idx - lr_diff
    local_min_lr = lrs[l_idx]
    while (l_idx >= -len(losses)) and (abs(loss_grad[r_idx] - loss_grad[l_idx]) > thresh):
        local_min_lr = lrs[l_idx]
        r_idx -= 1
        l_idx -= 1
    suggestion = float(local_min_lr) * adjust_value
    return suggestion, (suggestion, float(np.interp(np.log10(suggestion), np.log10(lrs), losses)))


def main(path):
    with open(path) as f:
        curve = json.load(f)
    num_it = curve["num_it"]
    lrs = np.array(curve["lrs"][num_it // 10:-5], dtype=np.float64)
    losses = np.array(curve["losses"][num_it // 10:-5], dtype=np.float64)
    nan = np.nonzero(np.isnan(losses))[0]
    if len(nan):
        lrs, losses = lrs[:nan[0]], losses[:nan[0]]
    print(json.dumps({f.__name__: f(lrs, losses, num_it)
                      for f in (valley, minimum, steep, slide)}))


if __name__ == "__main__":
    main(sys.argv[1])
