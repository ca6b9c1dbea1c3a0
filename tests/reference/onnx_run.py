"""Runs ONNX files written by ferrovis with the ONNX project's own checker and ONNX Runtime.

    onnx_run.py MODEL.onnx INPUTS.safetensors OUT.safetensors

INPUTS holds the graph inputs by name (several sets as NAME@K, run one after the other, for the
checks at other batch and image sizes); OUT receives every graph output of each run under the
same suffix, and `meta` prints as JSON on stdout: the opset, the IR version, the metadata
properties and the inputs' and outputs' declared shapes (a name for a dynamic axis).
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
from safetensors.numpy import load_file, save_file


def dims(value):
    return [d.dim_param if d.dim_param else d.dim_value
            for d in value.type.tensor_type.shape.dim]


def main(model_path, inputs_path, out_path):
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    feeds = load_file(inputs_path)
    runs = {}
    for key, array in feeds.items():
        name, _, run = key.partition("@")
        runs.setdefault(run, {})[name] = array
    out = {}
    output_names = [o.name for o in session.get_outputs()]
    for run, feed in runs.items():
        results = session.run(output_names, feed)
        for name, value in zip(output_names, results):
            out[name + ("@" + run if run else "")] = np.ascontiguousarray(value)
    save_file(out, out_path)
    print(json.dumps({
        "opset": [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")][0],
        "ir_version": model.ir_version,
        "metadata": {p.key: p.value for p in model.metadata_props},
        "inputs": {i.name: dims(i) for i in model.graph.input},
        "outputs": {o.name: dims(o) for o in model.graph.output},
        "operators": sorted({n.op_type for n in model.graph.node}),
        "initialisers": [t.name for t in model.graph.initializer],
    }))


if __name__ == "__main__":
    main(*sys.argv[1:4])
