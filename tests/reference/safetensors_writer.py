"""Writes the safetensors format by hand (8-byte little-endian header length, JSON header,
raw little-endian data), for the reference scripts in this folder; no package needed.
Shares no code with the C++ reader it is checked against."""
import json
import os
import struct

import torch


def write_safetensors(path, tensors, metadata, dtype="F32"):
    """tensors: list of (name, torch tensor). int32 tensors are written as I32, every other
    tensor as `dtype` ("F32" or "F64"). Written to path.tmp, then renamed."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors:
        t = t.detach().contiguous().cpu()
        if t.dtype == torch.int32:
            kind, data = "I32", t.numpy().astype("<i4").tobytes()
        elif dtype == "F64":
            kind, data = "F64", t.to(torch.float64).numpy().astype("<f8").tobytes()
        else:
            kind, data = "F32", t.to(torch.float32).numpy().astype("<f4").tobytes()
        header[name] = {"dtype": kind, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
