"""(IA)³ through PEFT: learned vectors that rescale the attention keys and values and the MLP's
inner activations (the feed-forward layer's input), a few thousand parameters in all."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mmdemo.errors import BadInputError
from mmdemo.finetune.config import TrainConfig
from mmdemo.finetune.methods import Method, Plan, count_parameters
from mmdemo.finetune.targets import Targets

# (IA)³'s layers (the paper's k, v and feed-forward), by their names in common families
KEY_VALUE = ("k_proj", "v_proj", "qkv")
FEED_FORWARD = ("down_proj", "fc2")


class IA3(Method):
    def prepare(self, model: Any, cfg: TrainConfig, targets: Targets, work: Path) -> Plan:
        from peft import IA3Config, get_peft_model

        chosen = [n for n in targets.linears if n.rsplit(".", 1)[-1] in KEY_VALUE + FEED_FORWARD]
        if not chosen:
            raise BadInputError("(IA)³ found no key/value or feed-forward layers in this model")
        feed_forward = [n for n in chosen if n.rsplit(".", 1)[-1] in FEED_FORWARD]
        config = IA3Config(
            target_modules="|".join(re.escape(n) for n in chosen),
            feedforward_modules="|".join(re.escape(n) for n in feed_forward) or None,
            modules_to_save=list(targets.projector) or None,
            task_type="CAUSAL_LM",
        )
        peft_model = get_peft_model(model, config)
        trainable, total = count_parameters(peft_model)
        return Plan(peft_model, trainable=trainable, total=total)

    def save(self, plan: Plan, cfg: TrainConfig, out: Path, work: Path) -> dict[str, Any]:
        plan.model.save_pretrained(str(out), safe_serialization=True)
        (Path(out) / "README.md").unlink(missing_ok=True)
        return {}
