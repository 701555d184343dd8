"""Minimal safetensors reader/writer (no dependency on the `safetensors` package).

Format: 8-byte little-endian u64 N, then N bytes of UTF-8 JSON header
  {name: {"dtype": str, "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {str: str}}
(offsets relative to the start of the data section), padded with spaces to a multiple of 8,
then the raw little-endian tensor bytes.
"""
from __future__ import annotations

import json
import struct
from typing import Dict, Optional

import numpy as np
import torch

# safetensors dtype -> (numpy dtype, bytes per element)
_NP = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "U8": np.dtype("u1"),
}
_SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "U8": 1}


def _decode(dtype: str, raw: bytes, shape, keep_dtype: bool) -> torch.Tensor:
    if dtype == "BF16":
        u16 = np.frombuffer(raw, dtype="<u2").astype(np.uint32)
        f32 = (u16 << 16).view(np.float32).reshape(shape)
        t = torch.from_numpy(f32.copy())
        return t.to(torch.bfloat16) if keep_dtype else t
    if dtype not in _NP:
        raise ValueError(f"unsupported safetensors dtype {dtype}")
    arr = np.frombuffer(raw, dtype=_NP[dtype]).reshape(shape).copy()
    if dtype == "F16" and not keep_dtype:
        arr = arr.astype(np.float32)
    return torch.from_numpy(arr.astype(arr.dtype.newbyteorder("=")))


def load(path: str, keep_dtype: bool = False, with_metadata: bool = False):
    """Read a safetensors file. Float tensors (F32/F16/BF16) come back as float32
    unless keep_dtype=True. With with_metadata=True returns (tensors, metadata)."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError("file too short")
    (n,) = struct.unpack("<Q", buf[:8])
    if 8 + n > len(buf):
        raise ValueError("header length exceeds file size")
    header = json.loads(buf[8 : 8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", None) or {}
    data = buf[8 + n :]
    out: Dict[str, torch.Tensor] = {}
    for name, info in header.items():
        dt = info["dtype"]
        shape = list(info["shape"])
        b, e = info["data_offsets"]
        numel = int(np.prod(shape)) if shape else 1
        if e - b != numel * _SIZES[dt] or e > len(data):
            raise ValueError(f"bad data_offsets for {name}")
        out[name] = _decode(dt, data[b:e], shape, keep_dtype)
    return (out, meta) if with_metadata else out


def _encode(t: torch.Tensor, dtype: str):
    t = t.detach().cpu().contiguous()
    if t.is_floating_point():
        if dtype == "F16":
            arr = t.to(torch.float32).numpy().astype("<f2")
            return "F16", arr.tobytes()
        arr = t.to(torch.float32).numpy().astype("<f4")
        return "F32", arr.tobytes()
    if t.dtype == torch.int64:
        return "I64", t.numpy().astype("<i8").tobytes()
    if t.dtype == torch.int32:
        return "I32", t.numpy().astype("<i4").tobytes()
    if t.dtype == torch.uint8:
        return "U8", t.numpy().tobytes()
    raise ValueError(f"unsupported torch dtype {t.dtype}")


def save(path: str, tensors: Dict[str, torch.Tensor], metadata: Optional[Dict[str, str]] = None,
         dtype: str = "F32") -> None:
    """Write tensors (sorted by name). Floating tensors are stored as `dtype` (F32 or F16);
    integer tensors keep their integer dtype (I64/I32/U8)."""
    if dtype not in ("F32", "F16"):
        raise ValueError("dtype must be 'F32' or 'F16'")
    header = {}
    chunks = []
    off = 0
    for name in sorted(tensors):
        dt, raw = _encode(tensors[name], dtype)
        header[name] = {"dtype": dt, "shape": list(tensors[name].shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    if metadata:
        header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}, **header}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for c in chunks:
            f.write(c)
