"""Audio tokens the way textless speech models make them (HuBERT units, GSLM): a
self-supervised encoder turns 16 kHz speech into one vector per 20 ms frame, k-means maps each
frame to one of K cluster ids ("units"), and runs of the same unit are merged.

The encoder here is torchaudio's HuBERT-Base architecture with random weights (no download is
possible), or a tiny one of the same design in the tiny profile, seeded: the pipeline and the
rates are real, the units mean nothing. With trained weights (``HUBERT_BASE``) the same code
gives units that follow phones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mmdemo.flows.how import plain

SAMPLE_RATE = 16000
MAX_SECONDS = 20.0
MAX_UNITS = 500
# the conv front end of HuBERT / wav2vec 2.0 (channels, kernel, stride): a 320-sample stride
TINY_CONV = [(32, 10, 5), (32, 3, 2), (32, 3, 2), (32, 3, 2), (32, 3, 2), (32, 2, 2), (32, 2, 2)]
NOTE = (
    "The encoder has random weights (no pretrained weights can be downloaded here): the units "
    "show the pipeline and its rates, but they mean nothing. Trained HuBERT units track phones."
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
    random_weights: bool
    note: str

    def to_json(self) -> dict[str, Any]:
        return plain(asdict(self))


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


def kmeans(x: Any, k: int, seed: int = 0, iterations: int = 30) -> tuple[Any, Any]:
    """(labels, centroids) of rows ``x`` in ``k`` clusters: k-means++ start from a seeded
    generator, then Lloyd steps until nothing moves. Deterministic for a seed."""
    import torch

    x = torch.as_tensor(x, dtype=torch.float32)
    k = max(1, min(int(k), x.shape[0]))
    gen = torch.Generator().manual_seed(int(seed))
    first = int(torch.randint(x.shape[0], (1,), generator=gen))
    centroids = [x[first]]
    for _ in range(1, k):
        d2 = torch.cdist(x, torch.stack(centroids)).min(dim=1).values ** 2
        if float(d2.sum()) == 0.0:
            pick = int(torch.randint(x.shape[0], (1,), generator=gen))
        else:
            pick = int(torch.multinomial(d2 / d2.sum(), 1, generator=gen))
        centroids.append(x[pick])
    c = torch.stack(centroids)
    labels = torch.cdist(x, c).argmin(dim=1)
    for _ in range(iterations):
        for j in range(k):
            members = x[labels == j]
            if len(members):
                c[j] = members.mean(dim=0)
        new = torch.cdist(x, c).argmin(dim=1)
        if bool((new == labels).all()):
            break
        labels = new
    return labels, c


def merge_repeats(units: list[int]) -> list[int]:
    """Runs of one unit become one: [5, 5, 2, 2, 2, 5] -> [5, 2, 5]."""
    return [u for i, u in enumerate(units) if i == 0 or u != units[i - 1]]


def audio_units(
    samples: Any, k: int = 50, seed: int = 0, kind: str = "hubert-base", layer: int = 6
) -> AudioUnits:
    """Units of 16 kHz mono ``samples`` (float32 numpy) with a seeded random encoder."""
    import torch

    if not 2 <= int(k) <= MAX_UNITS:
        raise ValueError(f"K={k} is outside 2..{MAX_UNITS}")
    model = build_encoder(kind, seed)
    layers = len(model.encoder.transformer.layers)
    layer = max(1, min(int(layer), layers))
    wave = torch.as_tensor(samples, dtype=torch.float32).reshape(1, -1)
    with torch.inference_mode():
        features, _ = model.extract_features(wave, num_layers=layer)
    frames = features[-1][0]
    labels, _ = kmeans(frames, int(k), seed)
    raw = [int(u) for u in labels]
    merged = merge_repeats(raw)
    seconds = wave.shape[1] / SAMPLE_RATE
    return AudioUnits(
        encoder=f"{kind} ({sum(p.numel() for p in model.parameters()):,} parameters, random)",
        layer=layer,
        seconds=round(seconds, 3),
        frames=len(raw),
        frames_per_second=round(len(raw) / seconds, 2) if seconds else 0.0,
        units_k=min(int(k), len(raw)),
        units=merged,
        raw_units=len(raw),
        units_per_second=round(len(merged) / seconds, 2) if seconds else 0.0,
        distinct=len(set(raw)),
        random_weights=True,
        note=NOTE,
    )
