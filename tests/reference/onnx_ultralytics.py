"""Ultralytics' own ONNX export of a checkpoint, the oracle for `detect export --format onnx`.

    onnx_ultralytics.py MODEL.pt IMGSZ OUT.onnx [CONF]

Exports on the CPU with Ultralytics' defaults for format=onnx (opset 18 with torch 2.13, static
batch 1, no NMS) except `simplify=False` (onnxslim only rewrites the graph, and is not installed),
and moves the file to OUT.onnx. With CONF, the export has NMS in the graph (`nms=True`,
`conf=CONF`, IoU 0.7, 300 rows).
"""
import shutil
import sys

from ultralytics import YOLO


def main(model, imgsz, out, conf=None):
    extra = {} if conf is None else {"nms": True, "conf": float(conf)}
    path = YOLO(model).export(format="onnx", imgsz=int(imgsz), simplify=False, device="cpu", **extra)
    shutil.move(path, out)


if __name__ == "__main__":
    main(*sys.argv[1:5])
