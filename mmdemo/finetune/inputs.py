"""What a training run starts from: its data, its base model, its stages and what it is
scored on, each read or built before the first training step (``run.train_adapter`` calls
these in order)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmdemo.config import Settings
from mmdemo.errors import BadInputError
from mmdemo.finetune.collate import Collator, drop_too_long
from mmdemo.finetune.config import TrainConfig
from mmdemo.finetune.data import Example
from mmdemo.finetune.progress import MemorySampler
from mmdemo.finetune.stage import Stage

if TYPE_CHECKING:
    from mmdemo.finetune.methods import Method

Splits = dict[str, list[Example]]  # train / validation / test


def load_stage_data(
    cfg: TrainConfig, task: str, max_side: int, max_mb: int = 200
) -> tuple[dict, str]:
    """Splits for one task ("vqa", "caption" or "preference") and a line describing where
    they came from."""
    if task == "preference":
        from mmdemo.finetune.preferences import preference_data

        return preference_data(cfg.dataset, cfg.base, cfg.scale, max_side, max_mb)
    if cfg.dataset == "builtin":
        from mmdemo.finetune.synthetic import synthetic_dataset

        if cfg.base == "llm":
            from mmdemo.finetune.textdata import text_dataset

            return text_dataset(cfg.scale), "built-in text facts"
        return synthetic_dataset(task, cfg.scale), f"built-in synthetic shapes ({task})"
    from mmdemo.finetune.formats import load_dataset

    source = cfg.extra.get("caption_dataset", cfg.dataset) if task == "caption" else cfg.dataset
    data = load_dataset(source, task, max_side, max_mb)
    return data.splits, data.report.describe()


def load_base(
    cfg: TrainConfig, settings: Settings, device: str, extra: dict[str, Any]
) -> tuple[Any, Any, str, str]:
    """(model, processor or tokenizer, family, model id) loaded like the app loads it."""
    from mmdemo.models.device import pick_dtype

    # CPU training keeps float32 weights (bf16 enters through autocast); a GPU trains on the
    # serving dtype (PEFT keeps the adapter's own weights in float32)
    dtype = (
        "float32"
        if device == "cpu" and settings.dtype == "auto"
        else pick_dtype(device, settings.dtype)
    )
    if cfg.base == "llm":
        from mmdemo.models.backends.llm import load_parts

        model_id = settings.model_id("llm")
        model, tokenizer = load_parts(model_id, settings, device, dtype, **extra)
        return model, tokenizer, model.config.model_type, model_id
    from mmdemo.models.backends.vlm import load_parts as load_vlm

    model_id = settings.model_id("vlm")
    model, processor, family, _ = load_vlm(model_id, settings, device, dtype, **extra)
    return model, processor, family, model_id


def read_data(
    cfg: TrainConfig, settings: Settings, data: dict[str, tuple[Splits, str]] | None
) -> tuple[dict[str, Splits], str]:
    """Each stage's splits by task, and one line saying where they all came from."""
    stage_data, descriptions = {}, []
    for task, _ in cfg.stage_steps():
        if data is not None and task in data:
            stage_data[task], described = data[task]
        else:
            stage_data[task], described = load_stage_data(
                cfg, task, settings.max_image_side, settings.max_dataset_mb
            )
        descriptions.append(described)
    return stage_data, "; ".join(descriptions)


@dataclass(frozen=True)
class Base:
    """The base model as loaded for training, and what turns examples into its batches."""

    model: Any
    collator: Collator
    family: str
    model_id: str
    # the process with the base model loaded, before any training state: the bake-off reports
    # each method's peak above this, so the runtime and the model do not hide the differences
    memory_bytes: int


def load_for_training(cfg: TrainConfig, settings: Settings, device: str, method: Method) -> Base:
    """The base model loaded with the method's options, and its collator."""
    model, processor, family, model_id = load_base(
        cfg, settings, device, method.load_kwargs(device)
    )
    memory = MemorySampler(device).current()
    collator = Collator(processor, with_images=cfg.base == "vlm", max_side=settings.max_image_side)
    return Base(model, collator, family, model_id, memory)


def build_stages(
    cfg: TrainConfig, method: Method, base: Base, stage_data: dict[str, Splits]
) -> tuple[list[Stage], list[str]]:
    """The stages to train (examples too long left out) and notes saying what was left out."""
    model_params = sum(p.numel() for p in base.model.parameters())
    stages, notes = [], []
    for task, steps in cfg.stage_steps():
        kept, dropped = drop_too_long(base.collator, stage_data[task]["train"], cfg.max_length)
        if dropped:
            notes.append(
                f"{len(dropped)} {task} examples longer than {cfg.max_length} tokens left out"
            )
        if not kept:
            raise BadInputError(
                f"every {task} example is longer than max_length={cfg.max_length} tokens "
                f"(e.g. {dropped[0]})",
                fix="raise max_length or shorten the answers",
            )
        stages.append(Stage(task, kept, steps, cfg.lr or method.lr_for(model_params)))
    return stages, notes


def held_out_examples(cfg: TrainConfig, final: Splits, notes: list[str]) -> list[Example]:
    """What the adapter is scored on: the last stage's test split (else its validation split,
    else its training split, with a note); none while a recipe is being chosen."""
    test = final["test"] or final["validation"]
    if not test:
        test = final["train"]
        notes.append("the data has no held-out split: the scores are on training examples")
    if cfg.eval_limit:
        test = test[: cfg.eval_limit]
    if not cfg.score_test:
        test = []  # a recipe being chosen: the validation loss alone decides
    return test


def inference_memory(
    model: Any, collator: Collator, examples: list[Example], cfg: TrainConfig, device: str
) -> int:
    """Peak memory of one no-grad forward on a training-size batch (the inference baseline).

    The model stays in train mode: in eval mode bitsandbytes 0.50 repacks 4-bit weights for
    CPU inference for good, and that layout has no backward pass (QLoRA would then train on
    silently wrong gradients)."""
    import torch

    batch = collator(examples[: cfg.batch_size])
    batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
    model.train()
    with MemorySampler(device) as memory, torch.no_grad():
        model(**batch)
    return memory.peak
