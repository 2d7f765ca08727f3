"""The load harness's users (mmdemo/bench/load_users.py) on the in-process app: two users, each
asking every tab once, at the same time. Its figures are a benchmark (docs/reliability.md);
here only that nothing fails and that no user gets another user's answer. The round is a
fixed set of requests, not a span of time, so it asks the same on any machine."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from mmdemo.bench.load import add_index
from mmdemo.bench.load_users import ENDPOINTS, Tally, User, _media


def one_round(person: User, tally: Tally, start: threading.Barrier) -> None:
    """Every operation of ``person`` once (in its own order, as the harness runs them), each
    answer checked against the one it got alone."""
    ops = person.ops()
    start.wait()
    for _ in range(len(ops)):
        person.step_once(tally, ops)


def test_two_users_mix_every_tab_without_errors_or_crossed_answers(
    app: Any, app_url: str, librivox: list[tuple[Path, str]], tmp_path: Path
) -> None:
    add_index(app_url)
    media = _media(tmp_path)
    people = [User(i, app_url, media, adapters=("color-namer", "pirate")) for i in range(2)]
    for person in people:  # alone first: the answers the load must reproduce
        person.solo()
    tally, start = Tally(), threading.Barrier(len(people))
    users = [threading.Thread(target=one_round, args=(p, tally, start)) for p in people]
    for user in users:
        user.start()
    for user in users:
        user.join()
    assert tally.errors == [] and tally.crossed == []
    asked = sum(len(v) for v in tally.latencies.values())
    assert asked == sum(len(p.ops()) for p in people), "every request of the round was answered"
    assert set(tally.latencies) == set(ENDPOINTS.values()), "every tab was asked"
    # each summary was of a video made for that request, and named it
    assert all(len(set(p.summaries)) == len(p.summaries) == 2 for p in people)
