"""Audio tokens the way textless speech models make them (HuBERT units, GSLM): a
self-supervised encoder turns 16 kHz speech into one vector per 20 ms frame, k-means maps each
frame to one of K cluster ids ("units"), and runs of the same unit are merged.

The encoder is torchaudio's HuBERT-Base architecture, or a tiny one of the same design in the
tiny profile. Its trained weights (torchaudio's ``HUBERT_BASE``) are used when they already sit
in torch hub's cache (nothing is ever downloaded here); otherwise its weights are random and
seeded: the pipeline and the rates are real, the units mean nothing. The k-means codebook is
fitted once on reference speech (codebooks.py) and shared by every clip, so a unit id names
the same sound in any clip.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mmdemo.errors import DamagedFileError
from mmdemo.flows.how import plain

SAMPLE_RATE = 16000
MAX_SECONDS = 20.0
MAX_UNITS = 500
LAYER = 6  # the encoder layer whose output is clustered (HuBERT units use a middle layer)
FAISS_SEED_RANGE = 2**31  # faiss keeps its seed in a C int
# the conv front end of HuBERT / wav2vec 2.0 (channels, kernel, stride): a 320-sample stride
TINY_CONV = [(32, 10, 5), (32, 3, 2), (32, 3, 2), (32, 3, 2), (32, 3, 2), (32, 2, 2), (32, 2, 2)]
# encoder kind -> the torchaudio pipeline whose trained weights fit it
TRAINED = {"hubert-base": "HUBERT_BASE"}
RANDOM_NOTE = (
    "The encoder has random weights (no pretrained weights can be downloaded here): the units "
    "show the pipeline and its rates, but they mean nothing. Trained HuBERT units track phones."
)
TRAINED_NOTE = (
    "The encoder has trained weights (found in torch hub's cache): the units follow the sounds "
    "of speech, and the shared codebook gives a sound the same unit id in every clip."
)


@dataclass(frozen=True)
class AudioUnits:
    encoder: str
    layer: int  # the encoder layer whose output is clustered
    seconds: float
    frames: int
    frames_per_second: float
    units_k: int  # clusters (K)
    units: list[int]  # after merging repeats
    raw_units: int  # one per frame, before merging
    units_per_second: float
    distinct: int  # different units used
    codebook: str  # what the k-means codebook was fitted on
    random_weights: bool
    note: str

    def to_json(self) -> dict[str, Any]:
        return plain(asdict(self))


@dataclass(frozen=True)
class Encoder:
    """A HuBERT-style encoder and where its weights came from."""

    model: Any  # torchaudio Wav2Vec2Model, in eval mode
    kind: str  # hubert-base | tiny
    weights: str  # "random, seed 0" or the trained weights' file name
    trained: bool

    @property
    def layers(self) -> int:
        return len(self.model.encoder.transformer.layers)

    def describe(self) -> str:
        params = sum(p.numel() for p in self.model.parameters())
        how = f"trained: {self.weights}" if self.trained else "random"
        return f"{self.kind} ({params:,} parameters, {how})"


@dataclass(frozen=True)
class Codebook:
    centroids: Any  # K x D float32 tensor
    source: str  # what it was fitted on, as the view says it


def build_encoder(kind: str = "hubert-base", seed: int = 0) -> Any:
    """A HuBERT-style encoder with seeded random weights: torchaudio's ``hubert_base`` (95M
    parameters) or ``tiny`` (same design, 2 layers of 64); the global RNG is left as it was."""
    import torch
    from torchaudio.models import hubert_base, wav2vec2_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if kind == "tiny":
            model = wav2vec2_model(
                extractor_mode="group_norm",
                extractor_conv_layer_config=TINY_CONV,
                extractor_conv_bias=False,
                encoder_embed_dim=64,
                encoder_projection_dropout=0.0,
                encoder_pos_conv_kernel=16,
                encoder_pos_conv_groups=4,
                encoder_num_layers=2,
                encoder_num_heads=2,
                encoder_attention_dropout=0.0,
                encoder_ff_interm_features=128,
                encoder_ff_interm_dropout=0.0,
                encoder_dropout=0.0,
                encoder_layer_norm_first=False,
                encoder_layer_drop=0.0,
                aux_num_out=None,
            )
        elif kind == "hubert-base":
            model = hubert_base()
        else:
            raise ValueError(f"unknown encoder {kind!r}: hubert-base or tiny")
    return model.eval()


def trained_weights(kind: str) -> Path | None:
    """The file torch hub keeps ``kind``'s trained weights in, when it is already there (this
    never downloads: the caller loads it only if it exists)."""
    import torch
    import torchaudio.pipelines

    pipeline = TRAINED.get(kind)
    if pipeline is None:
        return None
    # torchaudio's one private part used here: a bundle's ``_path`` is its weight file (a name
    # under download.pytorch.org/torchaudio/models/, or a URL); torch.hub's
    # load_state_dict_from_url caches it as <hub dir>/checkpoints/<the URL's base name>.
    # Pinned by a test on the file name (tests/test_how_it_works.py): re-check on upgrade.
    url = getattr(torchaudio.pipelines, pipeline)._path
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    return path if path.is_file() else None


def load_encoder(kind: str = "hubert-base", seed: int = 0) -> Encoder:
    """``kind`` with its trained weights when torch hub's cache holds them, else with seeded
    random weights."""
    import torch

    model = build_encoder(kind, seed)
    path = trained_weights(kind)
    if path is None:
        return Encoder(model, kind, f"random, seed {int(seed)}", False)
    try:
        # weights_only: tensors and plain containers, no code runs from the file
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (RuntimeError, OSError, EOFError, KeyError, ValueError, pickle.UnpicklingError) as exc:
        raise DamagedFileError(
            f"{path} does not hold {TRAINED[kind]}'s weights ({exc})",
            fix=f"delete {path}: the encoder then uses random weights",
        ) from None
    return Encoder(model.eval(), kind, path.name, True)


def clip_frames(encoder: Encoder, samples: Any, layer: int) -> Any:
    """One vector per 20 ms frame of 16 kHz mono ``samples``: the output of encoder ``layer``
    (frames x D float32 tensor)."""
    import torch

    wave = torch.as_tensor(samples, dtype=torch.float32).reshape(1, -1)
    with torch.inference_mode():
        features, _ = encoder.model.extract_features(wave, num_layers=layer)
    return features[-1][0].clone()  # a normal tensor, usable outside inference mode


def assign(x: Any, centroids: Any) -> Any:
    """Each row's nearest centroid. ||x - c||² = ||x||² - 2 x·c + ||c||² is one matrix product
    (torch.cdist forms every difference); ||x||² is the same for all of a row's centroids, so
    the argmin needs only ||c||² - 2 x·c."""
    import torch

    x = torch.as_tensor(x, dtype=torch.float32)
    c = torch.as_tensor(centroids, dtype=torch.float32)
    return ((c * c).sum(dim=1) - 2.0 * (x @ c.T)).argmin(dim=1)


def kmeans(x: Any, k: int, seed: int = 0, iterations: int = 30) -> tuple[Any, Any]:
    """(labels, centroids) of rows ``x`` in ``k`` clusters, deterministic for a seed."""
    import faiss
    import numpy as np
    import torch

    data = np.ascontiguousarray(torch.as_tensor(x, dtype=torch.float32).numpy())
    k = max(1, min(int(k), data.shape[0]))
    # faiss's k-means (faiss is already the app's vector-search engine): distances by BLAS
    # matrix products, its own empty-cluster splitting, a seeded start; a seed gives the same
    # codebook on every run and thread count. Every frame is used (no subsampling) and few
    # points per centroid is fine here (no warning).
    km = faiss.Kmeans(
        data.shape[1],
        k,
        niter=int(iterations),
        seed=int(seed) % FAISS_SEED_RANGE,
        min_points_per_centroid=1,
        max_points_per_centroid=max(1, data.shape[0]),
        verbose=False,
    )
    km.train(data)
    centroids = torch.from_numpy(np.array(km.centroids, dtype=np.float32))
    return assign(data, centroids), centroids


def fit_codebook(frames: Sequence[Any], k: int, seed: int, source: str) -> Codebook:
    """A K-unit codebook over the frames of one or more clips."""
    import torch

    _, centroids = kmeans(torch.cat(list(frames)), k, seed)
    return Codebook(centroids, source)


def merge_repeats(units: list[int]) -> list[int]:
    """Runs of one unit become one: [5, 5, 2, 2, 2, 5] -> [5, 2, 5]."""
    return [u for i, u in enumerate(units) if i == 0 or u != units[i - 1]]


def unit_edit_distance(a: Sequence[int], b: Sequence[int]) -> float:
    """Levenshtein distance between two unit sequences over the longer one's length: 0 the
    same units, 1 nothing shared (torchaudio's edit_distance; rapidfuzz is not installed)."""
    from torchaudio.functional import edit_distance

    longest = max(len(a), len(b))
    return edit_distance(list(a), list(b)) / longest if longest else 0.0


def units_of(
    encoder: Encoder, frames: Any, seconds: float, layer: int, codebook: Codebook
) -> AudioUnits:
    """The units of a ``seconds`` long clip's ``frames`` against ``codebook``, with the rates."""
    raw = [int(u) for u in assign(frames, codebook.centroids)]
    merged = merge_repeats(raw)
    return AudioUnits(
        encoder=encoder.describe(),
        layer=layer,
        seconds=round(seconds, 3),
        frames=len(raw),
        frames_per_second=round(len(raw) / seconds, 2) if seconds else 0.0,
        units_k=int(codebook.centroids.shape[0]),
        units=merged,
        raw_units=len(raw),
        units_per_second=round(len(merged) / seconds, 2) if seconds else 0.0,
        distinct=len(set(raw)),
        codebook=codebook.source,
        random_weights=not encoder.trained,
        note=TRAINED_NOTE if encoder.trained else RANDOM_NOTE,
    )


def audio_units(
    samples: Any,
    k: int = 50,
    seed: int = 0,
    kind: str = "hubert-base",
    layer: int = LAYER,
    codebook: Codebook | None = None,
) -> AudioUnits:
    """Units of 16 kHz mono ``samples`` (float32 numpy): against ``codebook``, or a codebook
    fitted on this clip alone when none is given."""
    if not 2 <= int(k) <= MAX_UNITS:
        raise ValueError(f"K={k} is outside 2..{MAX_UNITS}")
    encoder = load_encoder(kind, seed)
    layer = max(1, min(int(layer), encoder.layers))
    frames = clip_frames(encoder, samples, layer)
    book = codebook or fit_codebook([frames], int(k), seed, "this clip")
    return units_of(encoder, frames, len(samples) / SAMPLE_RATE, layer, book)
