"""Evaluate a stored adapter (or the base model) on a dataset's test split, through the same
adapter runtime the chat tab serves it with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmdemo.config import Settings
from mmdemo.errors import BadInputError
from mmdemo.finetune.events import EvalProgress, Phase
from mmdemo.finetune.progress import Emit, StopSwitch

BASE = "base"


def test_examples(
    dataset: str, task: str, max_side: int, max_mb: int = 200
) -> tuple[list[Any], str]:
    """The test split of ``dataset`` (validation when it has none)."""
    if dataset == "builtin":
        from mmdemo.finetune.synthetic import synthetic_split

        return synthetic_split("test", task), f"built-in synthetic shapes ({task}), test split"
    from mmdemo.finetune.formats import load_dataset

    data = load_dataset(dataset, task, max_side, max_mb)
    split = (
        "test" if data.splits["test"] else "validation" if data.splits["validation"] else "train"
    )
    return data.splits[split], f"{data.report.describe()}; {split} split"


def evaluate_adapter(
    adapter: str,
    dataset: str,
    settings: Settings,
    run_dir: Path,
    emit: Emit,
    stop: StopSwitch | None = None,
    task: str = "vqa",
    limit: int = 0,
) -> dict[str, Any]:
    """Metrics of ``adapter`` ("base" for none) on ``dataset``; per-question results are
    written to ``run_dir/predictions.jsonl``."""
    from mmdemo.finetune.collate import Collator
    from mmdemo.finetune.evaluate import evaluate
    from mmdemo.models.adapters import AdapterStore
    from mmdemo.models.device import pick_device, pick_dtype
    from mmdemo.models.lora import AdapterRuntime

    stop = stop or StopSwitch()
    store = AdapterStore(settings)
    info = None if adapter in ("", BASE) else store.get(adapter)
    emit(Phase("data", "reading the data"))
    examples, described = test_examples(
        dataset, task, settings.max_image_side, settings.max_dataset_mb
    )
    if limit:
        examples = examples[:limit]
    if not examples:
        raise BadInputError(f"no {task} examples to evaluate on in {dataset}")
    stop.check()
    emit(Phase("load", "loading the base model"))
    from mmdemo.models.backends.vlm import load_parts

    device = pick_device(settings.device)
    model, processor, family, _ = load_parts(
        settings.model_id("vlm"), settings, device, pick_dtype(device, settings.dtype)
    )
    runtime = AdapterRuntime(model, family, max_resident=1)
    collator = Collator(processor, with_images=True, max_side=settings.max_image_side)

    def progress(done: int, of: int) -> None:
        stop.check()
        emit(EvalProgress(done, of))

    emit(Phase("eval", f"evaluating on {len(examples)} questions"))
    with runtime.pin((info,)) as pinned:
        metrics, rows = evaluate(pinned.model, collator, examples, device, progress)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "predictions.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row.to_dict()) + "\n")
    return {**metrics, "adapter": adapter or BASE, "data": described}
