"""The load harness (mmdemo/bench/load.py) on the in-process app: two users, a few seconds.
Its figures are a benchmark (docs/reliability.md); here only that it runs, that nothing
fails and that no user gets another user's answer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mmdemo.bench.load import add_index, exercise


def test_two_users_mix_every_tab_without_errors_or_crossed_answers(
    app: Any, app_url: str, librivox: list[tuple[Path, str]], tmp_path: Path
) -> None:
    from mmdemo.bench.load import _media

    add_index(app_url)
    result = exercise(
        app_url,
        os.getpid(),
        2,
        4.0,
        _media(tmp_path),
        adapters=("color-namer", "pirate"),
        idle_s=0.0,
    )
    assert result["errors"] == [] and result["crossed"] == []
    assert result["requests"] >= 2  # each user asked at least once under load
