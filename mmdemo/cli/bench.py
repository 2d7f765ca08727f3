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
    "how": "mmdemo.bench.how",
    "voice": "mmdemo.bench.voice",
    "voice-alm": "mmdemo.bench.voice_alm",
    "gestures": "mmdemo.bench.gestures",
    "gestures-openmoji": "mmdemo.bench.gestures_openmoji",
    "gestures-unseen": "mmdemo.bench.gestures_unseen",
    "finetune": "mmdemo.bench.finetune",
    "finetune-sweep": "mmdemo.bench.finetune_sweep",
    "grounding": "mmdemo.bench.grounding",
    "dpo": "mmdemo.bench.dpo",
    "merge": "mmdemo.bench.merge",
    "video": "mmdemo.bench.video",
    "load": "mmdemo.bench.load",
    "families": "mmdemo.bench.families",
    "arena-models": "mmdemo.bench.arena_models",
    "decode": "mmdemo.bench.decode",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks (ratios against a baseline from the same run)")
    p.add_argument("name", choices=sorted(BENCHES), help="which benchmark")
    p.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    p.add_argument("--quick", action="store_true", help="fewer/smaller cases (smoke run)")
    p.add_argument("--only", default="", help="comma-separated parts, for benchmarks made of parts")
    p.add_argument("--users", type=int, help="load: concurrent users (default 8, at most 32)")
    p.add_argument("--seconds", type=float, help="load: duration (default 120, at most 600)")
    p.add_argument("--rounds", type=int, help="load: rounds with an idle pause after each (2)")
    p.add_argument(
        "--device", help="finetune, finetune-sweep, grounding: cpu or cuda (default cpu)"
    )
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
    for option in ("users", "seconds", "rounds", "device"):
        if getattr(args, option, None) is not None and option in takes:
            kwargs[option] = getattr(args, option)
    result = module.run(**kwargs)
    tables = result if isinstance(result, list) else [result]
    for table in tables:
        print(table.markdown(), "\n")
    if args.write and hasattr(module, "write_reliability"):  # load: docs/reliability.md too
        print(f"written to {write_section(tables[0])} and {module.write_reliability(tables)}")
    elif args.write:
        for table in tables:
            print(f"written to {write_section(table)}")
        if hasattr(module, "write_extra"):  # finetune-sweep: the defaults table in the code
            print(f"written to {module.write_extra(tables)}")
    return 0
