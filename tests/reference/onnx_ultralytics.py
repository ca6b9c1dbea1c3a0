"""Ultralytics' own ONNX export of a checkpoint, the oracle for `detect export --format onnx`.

    onnx_ultralytics.py MODEL.pt IMGSZ OUT.onnx

Exports on the CPU with Ultralytics' defaults for format=onnx (opset 22 with torch 2.13, static
batch 1, no NMS) except `simplify=False` (onnxslim only rewrites the graph, and is not installed),
and moves the file to OUT.onnx.
"""
import shutil
import sys

from ultralytics import YOLO


def main(model, imgsz, out):
    path = YOLO(model).export(format="onnx", imgsz=int(imgsz), simplify=False, device="cpu")
    shutil.move(path, out)


if __name__ == "__main__":
    main(*sys.argv[1:4])
