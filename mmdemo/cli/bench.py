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
    p.add_argument("--only", default="", help="comma-separated parts, for benchmarks made of parts")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmdemo.bench.report import write_section

    module = importlib.import_module(BENCHES[args.name])
    takes = module.run.__code__.co_varnames
    kwargs: dict = {"quick": True} if args.quick and "quick" in takes else {}
    if args.only:
        if "only" not in takes:
            raise SystemExit(f"bench {args.name} has no parts: drop --only")
        kwargs["only"] = tuple(p.strip() for p in args.only.split(",") if p.strip())
    result = module.run(**kwargs)
    for table in result if isinstance(result, list) else [result]:
        print(table.markdown(), "\n")
        if args.write:
            print(f"written to {write_section(table)}\n")
    return 0
