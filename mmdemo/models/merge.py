"""Adapters combined through PEFT: several LoRA adapters merged into a new one
(``add_weighted_adapter``: linear, TIES, DARE-TIES), and base + adapter folded into one plain
transformers model (``merge_and_unload``) that runs without PEFT.

Plain functions over PEFT models and folders; the runtime that owns the served model
(``models/lora.py``) holds its lock around them.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.errors import AdapterError, BadInputError
from mmdemo.models.adapters import CONFIG, WEIGHTS, AdapterInfo

# PEFT's combination types offered here (add_weighted_adapter has more; these are the ones
# that keep the parents' rank and need no SVD)
COMBINATIONS = ("linear", "ties", "dare_ties")
MAX_PARENTS = 8


@dataclass(frozen=True)
class MergeSpec:
    """How to combine adapters: PEFT's ``combination_type``, one weight per parent, and the
    share of each task vector that TIES / DARE keep."""

    # linear: the weighted sum of the parents' A and B matrices (each scaled by sqrt(w * s));
    # ties: keep the largest `density` share of each, elect a sign, average what agrees;
    # dare_ties: drop a random (1 - density) share, rescale, then TIES' sign election
    combination_type: str = "linear"
    # one per parent, in the parents' order (negative: subtract that adapter's effect)
    weights: tuple[float, ...] = ()
    # ties / dare_ties: the share of values kept, in (0, 1]; unused by linear
    density: float = 0.5
    # dare_ties drops values at random: this seed makes the merge repeatable
    seed: int = 0

    def __post_init__(self) -> None:
        if self.combination_type not in COMBINATIONS:
            raise BadInputError(
                f"combination type {self.combination_type!r} is not one of "
                f"{', '.join(COMBINATIONS)}",
                fix="pick linear, ties or dare_ties",
            )
        if not self.weights or not all(math.isfinite(w) for w in self.weights):
            raise BadInputError(
                "the merge needs one finite weight per adapter", fix="e.g. weights 0.5, 0.5"
            )
        if all(w == 0 for w in self.weights):
            raise BadInputError("every weight is 0: the merge would do nothing")
        if not 0.0 < self.density <= 1.0:
            raise BadInputError(
                f"density {self.density} is outside (0, 1]", fix="keep e.g. 0.5 of the values"
            )


def check_parents(parents: Sequence[AdapterInfo], spec: MergeSpec) -> None:
    """Refuse parents PEFT cannot merge, before any weights move."""
    names = [p.name for p in parents]
    if len(parents) < 2 or len(parents) > MAX_PARENTS:
        raise BadInputError(
            f"a merge takes 2 to {MAX_PARENTS} adapters; got {len(parents)}",
            fix="pick at least two adapters",
        )
    if len(set(names)) != len(names):
        raise BadInputError("an adapter is named twice in the merge", fix="name each once")
    if len(spec.weights) != len(parents):
        raise BadInputError(
            f"{len(spec.weights)} weight(s) for {len(parents)} adapters",
            fix="give one weight per adapter, in the same order",
        )
    for p in parents:
        if not p.is_lora or p.serve_rank is not None:
            raise AdapterError(
                f"{p.name!r} is a {p.method} adapter; only plain LoRA adapters are merged",
                fix="merge LoRA adapters (not DoRA, IA3, bottleneck or a DyLoRA rank)",
            )
    ranks = {p.rank for p in parents}
    if len(ranks) != 1:
        listed = ", ".join(f"{p.name} r={p.rank}" for p in parents)
        raise AdapterError(
            f"{spec.combination_type} merges adapters of one rank; these have {listed}",
            fix="merge adapters trained with the same rank",
        )


def add_weighted(
    peft_model: Any, names: Sequence[str], spec: MergeSpec, new_name: str, out: Path
) -> Path:
    """Merge the resident adapters ``names`` into ``new_name`` on ``peft_model`` with PEFT's
    ``add_weighted_adapter``, save it (PEFT format, safetensors) and take it off the model
    again; returns the folder holding its config and weights."""
    import torch

    try:
        with torch.random.fork_rng(devices=[]):  # DARE's random drops, repeatable
            torch.manual_seed(spec.seed)
            peft_model.add_weighted_adapter(
                adapters=list(names),
                weights=list(spec.weights),
                adapter_name=new_name,
                combination_type=spec.combination_type,
                density=None if spec.combination_type == "linear" else spec.density,
            )
        peft_model.save_pretrained(
            str(out),
            selected_adapters=[new_name],
            safe_serialization=True,
            save_embedding_layers=False,  # LoRA on linear layers: no embeddings to save
        )
    except ValueError as exc:  # PEFT's own refusals (targets, ranks, modules_to_save)
        raise AdapterError(f"PEFT could not merge {', '.join(names)}: {exc}") from None
    finally:
        if new_name in peft_model.peft_config:
            peft_model.delete_adapter(new_name)
    folder = out / new_name if (out / new_name / CONFIG).is_file() else out
    if not (folder / WEIGHTS).is_file():
        raise AdapterError(f"PEFT saved no {WEIGHTS} for the merge of {', '.join(names)}")
    return folder


def merge_into_base(base: Any, adapter_dir: Path) -> Any:
    """``base`` with the adapter in ``adapter_dir`` folded into its weights (PEFT's
    ``merge_and_unload``): a plain transformers model. ``base`` is changed in place, so it
    must be a copy of its own, never the served model."""
    from peft import PeftModel

    try:
        peft_model = PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=False)
        return peft_model.merge_and_unload()
    except Exception as exc:
        raise AdapterError(f"PEFT could not merge the adapter into the base: {exc}") from exc


def save_model(model: Any, processor: Any, out: Path, meta: dict[str, Any]) -> Path:
    """``model`` (safetensors) and its processor (tokenizer, image processor, chat template)
    saved as one transformers folder, with ``mmdemo.json`` saying what it was made from."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    processor.save_pretrained(str(out))
    (out / "mmdemo.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return out


def zip_folder(folder: Path, archive: Path) -> Path:
    """``folder`` as a zip (its name as the top folder inside); weights are stored, not
    compressed (safetensors barely compress, and big models would take minutes)."""
    partial = archive.with_name(archive.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            kind = zipfile.ZIP_STORED if path.suffix == ".safetensors" else zipfile.ZIP_DEFLATED
            zf.write(path, Path(folder.name) / path.relative_to(folder), compress_type=kind)
    partial.replace(archive)
    return archive
