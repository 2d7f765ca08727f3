"""How much memory a model will take before it loads, and how much this machine has free.

The estimate reads the safetensors headers of the model's files (parameter count from the
tensor shapes) and multiplies by the size of the dtype it will run in; without readable
headers it falls back to the files' sizes. Nothing here imports torch unless the device is
CUDA.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "int8": 1}
# on top of the weights: activations, the KV cache of a short answer, the processor
LOAD_OVERHEAD = 1.2
# memory kept free for everything else (the OS, Gradio, other requests' activations)
MARGIN_BYTES = 512 * 2**20


def safetensors_params(path: Path) -> int:
    """Parameter count in one safetensors file, read from its header (no tensor is read)."""
    with path.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    count = 0
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        n = 1
        for dim in meta["shape"]:
            n *= int(dim)
        count += n
    return count


def estimate_bytes(model_dir: Path, dtype: str) -> int:
    """What loading the model in ``model_dir`` in ``dtype`` will take: parameters x dtype size
    x LOAD_OVERHEAD (0 when the folder holds no weights)."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    try:
        params = sum(safetensors_params(f) for f in files)
    except (OSError, ValueError, KeyError, struct.error):
        params = 0
    if params:
        return int(params * DTYPE_BYTES.get(dtype, 4) * LOAD_OVERHEAD)
    weights = [*files, *Path(model_dir).glob("*.bin")]
    return int(sum(f.stat().st_size for f in weights if f.is_file()) * LOAD_OVERHEAD)


def available_bytes(device: str) -> int:
    """Memory free for a new model on ``device``: free RAM (psutil), and on CUDA the lesser of
    that and the GPU's free memory (weights pass through RAM on the way)."""
    import psutil

    free = int(psutil.virtual_memory().available)
    if device.startswith("cuda"):
        import torch

        gpu_free, _ = torch.cuda.mem_get_info(torch.device(device))
        free = min(free, int(gpu_free))
    return free
