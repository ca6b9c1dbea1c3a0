"""Resolves a dataset YAML with Ultralytics' own `check_det_dataset` (no download) and prints the
train and val folders, class count and names it found, as one JSON line.

    ultralytics_yaml.py DATA.yaml
"""
import json
import os
import sys
import tempfile

# Ultralytics writes its settings file on import: keep it out of the user's home.
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp())
os.environ.setdefault("YOLO_OFFLINE", "1")

from ultralytics.data.utils import check_det_dataset  # noqa: E402

data = check_det_dataset(sys.argv[1], autodownload=False)
print(json.dumps({
    "train": os.path.realpath(str(data["train"])),
    "val": os.path.realpath(str(data["val"])),
    "nc": data["nc"],
    "names": [data["names"][i] for i in range(data["nc"])],
}))
