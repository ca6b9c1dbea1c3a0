"""Reference for the k-NN classifier test in tests/tests/suite/dinov2.rs: DINOv2's k-NN rule
(`dinov2/eval/knn.py`: L2-normalised features, the k most cosine-similar training features,
votes weighted by softmax(similarity / T)) written in NumPy, on seeded features.

    python knn.py OUT.safetensors
"""
import sys

import numpy as np
import torch
from safetensors.torch import save_file


def knn_probabilities(train, labels, query, num_classes, k, t):
    train = train / np.maximum(np.linalg.norm(train, axis=1, keepdims=True), 1e-12)
    query = query / np.maximum(np.linalg.norm(query, axis=1, keepdims=True), 1e-12)
    sims = query @ train.T
    k = min(k, train.shape[0])
    idx = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(sims, idx, axis=1)
    w = np.exp((top - top.max(axis=1, keepdims=True)) / t)
    w /= w.sum(axis=1, keepdims=True)
    probs = np.zeros((query.shape[0], num_classes))
    for i in range(query.shape[0]):
        for j in range(k):
            probs[i, labels[idx[i, j]]] += w[i, j]
    return probs


def main():
    rng = np.random.default_rng(7)
    num_classes, dim = 5, 32
    # Clustered features, as a pretrained backbone's are: a centre per class plus noise.
    centres = rng.normal(size=(num_classes, dim))
    labels = rng.integers(0, num_classes, size=200)
    train = centres[labels] + rng.normal(scale=1.5, size=(200, dim))
    qlabels = rng.integers(0, num_classes, size=50)
    query = centres[qlabels] + rng.normal(scale=1.5, size=(50, dim))
    out = {"train": torch.tensor(train, dtype=torch.float32),
           "labels": torch.tensor(labels), "query": torch.tensor(query, dtype=torch.float32),
           "query_labels": torch.tensor(qlabels)}
    f32 = lambda a: a.astype(np.float32).astype(np.float64)
    for k, t in [(20, 0.07), (5, 0.5), (500, 0.07)]:
        p = knn_probabilities(f32(train), labels, f32(query), num_classes, k, t)
        out[f"probs_k{k}_t{t}"] = torch.tensor(p, dtype=torch.float32)
    save_file(out, sys.argv[1])
    print("k-NN accuracy (k=20, T=0.07):", (out["probs_k20_t0.07"].argmax(1).numpy() == qlabels).mean())


if __name__ == "__main__":
    main()
