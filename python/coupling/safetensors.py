"""Reads a safetensors file (libcoupling's checkpoints: model.safetensors, optimizer.safetensors,
rng.safetensors) with numpy alone, for Pythons without the `safetensors` package (Debian's).
With the package, `safetensors.torch.load_file(path)` gives the same tensors.

    from coupling import safetensors
    weights = safetensors.load_torch("runs/RUN/checkpoints/step_1200/model.safetensors")

(Without the package installed, `import coupling_safetensors` with scripts/ on sys.path is the same.)
Usage as a script: coupling-safetensors FILE, or scripts/coupling_safetensors.py FILE
(prints each tensor's name, dtype, shape)
"""
import json
import struct
import sys

import numpy as np

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
           "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}


def load(path):
    """name -> (safetensors dtype, numpy array); BF16 comes as its raw uint16 bits."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: not a safetensors file ({len(data)} bytes)")
    (length,) = struct.unpack("<Q", data[:8])
    if length > len(data) - 8:
        raise ValueError(f"{path}: header length {length} exceeds the file")
    header = json.loads(data[8:8 + length])
    start = 8 + length
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        dtype = entry["dtype"]
        if dtype not in _DTYPES:
            raise ValueError(f"{path}: tensor {name} has dtype {dtype}, not one of {sorted(_DTYPES)}")
        array = np.frombuffer(data[start + begin:start + end], dtype=_DTYPES[dtype]).reshape(entry["shape"])
        tensors[name] = (dtype, array)
    return tensors


def load_torch(path):
    """name -> torch tensor, as safetensors.torch.load_file returns."""
    import torch
    result = {}
    for name, (dtype, array) in load(path).items():
        tensor = torch.from_numpy(array.copy())
        result[name] = tensor.view(torch.bfloat16) if dtype == "BF16" else tensor
    return result


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if len(argv) != 1:
        print("coupling_safetensors.py: give one safetensors file (see --help)", file=sys.stderr)
        return 2
    for name, (dtype, array) in sorted(load(argv[0]).items()):
        print(f"{name}\t{dtype}\t{list(array.shape)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
