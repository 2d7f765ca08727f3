"""Which precision a training run uses: bf16 autocast where the hardware computes bf16 natively
(recent CPUs with AVX512-BF16 or AMX, Ampere and newer GPUs), float32 elsewhere."""

from __future__ import annotations

from pathlib import Path


def cpu_has_native_bf16() -> bool:
    """True on x86 CPUs that advertise avx512_bf16 or amx_bf16 (Linux /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


# Below this many parameters ``auto`` stays in float32: autocast's casts cost more than the
# bf16 matrix products save on tiny matrices, and bf16's 8-bit mantissa blurs the small
# image-dependent differences a tiny random model has to learn from.
BF16_MIN_PARAMS = 50_000_000


def use_bf16(setting: str, device: str, params: int = BF16_MIN_PARAMS) -> bool:
    """Resolve the run's ``bf16`` knob (auto | on | off) for ``device`` and a model size."""
    if setting == "on":
        return True
    if setting == "off" or params < BF16_MIN_PARAMS:
        return False
    if device.startswith("cuda"):
        import torch

        return bool(torch.cuda.is_bf16_supported())
    return device == "cpu" and cpu_has_native_bf16()
