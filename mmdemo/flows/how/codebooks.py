"""k-means codebooks for audio units, fitted once on reference speech and shared by every clip.

A unit id means something only against one codebook: fitted per clip, unit 7 of one clip and
unit 7 of another are unrelated. So the codebook is fitted once, on the LibriVox clips of
Debian's ``pocketsphinx-testdata`` (one speaker, about 25 s), for each (encoder, layer, K,
seed), and kept by the ``Codebooks`` object the tab's service holds (in memory) and in a cache
folder (written atomically), where a later process finds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from mmdemo.flows.how import audio_units as au

# the same clips the voice and how benchmarks read (mmdemo/bench/voice.py)
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
VERSION = 1  # of how a codebook is fitted: a change makes old cached ones unused
KEEP_IN_MEMORY = 16
KEEP_ON_DISK = 64  # at most K x D float32 each (500 x 768: 1.5 MB)


class Codebooks:
    """Codebooks fitted on the LibriVox clips, one per (encoder, layer, K, seed); ``folder``
    None keeps them in memory only. Thread-safe: one fit at a time, each fitted once."""

    def __init__(self, folder: Path | None, librivox: Path = LIBRIVOX) -> None:
        self.folder = folder
        self.librivox = librivox
        self._lock = threading.Lock()
        self._books: OrderedDict[str, au.Codebook] = OrderedDict()

    def clips(self) -> list[Path]:
        """The reference clips (none when the package is not installed)."""
        return sorted(self.librivox.glob("*.wav")) if self.librivox.is_dir() else []

    def get(self, encoder: au.Encoder, layer: int, k: int, seed: int) -> au.Codebook | None:
        """The shared codebook for this encoder, layer, K and seed: fitted on first use,
        then reused; None when the LibriVox clips are not installed."""
        clips = self.clips()
        if not clips:
            return None
        key = self._key(encoder, layer, k, seed, clips)
        with self._lock:
            book = self._books.get(key) or self._read(key)
            if book is None:
                book = self._fit(encoder, layer, k, seed, clips)
                self._write(key, book)
            self._books[key] = book
            self._books.move_to_end(key)
            while len(self._books) > KEEP_IN_MEMORY:
                self._books.popitem(last=False)
            return book

    @staticmethod
    def _key(encoder: au.Encoder, layer: int, k: int, seed: int, clips: list[Path]) -> str:
        import torch
        import torchaudio

        # random weights depend on the seed and on torch's initialisation code
        files = ",".join(f"{p.name}:{p.stat().st_size}" for p in clips)
        return (
            f"v{VERSION} {encoder.kind} [{encoder.weights}] layer {layer} K {k} seed {seed} "
            f"torch {torch.__version__} torchaudio {torchaudio.__version__} clips {files}"
        )

    @staticmethod
    def _fit(encoder: au.Encoder, layer: int, k: int, seed: int, clips: list[Path]) -> Any:
        from mmdemo.flows.audio import read_audio

        frames = [
            au.clip_frames(encoder, read_audio(p, max_seconds=au.MAX_SECONDS).samples, layer)
            for p in clips
        ]
        source = f"librivox ({len(clips)} clips, {sum(len(f) for f in frames)} frames)"
        return au.fit_codebook(frames, k, seed, source)

    def _path(self, key: str) -> Path | None:
        if self.folder is None:
            return None
        return self.folder / f"codebook-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz"

    def _read(self, key: str) -> au.Codebook | None:
        """The codebook cached on disk for ``key``; None when absent, unreadable or another's."""
        import numpy as np
        import torch

        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as saved:
                if str(saved["key"]) != key:
                    return None
                book = au.Codebook(
                    torch.from_numpy(saved["centroids"].copy()), str(saved["source"])
                )
        except (OSError, ValueError, KeyError):  # damaged: fitted again and rewritten
            return None
        path.touch()  # recently used: kept when the folder is trimmed
        return book

    def _write(self, key: str, book: au.Codebook) -> None:
        import numpy as np

        from mmdemo.models.files import atomic_write

        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "key": np.array(key),
            "source": np.array(book.source),
            "centroids": book.centroids.numpy(),
        }
        atomic_write(path, lambda handle: np.savez(handle, **arrays))
        with contextlib.suppress(OSError):  # another process may be trimming too
            kept = sorted(path.parent.glob("codebook-*.npz"), key=lambda p: p.stat().st_mtime)
            for old in kept[:-KEEP_ON_DISK]:
                old.unlink(missing_ok=True)
