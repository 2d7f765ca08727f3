"""Every fine-tuning method learns on real weights, with the defaults the sweep chose.

A quick bake-off on the embedded SmolLM2-135M-Instruct (the text task, a few steps, seeded):
every method's validation loss falls below the untrained model's, and bottleneck adapters
learn about as fast as LoRA (with the old hand-set rate, 3e-4, they barely moved). No speed
is measured: only losses.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from mmdemo.finetune.methods import METHODS
from mmdemo.finetune.registry import sft_methods

STEPS, BATCH, VALIDATION = 3, 4, 16
MEZO_STEPS = 20  # forward passes only: more, cheaper steps (as the bake-off gives it)


@pytest.fixture(scope="module")
def real_settings(tiny_settings: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """cpu profile with the embedded SmolLM2 (its dequantised build shared across runs)."""
    home = tmp_path_factory.mktemp("bakeoff-home")
    (home / "models").mkdir()
    shared = tiny_settings.models_dir / "embedded"
    shared.mkdir(parents=True, exist_ok=True)
    (home / "models" / "embedded").symlink_to(shared)
    return tiny_settings.replace(
        profile="cpu", home=home, llm="embedded:smollm2-135m-instruct", device="cpu"
    )


@pytest.fixture(scope="module")
def quick_bakeoff(real_settings: Any) -> dict[str, Any]:
    """Validation loss of the base model and of every method after a few steps."""
    from mmdemo.bench.finetune_sweep import (
        Budget,
        base_validation_loss,
        train_and_validate,
    )
    from mmdemo.errors import MMDemoError
    from mmdemo.finetune.config import TrainConfig
    from mmdemo.finetune.inputs import load_base
    from mmdemo.finetune.methods import get_method

    budget = Budget(steps=STEPS, mezo_steps=MEZO_STEPS, batch_size=BATCH)
    # the base model is read once and copied for each method (QLoRA loads its own 4-bit one)
    model, tokenizer, _, _ = load_base(TrainConfig(base="llm"), real_settings, "cpu", {})
    losses: dict[str, float] = {}
    for method in sft_methods():  # DPO learns from pairs: tests/test_dpo.py
        try:
            get_method(method).check("cpu")
        except MMDemoError:
            continue  # AdaLomo needs CUDA
        trial = train_and_validate(
            real_settings, method, 0.0, budget, {}, 0, VALIDATION, (model, tokenizer)
        )
        losses[method] = trial.val_loss
    return {"base": base_validation_loss(real_settings, VALIDATION), "methods": losses}


def test_every_method_lowers_the_validation_loss_of_a_real_model(quick_bakeoff: dict) -> None:
    base = quick_bakeoff["base"]
    losses = quick_bakeoff["methods"]
    every = sft_methods()
    assert len(losses) >= len(every) - 1, f"methods missing: {set(every) - set(losses)}"
    stuck = {m: round(v, 3) for m, v in losses.items() if not v < base}
    assert not stuck, f"base validation loss {base:.3f}; these did not go below it: {stuck}"


def test_bottleneck_adapters_learn_about_as_fast_as_lora(quick_bakeoff: dict) -> None:
    """The defect the old defaults had: bottleneck adapters at 3e-4 moved the loss a tenth of
    what LoRA did in the same steps (the up-projection starts at zero and a small rate left
    it there); with the swept rate they learn."""
    base, losses = quick_bakeoff["base"], quick_bakeoff["methods"]
    lora_drop = base - losses["lora"]
    bottleneck_drop = base - losses["bottleneck"]
    assert lora_drop > 0
    assert bottleneck_drop >= 0.5 * lora_drop, (
        f"bottleneck lowered the loss by {bottleneck_drop:.3f}, LoRA by {lora_drop:.3f}"
    )


def test_each_methods_default_comes_from_the_sweep_table() -> None:
    from mmdemo.finetune.defaults import FROM_SCRATCH, PRETRAINED, SMALL_MODEL
    from mmdemo.finetune.methods import get_method

    for name in METHODS:
        method = get_method(name)
        assert method.lr_for(SMALL_MODEL) == PRETRAINED[name].lr, name
        assert method.lr_for(SMALL_MODEL - 1) == FROM_SCRATCH[name].lr, name
    assert PRETRAINED["mezo"].mezo_eps > 0


def test_the_sweep_writes_its_choice_into_the_defaults_table(tmp_path: Path) -> None:
    """``bench finetune-sweep --write`` rewrites only its block, and the module then gives the
    chosen values (a copy of the real file is rewritten and imported)."""
    import importlib.util

    from mmdemo.bench.finetune_sweep import DEFAULTS_FILE, Trial, write_defaults
    from mmdemo.bench.report import Table

    copy = tmp_path / "defaults_copy.py"
    copy.write_text(DEFAULTS_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    table = Table("finetune-sweep", "t", ["method"])
    table.chosen = {  # type: ignore[attr-defined]
        "bottleneck": Trial("bottleneck", 0.0123, {}, 1.0, 1.0),
        "mezo": Trial("mezo", 4.5e-5, {"mezo_eps": 0.02}, 3.0, 1.0),
        "lomo": Trial("lomo", 0.007, {"lomo_clip": 1.0}, 2.0, 1.0),
    }
    write_defaults(table, copy)
    spec = importlib.util.spec_from_file_location("defaults_copy", copy)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["defaults_copy"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    finally:
        del sys.modules["defaults_copy"]
    assert module.PRETRAINED["bottleneck"].lr == 0.0123
    assert module.PRETRAINED["mezo"].lr == 4.5e-5 and module.PRETRAINED["mezo"].mezo_eps == 0.02
    assert module.PRETRAINED["lomo"].lomo_clip == 1.0
    assert re.search(r"sweep \d{4}-\d{2}-\d{2}", module.PRETRAINED["lomo"].source)
    # methods the sweep did not run, and the hand-set table, are left as they were
    from mmdemo.finetune.defaults import FROM_SCRATCH, PRETRAINED

    assert repr(module.PRETRAINED["lora"]) == repr(PRETRAINED["lora"])
    assert list(module.PRETRAINED) == list(PRETRAINED)  # every row kept, in its place (ia3 too)
    assert repr(dict(module.FROM_SCRATCH)) == repr(dict(FROM_SCRATCH))
