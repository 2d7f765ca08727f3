"""Embedding images and texts with the manager's CLIP model.

Images are read, hashed, decoded and preprocessed in a thread pool (PIL and torch release the
GIL for the heavy parts) while the main thread runs the model on full batches; at most
``prefetch_batches`` batches wait decoded, which bounds memory whatever the folder's size.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from mmdemo.images import ImageLimits, ImageProblem, decode

J = TypeVar("J")

# Fixed inputs whose embeddings identify an embedding space (see ModelIdentity.same_space).
PROBE_TEXTS = ("a photo of a dog on the grass", "a diagram with text")
# Captions whose embeddings calibrate an ANN index with real text queries (calibrate.py):
# everyday subjects in the phrasings people search with.
CALIBRATION_TEXTS = tuple(
    template.format(subject)
    for subject in (
        "a dog",
        "a cat",
        "a car",
        "a person smiling",
        "a beach at sunset",
        "a city street",
        "a plate of food",
        "a mountain",
        "a flower",
        "a chest x-ray",
        "a bird",
        "a laptop",
        "a child playing",
        "a document",
        "a forest",
        "a red bicycle",
    )
    for template in ("a photo of {}", "{}", "a picture showing {}", "a close-up of {}")
)


@dataclass(frozen=True)
class EmbedConfig:
    """How images are fed to the model."""

    # images per forward pass
    batch_size: int = 32
    # decoding threads; 0 picks one per CPU core (at most 8)
    workers: int = 0
    # batches decoded ahead of the model; bounds memory (a 224 px image is 0.6 MB as a tensor)
    prefetch_batches: int = 2
    limits: ImageLimits = field(default_factory=ImageLimits)

    def __post_init__(self) -> None:
        from mmdemo.errors import SettingsError

        if not 1 <= self.batch_size <= 4096:
            raise SettingsError(f"batch_size={self.batch_size} is outside 1..4096")
        if not 0 <= self.workers <= 64:
            raise SettingsError(f"workers={self.workers} is outside 0..64")
        if not 1 <= self.prefetch_batches <= 16:
            raise SettingsError(f"prefetch_batches={self.prefetch_batches} is outside 1..16")

    @property
    def threads(self) -> int:
        return self.workers or max(1, min(8, os.cpu_count() or 1))


@dataclass
class EmbedStats:
    """Where the time of an embedding run went."""

    images: int = 0
    wall: float = 0.0
    prepare: float = 0.0  # summed over workers: read, hash, decode, preprocess
    model: float = 0.0  # forward passes
    wait: float = 0.0  # the model idle, waiting for decoded images


@dataclass
class Prepared(Generic[J]):
    """A decoded, preprocessed image ready for the model, with facts about its file."""

    job: J
    tensor: Any
    info: dict[str, Any]


@dataclass(frozen=True)
class Rejected(Generic[J]):
    """A job that produced no embedding: ``kind`` is error, duplicate or unchanged."""

    job: J
    kind: str
    reason: str


class Reject(Exception):
    """Raised by a prepare function to drop a job without it being an error (e.g. duplicate)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass
class EmbeddedBatch(Generic[J]):
    items: list[Prepared[J]]
    vectors: np.ndarray  # (len(items), dim) float32, L2-normalised
    rejected: list[Rejected[J]]


def model_dtype(bundle: Any) -> Any:
    return next(bundle.model.parameters()).dtype


def encode_tensors(bundle: Any, tensors: Sequence[Any]) -> np.ndarray:
    """L2-normalised image embeddings of preprocessed tensors, as float32 numpy."""
    import torch

    if not tensors:
        return np.zeros((0, bundle.embed_dim), dtype=np.float32)
    batch = torch.stack(list(tensors)).to(bundle.device, dtype=model_dtype(bundle))
    with torch.inference_mode():
        features = bundle.model.encode_image(batch)
        features = torch.nn.functional.normalize(features.float(), dim=-1)
    return features.cpu().numpy()


def embed_texts(bundle: Any, texts: Sequence[str]) -> np.ndarray:
    """L2-normalised text embeddings, (len(texts), dim) float32."""
    import torch

    tokens = bundle.tokenizer(list(texts)).to(bundle.device)
    with torch.inference_mode():
        features = bundle.model.encode_text(tokens)
        features = torch.nn.functional.normalize(features.float(), dim=-1)
    return features.cpu().numpy()


def embed_images(
    bundle: Any, images: Sequence[Any], limits: ImageLimits | None = None
) -> np.ndarray:
    """Embeddings of in-memory images (PIL images, numpy arrays, paths, uploads or bytes)."""
    tensors = []
    for image in images:
        pil, _, _ = decode(image, bundle.image_size, limits or ImageLimits())
        tensors.append(bundle.preprocess(pil))
    return encode_tensors(bundle, tensors)


def probe_image() -> Any:
    """A fixed synthetic picture (colour ramps and rings) used to identify a model."""
    from PIL import Image

    y, x = np.mgrid[0:224, 0:224].astype(np.float32) / 223.0
    r = np.hypot(x - 0.5, y - 0.5)
    rgb = np.stack([x, y, 0.5 + 0.5 * np.sin(r * 40.0)], axis=-1)
    return Image.fromarray((rgb * 255).astype(np.uint8))


def probe_vectors(bundle: Any) -> np.ndarray:
    """Embeddings of fixed texts and a fixed image: equal models give (nearly) equal rows."""
    texts = embed_texts(bundle, PROBE_TEXTS)
    image = embed_images(bundle, [probe_image()])
    return np.concatenate([texts, image]).astype(np.float32)


def stream(
    bundle: Any,
    jobs: Iterable[J],
    prepare: Callable[[J], Prepared[J]],
    config: EmbedConfig,
    stats: EmbedStats | None = None,
) -> Iterator[EmbeddedBatch[J]]:
    """Embed ``jobs`` in order; ``prepare`` runs in worker threads and may raise ``Reject`` or
    ``ImageProblem``. Yields one batch per ``batch_size`` embedded (or rejected) jobs."""
    stats = stats if stats is not None else EmbedStats()
    start = time.perf_counter()
    window = config.batch_size * (config.prefetch_batches + 1)
    job_iter = iter(jobs)
    stats_lock = threading.Lock()

    def timed(job: J) -> Prepared[J] | Rejected[J]:
        t0 = time.perf_counter()
        try:
            return prepare(job)
        except Reject as exc:
            return Rejected(job, exc.kind, exc.reason)
        except ImageProblem as exc:
            return Rejected(job, "error", exc.reason)
        except Exception as exc:  # one bad file must never abort a build of thousands
            return Rejected(job, "error", f"{type(exc).__name__}: {exc}")
        finally:
            with stats_lock:
                stats.prepare += time.perf_counter() - t0

    pending: deque[Future] = deque()
    with ThreadPoolExecutor(config.threads, thread_name_prefix="mmdemo-decode") as pool:

        def fill() -> None:
            while len(pending) < window:
                job = next(job_iter, _END)
                if job is _END:
                    return
                pending.append(pool.submit(timed, job))

        try:
            fill()
            items: list[Prepared[J]] = []
            rejected: list[Rejected[J]] = []
            while pending:
                t0 = time.perf_counter()
                result = pending.popleft().result()
                stats.wait += time.perf_counter() - t0
                fill()
                if isinstance(result, Prepared):
                    items.append(result)
                else:
                    rejected.append(result)
                if (
                    len(items) >= config.batch_size
                    or len(rejected) >= config.batch_size
                    or not pending
                ):
                    t0 = time.perf_counter()
                    vectors = encode_tensors(bundle, [p.tensor for p in items])
                    stats.model += time.perf_counter() - t0
                    stats.images += len(items)
                    for p in items:
                        p.tensor = None  # free the pixels as soon as they are embedded
                    stats.wall = time.perf_counter() - start
                    yield EmbeddedBatch(items, vectors, rejected)
                    items, rejected = [], []
        finally:
            for future in pending:
                future.cancel()
            stats.wall = time.perf_counter() - start


_END = object()
