"""``bench``: run a benchmark, print its table, optionally write it to docs/benchmarks.md."""

from __future__ import annotations

import argparse
import importlib

# benchmark name -> module with run(...) -> Table (or a list of tables)
BENCHES = {
    "startup": "mmdemo.bench.startup",
    "adapters": "mmdemo.bench.adapters",
    "chat": "mmdemo.bench.chat",
    "clip-embed": "mmdemo.bench.clip_embed",
    "clip-search": "mmdemo.bench.clip_search",
    "clip-add": "mmdemo.bench.clip_add",
    "voice": "mmdemo.bench.voice",
    "gestures": "mmdemo.bench.gestures",
    "finetune": "mmdemo.bench.finetune",
    "video": "mmdemo.bench.video",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks (ratios against a baseline from the same run)")
    p.add_argument("name", choices=sorted(BENCHES), help="which benchmark")
    p.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    p.add_argument("--quick", action="store_true", help="fewer/smaller cases (smoke run)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmdemo.bench.report import write_section

    module = importlib.import_module(BENCHES[args.name])
    kwargs = {"quick": True} if args.quick and "quick" in module.run.__code__.co_varnames else {}
    result = module.run(**kwargs)
    for table in result if isinstance(result, list) else [result]:
        print(table.markdown(), "\n")
        if args.write:
            print(f"written to {write_section(table)}\n")
    return 0
