"""Pick the device and dtype a backend runs on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.errors import SettingsError


def pick_device(preference: str = "auto") -> str:
    """``auto`` -> cuda, then mps, then cpu; an explicit choice is checked to exist."""
    import torch

    if preference == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise SettingsError(
            f"device {preference!r} was asked for but torch sees no CUDA device",
            fix="set MMDEMO_DEVICE=auto (or cpu)",
        )
    if preference == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise SettingsError(
                "device 'mps' was asked for but is not available", fix="MMDEMO_DEVICE=auto"
            )
    return preference


def available_devices() -> list[str]:
    """The devices torch can run on here: cpu, then cuda (and cuda:N with several GPUs), mps."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        found += ["cuda", *(f"cuda:{i}" for i in range(count) if count > 1)]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def check_device(device: str, what: str = "training") -> str:
    """``device`` if this machine has it ("auto" always); else a BadInputError that names the
    devices it has."""
    from mmdemo.errors import BadInputError

    device = (device or "auto").strip().lower()
    if device == "auto":
        return device
    present = available_devices()
    if device in present:
        return device
    fix = f"pick one of: auto, {', '.join(present)}"
    if device.startswith("cuda"):
        raise BadInputError(
            f"{what} on {device!r} was asked for, but torch sees no such CUDA GPU on this "
            f"machine (it has: {', '.join(present)})",
            fix=fix + " (cuda needs an NVIDIA GPU and a CUDA build of torch)",
        )
    if device == "mps":
        raise BadInputError(
            f"{what} on 'mps' was asked for, but this machine has no Apple GPU", fix=fix
        )
    raise BadInputError(f"{device!r} is not a device mmdemo knows (auto, cpu, cuda, mps)", fix=fix)


# Backends whose weights run in bfloat16 on a CPU with native bf16 instructions (matrix
# products at about twice fp32's speed, half the bytes read per token); the others stay in
# float32 on the CPU (CLIP embeddings are stored in indexes, Whisper/VITS are small).
CPU_BF16_BACKENDS = ("vlm", "llm", "alm")
# /proc/cpuinfo flags that mean bf16 arithmetic in hardware (x86: AVX512-BF16, AMX; Arm: BF16)
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


@dataclass(frozen=True)
class DtypeChoice:
    """The dtype a backend loads in, and why (the System tab shows both)."""

    dtype: str
    reason: str


def cpu_bf16_flags() -> tuple[str, ...]:
    """The CPU's native-bf16 feature flags (empty when it has none or they cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    found = tuple(f for f in BF16_CPU_FLAGS if f in flags)
    if found or text:
        return found
    import torch  # no /proc (macOS, Windows): ask torch's cpuinfo

    cpu = getattr(torch, "cpu", None)
    probes = (("avx512_bf16", "_is_avx512_bf16_supported"), ("amx_bf16", "_is_amx_tile_supported"))
    return tuple(name for name, fn in probes if getattr(cpu, fn, lambda: False)())


def choose_dtype(device: str, preference: str = "auto", backend: str | None = None) -> DtypeChoice:
    """``auto`` -> bfloat16 on GPUs with bf16, float16 on other GPUs and MPS; on a CPU,
    bfloat16 for the VLM and the text LLM when the CPU has native bf16, else float32."""
    if preference != "auto":
        return DtypeChoice(preference, "set by MMDEMO_DTYPE")
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_bf16_supported():
            return DtypeChoice("bfloat16", "the GPU computes in bf16")
        return DtypeChoice("float16", "the GPU has no bf16; float16 halves memory and time")
    if device == "mps":
        return DtypeChoice("float16", "Apple GPU (MPS): float16")
    if backend not in CPU_BF16_BACKENDS:
        return DtypeChoice("float32", "float32 on the CPU for this backend")
    flags = cpu_bf16_flags()
    if flags:
        return DtypeChoice(
            "bfloat16", f"the CPU has native bf16 ({', '.join(flags)}): about 2x fp32's speed"
        )
    return DtypeChoice(
        "float32", "the CPU has no native bf16 instructions (bf16 would be emulated, slower)"
    )


def pick_dtype(device: str, preference: str = "auto", backend: str | None = None) -> str:
    """The dtype name ``choose_dtype`` picks (without a backend, float32 on the CPU)."""
    return choose_dtype(device, preference, backend).dtype


def torch_dtype(name: str) -> Any:
    """The torch dtype object for a dtype name."""
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def module_footprint(module: Any) -> tuple[int, int]:
    """(parameter count, bytes of parameters and buffers) of a torch module."""
    params = sum(p.numel() for p in module.parameters())
    nbytes = sum(p.numel() * p.element_size() for p in module.parameters())
    nbytes += sum(b.numel() * b.element_size() for b in module.buffers())
    return params, nbytes


def free_accelerator_memory() -> None:
    """Return cached blocks to the driver after a model is dropped."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if (
        mps is not None
        and getattr(torch.backends, "mps", None)
        and torch.backends.mps.is_available()
    ):
        mps.empty_cache()


def release_memory() -> None:
    """After models were dropped: collect their reference cycles (a full collection takes
    seconds in a big process, so once per batch of drops) and hand cached accelerator blocks
    back."""
    import gc
    import sys

    gc.collect()
    if "torch" in sys.modules:
        free_accelerator_memory()
