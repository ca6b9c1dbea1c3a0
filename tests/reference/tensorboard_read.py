"""Reads a run folder's TensorBoard event files with TensorBoard's own reader.

    tensorboard_read.py RUN_DIR

Prints JSON: `files` (event files found), `records` and `crc_ok` (every record's length and data
CRCs recomputed with TensorBoard's `masked_crc32c`), `scalars` ({tag: [[step, value], ...]}) and
`images` ({tag: [[step, width, height], ...]}) as `EventAccumulator` loads them.
"""
import glob
import json
import os
import struct
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c


def check_records(path):
    count, ok = 0, True
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        body = data[pos + 12:pos + 12 + length]
        (body_crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        ok &= masked_crc32c(header) == header_crc and masked_crc32c(body) == body_crc
        pos += 16 + length
        count += 1
    return count, ok and pos == len(data)


def main(run):
    files = sorted(glob.glob(os.path.join(run, "events.out.tfevents.*")))
    records, crc_ok = 0, True
    for f in files:
        n, ok = check_records(f)
        records += n
        crc_ok &= ok
    acc = EventAccumulator(run, size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    scalars = {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]}
    images = {t: [[e.step, e.width, e.height] for e in acc.Images(t)] for t in tags["images"]}
    print(json.dumps({"files": [os.path.basename(f) for f in files], "records": records,
                      "crc_ok": crc_ok, "scalars": scalars, "images": images}))


if __name__ == "__main__":
    main(sys.argv[1])
