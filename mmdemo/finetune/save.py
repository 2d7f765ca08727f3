"""The last steps of a run: its per-question results, and the adapter with its report and
metadata, staged in a hidden folder and renamed into the store all or nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmdemo.finetune.run import Prepared, RunResult


def write_predictions(run_dir: Path, rows: list[Any]) -> None:
    """One JSON line per evaluated question in ``run_dir/predictions.jsonl``."""
    with open(run_dir / "predictions.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row.to_dict()) + "\n")


def store_adapter(
    ready: Prepared,
    result: RunResult,
    rows: list[Any],
    run_dir: Path,
    base: tuple[str, str],
    builtin: Path | None,
) -> None:
    """Save the adapter (the method's ``save``) and its report into a hidden staging folder,
    then rename it into the store (all or nothing) under its name, or ``name-2``... when that
    was taken meanwhile (``result`` then says so). ``base``: (model id, model type)."""
    from mmdemo.finetune.report import REPORT_FILES, write_report
    from mmdemo.models.adapters import new_adapter_folder, read_adapter, write_metadata

    cfg = ready.cfg
    store_dir, wanted = result.path.parent, result.adapter
    with new_adapter_folder(store_dir, wanted, builtin) as (final, staging):
        if final != wanted:
            result.adapter, result.path = final, store_dir / final
            result.notes.append(
                f"an adapter called {wanted!r} appeared while this run trained; it was kept "
                f"and this one was saved as {final!r}"
            )
        facts = ready.method.save(ready.plan, cfg, staging, ready.work)
        result.report = write_report(run_dir, cfg, result, rows, facts)
        for name in REPORT_FILES:
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, staging / name)
        write_metadata(
            staging,
            {
                "base_model": base[0],
                "base_model_type": base[1],
                "method": cfg.method,
                "dataset": result.data,
                "description": cfg.description or f"{cfg.method} on {result.data}",
                "metrics": result.metrics,
                "rank": cfg.rank,
                "steps": cfg.steps,
                "stages": cfg.stages,
                "attach": cfg.attach,
                "trainable_parameters": result.trainable,
                "peak_memory_bytes": result.peak_memory_bytes,
                "train_seconds": round(result.train_seconds, 1),
                "val_loss": result.val_loss,
                "rank_scores": {str(k): v for k, v in result.rank_scores.items()},
                "config": cfg.to_dict(),
                **facts,
            },
        )
        read_adapter(staging)  # what the store will read: fail here, not in the chat tab
