"""Concurrent chat users on one VLM: the serial path (one answer at a time, the adapter switched
per request) against the batched path (one mixed-adapter batch), measured in the same run."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path
from typing import Any

from mmdemo.bench.report import Table, ms

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "images"
USERS = (  # image, question: four users, four adapters
    ("astronaut.jpg", "Describe this image in detail."),
    ("cat.jpg", "What animal is this?"),
    ("rocket.jpg", "What is happening here?"),
    ("coffee.jpg", "What is on the table?"),
)
TARGET = 2.0  # aggregate tokens/s of the batch over the serial path


def together(chat: Any, jobs: list[tuple[str, Any, str]], gen: Any) -> tuple[list[Any], float]:
    """Every job (adapter, image, question) from its own thread at once; (finals, wall s)."""
    from mmdemo.flows.chat import ChatSession

    finals: dict[int, Any] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs) + 1)

    def user(i: int, adapter: str, image: Any, question: str) -> None:
        try:
            barrier.wait()
            finals[i] = list(chat.stream(ChatSession(), question, [image], adapter, gen))[-1]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=user, args=(i, *job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [finals[i] for i in range(len(jobs))], time.perf_counter() - start


def cases_for(names: list[str]) -> dict[str, list[tuple[str, Any, str]]]:
    """The two cases of four users: the same image and question, and four different ones."""
    from PIL import Image

    images = {f: Image.open(ASSETS / f).convert("RGB").resize((512, 512)) for f, _ in USERS}
    return {
        "same image and question": [(n, images[USERS[0][0]], USERS[0][1]) for n in names],
        "four different images and questions": [
            (n, images[f], q) for n, (f, q) in zip(names, USERS, strict=True)
        ],
    }


def serial_and_batched(chat: Any, jobs: list[tuple[str, Any, str]], gen: Any) -> tuple:
    """(serial finals, s), (batched finals, s): the same jobs one at a time under the adapter
    pin, then as one mixed-adapter batch."""
    chat.engine.batching = False
    serial = together(chat, jobs, gen)
    chat.engine.batching = True
    chat.engine.batch_max_rows = len(jobs)  # a full batch starts without waiting for the window
    return serial, together(chat, jobs, gen)


def identity(chat: Any, names: list[str], gen: Any, table: Table, label: str) -> bool:
    """The separation check in float64, where two correct paths cannot round apart: each
    batched answer against the same request answered alone, and the adapters' solo answers
    against each other (they must differ, or a crossed adapter would go unseen). Adds a row
    per case; True when every answer matched and the adapters all answered differently."""
    ok = True
    for case, jobs in cases_for(names).items():
        (serial, _), (batched, _) = serial_and_batched(chat, jobs, gen)
        same = sum(b.text == s.text for b, s in zip(batched, serial, strict=True))
        rows = max(f.metrics.batch_rows for f in batched)
        distinct = len({s.text for s in serial})
        ok &= same == len(serial) and distinct == len(serial) and rows == len(serial)
        table.add(
            f"{label}, {case}: answers in float64",
            f"{same} of {len(serial)} identical to the same request answered alone (batch of "
            f"{rows}); {distinct} distinct answers of {len(serial)}",
            "**identical, adapters separated**" if same == distinct == len(serial) else "missed",
        )
    return ok


def measure(
    chat: Any,
    names: list[str],
    gen: Any,
    table: Table,
    label: str,
    dtype: str,
    repeats: int = 3,
) -> None:
    """Serial vs batched for four users, ``repeats`` times each in turn (medians); adds rows,
    with how many batched answers equal their solo ones in this dtype (bf16 may round apart:
    the float64 rows of ``identity`` are the separation check)."""
    cases = cases_for(names)
    for case, jobs in cases.items():
        runs: list[tuple[float, float, float, float]] = []  # serial s, rate; batched s, rate
        all_same = True
        for _ in range(repeats):  # alternating, so drifts in machine load hit both paths
            (serial, serial_s), (batched, batched_s) = serial_and_batched(chat, jobs, gen)
            total = sum(f.metrics.tokens for f in batched)
            serial_total = sum(f.metrics.tokens for f in serial)
            runs.append((serial_s, serial_total / serial_s, batched_s, total / batched_s))
            same = [b.text == s.text for b, s in zip(batched, serial, strict=True)]
            all_same &= all(same)
        serial_s, serial_rate, batched_s, rate = (
            statistics.median(c) for c in zip(*runs, strict=True)
        )
        ratios = sorted(r[3] / r[1] for r in runs)  # each batch against the serial run beside it
        ratio = statistics.median(ratios)
        rows = statistics.median(f.metrics.batch_rows for f in batched)
        table.add(
            f"{label}, {case}: serial path (one at a time, baseline), median of {repeats}",
            f"{serial_rate:.1f} tok/s aggregate ({ms(serial_s)} for {len(jobs)} answers)",
            "1.00x",
        )
        verdict = "met" if ratio >= TARGET else "missed"
        table.add(
            f"{label}, {case}: one mixed-adapter batch, median of {repeats}",
            f"{rate:.1f} tok/s aggregate ({ms(batched_s)}; batch of {rows:.0f})",
            f"**{ratio:.2f}x** (median of runs; target >= {TARGET:.0f}x: {verdict}; "
            f"runs {' / '.join(f'{r:.2f}x' for r in ratios)})",
        )
        distinct = len({s.text for s in serial})
        table.add(
            f"{label}, {case}: answers in {dtype}",
            f"{sum(same)} of {len(same)} identical to the same request answered alone "
            f"(last run; every run: {'yes' if all_same else 'no'}); {distinct} distinct answers "
            f"of {len(serial)}",
            "rounding (see the float64 rows)",
        )


def adapters_for(model: Any, root: Path, chat: Any, count: int = 4, rank: int = 16) -> list[str]:
    """``count`` random LoRA adapters (r=16 on the language model) installed in the store,
    scaled (alpha/r = 16) so that each changes the greedy answer its own way: the batch check
    can only catch a crossed adapter when the adapters answer differently."""
    from mmdemo.finetune.random_adapter import random_adapter

    names = []
    for i in range(count):
        path = random_adapter(model, root / f"adapter{i}", seed=100 + i, rank=rank, alpha=16 * rank)
        chat.store.install(path, f"user{i}")
        names.append(f"user{i}")
    return names
