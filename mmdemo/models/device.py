"""Pick the device and dtype a backend runs on."""

from __future__ import annotations

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


def pick_dtype(device: str, preference: str = "auto") -> str:
    """``auto`` -> bfloat16 on GPUs with bf16, float16 on other GPUs and MPS, float32 on CPU."""
    if preference != "auto":
        return preference
    if device.startswith("cuda"):
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if device == "mps":
        return "float16"
    return "float32"


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
