"""MeZO's own loop on a small regression model: it lowers the loss with forward passes only,
a seed replays the same run on any number of cores, and with a zero learning rate every
perturbation is undone (the weights come back as they were)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from mmdemo.errors import TrainingStopped  # noqa: E402
from mmdemo.finetune.config import TrainConfig  # noqa: E402
from mmdemo.finetune.methods import Plan  # noqa: E402
from mmdemo.finetune.methods.mezo import mezo_stage  # noqa: E402
from mmdemo.finetune.progress import MemorySampler, StepMeter, StopSwitch  # noqa: E402
from mmdemo.finetune.stage import Stage  # noqa: E402


class Regression(torch.nn.Module):
    """y = x W + b with a mean-squared-error loss, shaped like a causal LM's output."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(1)
        # several weights of different sizes, so they fall into different noise groups
        self.w1 = torch.nn.Parameter(torch.randn(6, 40, generator=gen) * 0.1)
        self.w2 = torch.nn.Parameter(torch.randn(40, 3, generator=gen) * 0.1)
        self.b = torch.nn.Parameter(torch.zeros(3))
        self.scale = torch.nn.Parameter(torch.ones(40))

    def forward(self, x: Any, y: Any) -> Any:
        pred = (x @ self.w1 * self.scale) @ self.w2 + self.b
        return SimpleNamespace(loss=torch.nn.functional.mse_loss(pred, y))


def examples(n: int = 64) -> list[dict[str, Any]]:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(n, 6, generator=gen)
    target = torch.randn(6, 3, generator=gen)
    return [{"x": x[i], "y": x[i] @ target} for i in range(n)]


def collate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"x": torch.stack([r["x"] for r in rows]), "y": torch.stack([r["y"] for r in rows])}


def train(lr: float, steps: int = 60, seed: int = 0, stop: StopSwitch | None = None) -> Any:
    model = Regression()
    plan = Plan(model=model, extra=dict(model.named_parameters()), mezo_eps=1e-3)
    for w in plan.extra.values():
        w.requires_grad_(False)
    cfg = TrainConfig(method="mezo", steps=steps, batch_size=16, seed=seed, warmup=0)
    meter = StepMeter(lambda event: None, steps, MemorySampler("cpu"))
    stage = Stage("vqa", examples(), steps, lr)
    mezo_stage(plan, collate, stage, cfg, "cpu", False, meter, stop or StopSwitch())
    return model


def loss(model: Any) -> float:
    with torch.no_grad():
        return float(model(**collate(examples())).loss)


def weights(model: Any) -> list[Any]:
    return [p.detach().clone() for p in model.parameters()]


def test_mezo_lowers_the_loss_with_forward_passes_only() -> None:
    before = loss(Regression())
    after = loss(train(lr=3e-3, steps=200))
    assert after < 0.6 * before, (before, after)


def test_a_zero_learning_rate_gives_back_the_weights_it_perturbed() -> None:
    start = weights(Regression())
    end = weights(train(lr=0.0, steps=10))
    for a, b in zip(start, end, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_a_seed_replays_the_same_run_on_any_number_of_cores() -> None:
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = weights(train(lr=3e-3, steps=8, seed=3))
        torch.set_num_threads(max(2, threads))
        many = weights(train(lr=3e-3, steps=8, seed=3))
    finally:
        torch.set_num_threads(threads)
    other = weights(train(lr=3e-3, steps=8, seed=4))
    assert all(torch.equal(a, b) for a, b in zip(one, many, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(one, other, strict=True))


def test_stop_ends_the_run_between_steps() -> None:
    stop = StopSwitch()
    stop.event.set()
    with pytest.raises(TrainingStopped):
        train(lr=3e-3, stop=stop)
