"""A small MLP over landmark features: trained with torch, run with numpy.

The same code trains the built-in classifier (synthetic landmarks, ``python -m mmdemo gestures
train``) and taught gestures (a user's few examples, in seconds). Weights are stored as
safetensors with the class names in the metadata; nothing is unpickled.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmdemo.errors import ModelUnavailableError
from mmdemo.flows.gestures.features import FEATURE_SIZE, FEATURE_VERSION
from mmdemo.flows.gestures.vocabulary import NONE


@dataclass(frozen=True)
class FitConfig:
    """How an MLP is trained."""

    hidden: tuple[int, ...] = (128, 64)  # hidden layer widths
    epochs: int = 30  # passes over the data
    batch_size: int = 256
    lr: float = 3e-3  # AdamW learning rate (cosine decay to 0)
    weight_decay: float = 1e-4
    dropout: float = 0.1
    label_smoothing: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.hidden or min(self.hidden) < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError("hidden widths, epochs and batch size must be positive")


@dataclass(frozen=True)
class GestureModel:
    """Class names, input standardisation and dense layers (ReLU between them)."""

    classes: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]  # (weight (in, out), bias (out,))
    info: dict

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(N, FEATURE_SIZE) features -> (N, classes) probabilities."""
        h = (np.asarray(x, dtype=np.float32) - self.mean) / self.std
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0)
        h = h - h.max(-1, keepdims=True)
        e = np.exp(h)
        return e / e.sum(-1, keepdims=True)

    def predict(self, x: np.ndarray, threshold: float = 0.5) -> list[str]:
        """The most likely class of each row of features; NONE below ``threshold``."""
        probs = self.probabilities(x)
        best = probs.argmax(-1)
        return [self.classes[k] if probs[i, k] >= threshold else NONE for i, k in enumerate(best)]

    def save(self, path: Path) -> Path:
        from safetensors.numpy import save_file

        tensors = {"mean": self.mean, "std": self.std}
        for i, (w, b) in enumerate(self.layers):
            tensors[f"layer{i}.weight"] = np.ascontiguousarray(w)
            tensors[f"layer{i}.bias"] = np.ascontiguousarray(b)
        meta = {
            "classes": json.dumps(list(self.classes)),
            "feature_version": str(FEATURE_VERSION),
            "info": json.dumps(self.info),
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".partial")
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> GestureModel:
        from safetensors import safe_open

        try:
            with safe_open(str(path), "np") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        except Exception as exc:
            raise ModelUnavailableError(
                f"the gesture classifier {path} cannot be read ({exc})",
                backend="gestures",
                model_id=str(path),
                fix="run `python -m mmdemo gestures train` to rebuild it",
            ) from None
        if meta.get("feature_version") != str(FEATURE_VERSION):
            raise ModelUnavailableError(
                f"the gesture classifier {path} was made for other features "
                f"(version {meta.get('feature_version')}, expected {FEATURE_VERSION})",
                backend="gestures",
                model_id=str(path),
                fix="run `python -m mmdemo gestures train` to rebuild it",
            )
        n = sum(1 for k in tensors if k.endswith(".weight"))
        layers = tuple((tensors[f"layer{i}.weight"], tensors[f"layer{i}.bias"]) for i in range(n))
        return cls(
            classes=tuple(json.loads(meta["classes"])),
            mean=tensors["mean"],
            std=tensors["std"],
            layers=layers,
            info=json.loads(meta.get("info", "{}")),
        )


def train(
    x: np.ndarray,
    labels: Sequence[str],
    classes: Sequence[str] | None = None,
    config: FitConfig | None = None,
    sample_weight: np.ndarray | None = None,
) -> GestureModel:
    """Fit an MLP on features ``x`` (N, FEATURE_SIZE) with class names ``labels``.

    It runs on the process's torch threads as they are: the thread count is process-wide, so
    changing it here would change it for every user generating at the same time."""
    import torch

    return _train(torch, x, labels, classes, config or FitConfig(), sample_weight)


def train_apart(
    x: np.ndarray,
    labels: Sequence[str],
    classes: Sequence[str] | None = None,
    config: FitConfig | None = None,
) -> GestureModel:
    """``train`` in a child process on one thread (taught gestures, while the server serves).

    torch's thread count is process-wide, so the server's own stays as it is; and a net this
    small trains fastest on one thread: on the server's threads, while other users generate,
    each step waits for a busy core (measured under load: 14.5 s against 0.12 s). The child
    costs its start-up (~2 s, torch imported once more)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context, initializer=_one_thread) as pool:
        return pool.submit(train, np.asarray(x), list(labels), classes, config).result()


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # the child's own count: the server is untouched


def _train(
    torch: Any,
    x: np.ndarray,
    labels: Sequence[str],
    classes: Sequence[str] | None,
    config: FitConfig,
    sample_weight: np.ndarray | None,
) -> GestureModel:
    classes = tuple(classes or sorted(set(labels)))
    index = {c: i for i, c in enumerate(classes)}
    y = torch.tensor([index[label] for label in labels])
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != FEATURE_SIZE:
        raise ValueError(f"features must be (N, {FEATURE_SIZE}), got {x.shape}")
    mean = x.mean(0)
    std = x.std(0) + 1e-3
    xt = torch.from_numpy((x - mean) / std)
    wt = torch.ones(len(x)) if sample_weight is None else torch.as_tensor(sample_weight).float()
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    sizes = [FEATURE_SIZE, *config.hidden, len(classes)]
    modules: list[torch.nn.Module] = []
    for i in range(len(sizes) - 1):
        modules.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            modules += [torch.nn.ReLU(), torch.nn.Dropout(config.dropout)]
    net = torch.nn.Sequential(*modules)
    steps = config.epochs * max(1, -(-len(x) // config.batch_size))
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing, reduction="none")
    net.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), config.batch_size):
            idx = order[start : start + config.batch_size]
            loss = (loss_fn(net(xt[idx]), y[idx]) * wt[idx]).sum() / wt[idx].sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    linear = [m for m in net if isinstance(m, torch.nn.Linear)]
    layers = tuple(
        (m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in linear
    )
    return GestureModel(classes, mean, std, layers, {"samples": len(x)})
