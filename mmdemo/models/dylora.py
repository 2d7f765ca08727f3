"""DyLoRA adapters served at a chosen rank: ``name@r=k`` is the stored adapter cut to its first
k ranks (rows of A, columns of B) with scaling alpha/k, exactly what DyLoRA trained rank k to
be (``finetune/methods/dylora.py`` RankMask). The cut adapter is an ordinary LoRA of rank k, so
PEFT loads it like any other and it joins mixed-adapter batches unchanged; one trained adapter
can be compared with itself at r = 1, 2, 4... side by side.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

from mmdemo.errors import AdapterError

if TYPE_CHECKING:
    from mmdemo.models.adapters import AdapterInfo

RANK_MARK = "@r="  # "name@r=4"; stored names never hold "@", so the mark is unambiguous


def split_rank(name: str) -> tuple[str, int | None]:
    """``"dy@r=4"`` -> ``("dy", 4)``; a plain name -> ``(name, None)``."""
    stem, mark, rank = name.partition(RANK_MARK)
    if not mark:
        return name, None
    if not rank.isdigit():
        raise AdapterError(
            f"{name!r} asks for rank {rank!r}, which is not a whole number",
            fix=f"write the rank as a number, e.g. {stem}{RANK_MARK}4",
        )
    return stem, int(rank)


def rank_name(name: str, rank: int) -> str:
    return f"{name}{RANK_MARK}{rank}"


def is_dylora(info: AdapterInfo) -> bool:
    """A DyLoRA adapter (trained so that every rank up to its own serves)."""
    return (
        info.method == "dylora"
        and info.peft_type == "LORA"
        and not info.use_dora
        and bool(info.rank)
        and info.serve_rank is None
    )


def listed_ranks(info: AdapterInfo) -> list[int]:
    """The lower ranks menus offer for a DyLoRA adapter: powers of two below its rank (any
    rank from 1 to r is served when asked for by name)."""
    if not is_dylora(info):
        return []
    return [2**i for i in range(int(info.rank).bit_length()) if 2**i < int(info.rank)]


def at_rank(info: AdapterInfo, rank: int) -> AdapterInfo:
    """``info`` served at ``rank``: named ``name@r=rank``, its metrics those its training
    measured at that rank (none when it did not measure that one)."""
    if not is_dylora(info):
        raise AdapterError(
            f"adapter {info.name!r} is a {info.method} adapter; only DyLoRA adapters serve "
            "at a chosen rank",
            fix=f"use {info.name!r} itself",
        )
    if not 1 <= rank <= int(info.rank):
        raise AdapterError(
            f"adapter {info.name!r} has ranks 1 to {info.rank}; {rank} is outside them",
            fix=f"pick a rank from 1 to {info.rank}",
        )
    if rank == info.rank:
        return info
    return dataclasses.replace(
        info,
        name=rank_name(info.name, rank),
        serve_rank=rank,
        metrics=dict(info.rank_scores.get(rank, {})),
        description=f"{info.description or info.name}, served at rank {rank}",
    )


def truncate_lora(source: Path, rank: int, out: Path) -> Path:
    """Write the rank-``rank`` LoRA that the DyLoRA adapter in ``source`` serves: the first
    ``rank`` rows of every A, columns of every B; alpha kept, so PEFT's scaling is alpha/rank
    as in training. Other tensors (a projector trained in full) are copied as they are."""
    from safetensors.torch import load_file, save_file

    from mmdemo.models.adapters import CONFIG, WEIGHTS

    config = json.loads((Path(source) / CONFIG).read_text(encoding="utf-8"))
    if config.get("use_rslora") or config.get("rank_pattern") or config.get("alpha_pattern"):
        raise AdapterError(
            "this DyLoRA adapter uses rsLoRA or per-module ranks, which a cut to a lower rank "
            "would not reproduce",
            fix="serve it at its own rank",
        )
    tensors = load_file(str(Path(source) / WEIGHTS))
    cut = {}
    for key, value in tensors.items():
        if ".lora_A." in key:
            cut[key] = value[:rank].contiguous()
        elif ".lora_B." in key:
            cut[key] = value[:, :rank].contiguous()
        else:
            cut[key] = value
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(cut, str(out / WEIGHTS))
    config["r"] = rank
    (out / CONFIG).write_text(json.dumps(config, indent=2), encoding="utf-8")
    return out


def served_names(info: AdapterInfo) -> list[str]:
    """The names a menu lists for ``info``: its own, then (DyLoRA) ``name@r=k`` per listed rank,
    highest first."""
    return [info.name, *(rank_name(info.name, k) for k in reversed(listed_ranks(info)))]
