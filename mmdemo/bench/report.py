"""Timing helpers and the docs/benchmarks.md writer (one marked section per benchmark)."""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"


@dataclass
class Table:
    """A benchmark's result: a title, a markdown table, notes."""

    name: str
    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", machine_line(), ""]
        lines.append("| " + " | ".join(self.headers) + " |")
        lines.append("| " + " | ".join("---" for _ in self.headers) + " |")
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines)


def machine_line() -> str:
    import importlib.metadata as md

    try:
        torch_v = md.version("torch")
    except md.PackageNotFoundError:
        torch_v = "n/a"
    return (
        f"_Measured {date.today().isoformat()} on {os.cpu_count()} CPU cores "
        f"({platform.machine()}), Python {platform.python_version()}, torch {torch_v}._"
    )


def timeit(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall seconds of ``fn`` over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def write_section(table: Table, doc: Path = DOC) -> Path:
    """Replace (or append) this benchmark's section in docs/benchmarks.md."""
    doc.parent.mkdir(parents=True, exist_ok=True)
    text = (
        doc.read_text(encoding="utf-8")
        if doc.exists()
        else (
            "# Benchmarks\n\nEvery table is written by `python -m mmdemo bench NAME --write`; "
            "each compares against a baseline measured in the same run.\n"
        )
    )
    begin, end = f"<!-- bench:{table.name} -->", f"<!-- /bench:{table.name} -->"
    block = f"{begin}\n{table.markdown()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + block + "\n"
    )
    doc.write_text(text, encoding="utf-8")
    return doc
