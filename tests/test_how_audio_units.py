"""How it works, Audio tokens: k-means on hand-made points, one codebook shared by every clip
(fitted once on the LibriVox clips, or on the clip itself when they are missing), trained
encoder weights taken from torch hub's cache when present, and the unit edit distance."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mmdemo.config import Settings
from mmdemo.errors import BadInputError, DamagedFileError
from mmdemo.flows.how import audio_units as au
from mmdemo.flows.how.service import HowItWorks
from mmdemo.models.manager import ModelManager
from tests.bad_inputs import wav_file

# torchaudio's HUBERT_BASE weight file, as torch.hub caches it (pinned: re-check on upgrade)
HUBERT_FILE = "hubert_fairseq_base_ls960.pth"


def speechy(seconds: float = 1.0, hz: float = 220.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(16000 * seconds), dtype=np.float32) / 16000
    noise = 0.05 * np.random.default_rng(seed).standard_normal(len(t))
    return (0.3 * np.sin(2 * np.pi * hz * t * (1 + t)) + noise).astype(np.float32)


@pytest.fixture
def how(isolated_settings: Settings, shared_manager: ModelManager) -> HowItWorks:
    """The tab's service on a fresh data folder (no codebook cached on disk yet)."""
    return HowItWorks(isolated_settings, shared_manager)


@pytest.fixture
def fits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts k-means fits (each codebook is one), whoever asks for them."""
    calls: list[int] = []
    real = au.kmeans

    def counting(x: Any, k: int, seed: int = 0, iterations: int = 30) -> Any:
        calls.append(int(k))
        return real(x, k, seed, iterations)

    monkeypatch.setattr(au, "kmeans", counting)
    return calls


# k-means ----------------------------------------------------------------------------------
def test_nearest_centroid_by_matrix_product_matches_brute_force() -> None:
    # three centroids and points beside each: the answer is known by construction
    centroids = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = torch.tensor([[0.4, -0.3], [9.0, 1.0], [1.0, 8.5], [6.0, 0.0], [0.0, 4.0]])
    assert au.assign(points, centroids).tolist() == [0, 1, 2, 1, 0]
    # and on random data, against the plain sum of squared differences, row by row
    gen = torch.Generator().manual_seed(0)
    x, c = torch.randn(200, 16, generator=gen), torch.randn(12, 16, generator=gen)
    brute = [min(range(12), key=lambda j: float(((row - c[j]) ** 2).sum())) for row in x]
    assert au.assign(x, c).tolist() == brute


def test_kmeans_finds_constructed_clusters_and_repeats_for_a_seed() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = ([0.0, 0.0], [5.0, 5.0], [-5.0, 5.0])
    points = torch.cat([torch.randn(20, 2, generator=gen) * 0.1 + torch.tensor(c) for c in centres])
    labels, centroids = au.kmeans(points, 3, seed=1)
    groups = [set(labels[i : i + 20].tolist()) for i in (0, 20, 40)]
    assert all(len(g) == 1 for g in groups) and len(set.union(*groups)) == 3
    for i, centre in zip((0, 20, 40), centres, strict=True):
        assert centroids[int(labels[i])].tolist() == pytest.approx(centre, abs=0.1)
    wide = torch.randn(300, 8, generator=gen)
    first, again = au.kmeans(wide, 10, seed=4), au.kmeans(wide, 10, seed=4)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert au.merge_repeats([5, 5, 2, 2, 2, 5]) == [5, 2, 5] and au.merge_repeats([]) == []


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ([1, 2, 3], [1, 2, 3], 0.0),
        ([], [], 0.0),
        ([1, 2, 3], [1, 3], 1 / 3),  # one deletion over the longer length
        ([1, 2], [3, 4], 1.0),  # two substitutions
        ([5, 1, 2], [1, 2, 5], 2 / 3),  # a unit moved: delete + insert
        ([7], [], 1.0),
        ([1, 2, 3, 4], [1, 9, 3, 4, 4], 2 / 5),  # a substitution and an insertion
    ],
)
def test_unit_edit_distance_is_normalised_by_the_longer_sequence(
    a: list[int], b: list[int], distance: float
) -> None:
    assert au.unit_edit_distance(a, b) == pytest.approx(distance)
    assert au.unit_edit_distance(b, a) == pytest.approx(distance)


# one clip on its own ----------------------------------------------------------------------
def test_audio_units_repeat_for_a_seed() -> None:
    first = au.audio_units(speechy(), k=8, seed=3, kind="tiny")
    again = au.audio_units(speechy(), k=8, seed=3, kind="tiny")
    assert first.units == again.units and first.units
    # one second at a 320-sample stride after a 400-sample window: (16000 - 400) // 320 + 1
    assert first.frames == 49 and first.frames_per_second == 49.0
    assert first.units_per_second == len(first.units) and first.random_weights
    assert "random" in first.note and "mean nothing" in first.note
    assert first.codebook == "this clip" and first.units_k == 8


# the shared codebook ----------------------------------------------------------------------
def test_one_codebook_fitted_on_librivox_serves_every_clip(
    how: HowItWorks, fits: list[int], librivox: list[tuple[Path, str]], shared_manager: Any
) -> None:
    first, second = str(librivox[0][0]), str(librivox[1][0])
    wavs = len(list(Path(first).parent.glob("*.wav")))
    a = how.audio_units(first, 8, 3)
    b = how.audio_units(second, 8, 3)
    pair = how.audio_units(first, 8, 3, compare=first)
    assert fits == [8]  # fitted once, for the first call; reused by the next two
    assert re.fullmatch(rf"librivox \({wavs} clips, \d+ frames\)", a["codebook"])
    assert b["codebook"] == a["codebook"] and a["units_k"] == 8
    # the same clip gives the same units, alone or beside another clip
    assert pair["units"] == a["units"] and pair["compared"]["units"] == a["units"]
    assert pair["compared"]["unit_edit_distance"] == 0.0
    other = how.audio_units(first, 8, 3, compare=second)["compared"]
    assert other["units"] == b["units"] and 0.0 < other["unit_edit_distance"] <= 1.0
    assert fits == [8]
    # another K or seed is another codebook
    how.audio_units(first, 9, 3)
    how.audio_units(first, 8, 4)
    assert fits == [8, 9, 8]
    # a new service on the same data folder (an app restart) finds the codebook on disk
    restarted = HowItWorks(how.settings, shared_manager)
    assert restarted.audio_units(first, 8, 3)["units"] == a["units"] and fits == [8, 9, 8]
    assert list((how.settings.home / "audio-units").glob("*.tmp*")) == []


def test_without_librivox_each_request_fits_its_own_clips(
    how: HowItWorks, fits: list[int], tmp_path: Path
) -> None:
    how.codebooks.librivox = tmp_path / "not-installed"
    one = str(wav_file(tmp_path / "one.wav", speechy(1.0, 220.0, 0)))
    two = str(wav_file(tmp_path / "two.wav", speechy(1.5, 330.0, 1)))
    a = how.audio_units(one, 8, 0)
    assert a["codebook"] == "this clip (LibriVox clips not installed)" and a["units"]
    assert how.audio_units(one, 8, 0)["units"] == a["units"]  # deterministic for a seed
    pair = how.audio_units(one, 8, 0, compare=two)
    assert pair["codebook"] == "these two clips (LibriVox clips not installed)"
    assert 0.0 <= pair["compared"]["unit_edit_distance"] <= 1.0
    assert fits == [8, 8, 8]  # nothing shared: one fit per request
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(BadInputError, match=r"the second clip: the audio file empty\.wav is empty"):
        how.audio_units(one, 8, 0, compare=str(tmp_path / "empty.wav"))
    assert not (how.settings.home / "audio-units").exists()


# trained weights ----------------------------------------------------------------------------
def test_trained_weights_in_the_hub_cache_are_used(
    how: HowItWorks, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A fake torch hub cache holding "trained" weights for the tiny encoder (a state dict
    of another seed, under HUBERT_BASE's file name): the view says trained and uses them."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    assert checkpoints.is_relative_to(tmp_path)
    monkeypatch.setitem(au.TRAINED, "tiny", "HUBERT_BASE")
    how.codebooks.librivox = tmp_path / "not-installed"  # a fit on the clip: quick
    clip = str(wav_file(tmp_path / "clip.wav", speechy()))

    before = how.audio_units(clip, 8, 0)  # nothing in the cache: random, as without it
    assert before["random_weights"] is True and "random" in before["encoder"]

    checkpoints.mkdir(parents=True)
    saved = au.build_encoder("tiny", seed=123).state_dict()
    torch.save(saved, checkpoints / HUBERT_FILE)
    data = how.audio_units(clip, 8, 0)
    assert data["random_weights"] is False and HUBERT_FILE in data["encoder"]
    assert "trained" in data["note"] and "mean nothing" not in data["note"]
    encoder = au.load_encoder("tiny", seed=0)
    assert all(torch.equal(v, saved[n]) for n, v in encoder.model.state_dict().items())
    assert encoder.trained and encoder.weights == HUBERT_FILE

    (checkpoints / HUBERT_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(DamagedFileError, match="does not hold HUBERT_BASE's weights"):
        how.audio_units(clip, 8, 0)


def test_hubert_base_weights_are_looked_up_under_torchaudios_file_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """torchaudio's private parts this relies on: the bundle's file name, and that its
    parameters build the model ``hubert_base()`` builds (shapes only, on the meta device)."""
    import torchaudio.pipelines
    from torchaudio.models import hubert_base, wav2vec2_model

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert au.trained_weights("hubert-base") is None and au.trained_weights("tiny") is None
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / HUBERT_FILE).write_bytes(b"")  # found, not read
    assert au.trained_weights("hubert-base") == checkpoints / HUBERT_FILE
    with torch.device("meta"):
        ours = hubert_base().state_dict()
        theirs = wav2vec2_model(**torchaudio.pipelines.HUBERT_BASE._params).state_dict()
    assert {n: v.shape for n, v in ours.items()} == {n: v.shape for n, v in theirs.items()}
