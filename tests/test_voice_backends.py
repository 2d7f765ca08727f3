"""Speech backends the voice assistant offers beyond the defaults: espeak-ng voices and
languages, and how the assistant picks a voice for the spoken language."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

from mmdemo.config import Settings
from mmdemo.errors import MissingDependencyError
from mmdemo.models.manager import ModelManager


@pytest.fixture
def espeak(tiny_settings: Settings) -> Any:
    if shutil.which("espeak-ng") is None:
        if os.environ.get("MMDEMO_CI") == "1":
            pytest.fail("espeak-ng is missing; apt-get install espeak-ng")
        pytest.skip("espeak-ng is not installed")
    manager = ModelManager(tiny_settings.replace(tts="espeak-ng"))
    yield manager.get("tts")
    manager.unload_all()


def test_espeak_speaks_many_languages_at_the_chosen_speed(espeak: Any) -> None:
    assert {"en-us", "fr-fr", "de"} <= set(espeak.voices)
    assert {"en", "fr", "de", "es"} <= set(espeak.languages)
    assert espeak.voice_for("fr") == "fr-fr" and espeak.voice_for("xx") is None
    normal = espeak.synthesize("Bonjour, comment allez-vous aujourd'hui ?", voice="fr-fr")
    fast = espeak.synthesize("Bonjour, comment allez-vous aujourd'hui ?", "fr-fr", speed=2.0)
    assert normal.audio.dtype.name == "float32" and normal.audio.ndim == 1
    assert len(normal.audio) / normal.sample_rate > 1.0
    assert len(fast.audio) < 0.7 * len(normal.audio)
    with pytest.raises(ValueError, match="no voice"):
        espeak.synthesize("hello", voice="klingon")


def test_a_missing_espeak_says_how_to_install_it(
    tiny_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    manager = ModelManager(tiny_settings.replace(tts="espeak-ng"))
    with pytest.raises(MissingDependencyError, match="apt-get install espeak-ng"):
        manager.get("tts")
