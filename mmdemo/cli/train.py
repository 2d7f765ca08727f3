"""``train`` and ``eval``: the Train tab's work from the command line (the same code).

python -m mmdemo train --method lora --steps 300                  # built-in shapes set
python -m mmdemo train --method lora --device cuda                # on the GPU (auto: the app's)
python -m mmdemo train --method qlora --data vqa_rad/ --stages two-stage --caption-data roco/
python -m mmdemo train --method dpo --data ~/.cache/mmdemo/votes/exports/votes-.../  # votes
accelerate launch -m mmdemo train --method lora --data my.jsonl   # several GPUs (one adapter)
python -m mmdemo eval my-adapter --data builtin
python -m mmdemo train --stages grounding --attach language+projector   # boxes (IoU@0.5)
python -m mmdemo eval my-adapter --task grounding
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from mmdemo.finetune.config import ATTACH, BASES, SCHEDULES, STAGES, TASKS
from mmdemo.finetune.events import EvalProgress, Event, Step


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train an adapter (LoRA, QLoRA, DyLoRA, MeZO, ...)")
    p.add_argument("--method", default="lora", help="see --list-methods")
    p.add_argument("--data", default="builtin", help="builtin, a JSONL file, or a dataset folder")
    p.add_argument("--caption-data", help="two-stage: captioning data (default: --data)")
    p.add_argument("--stages", choices=STAGES, default="vqa")
    p.add_argument("--base", choices=BASES, default="vlm", help="the VLM, or the text LLM")
    p.add_argument("--attach", choices=ATTACH, default="language")
    p.add_argument("--name", default="", help="adapter name (default: method-data-time)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.0, help="0: the method's default")
    p.add_argument("--schedule", choices=SCHEDULES, default="cosine", help="after warm-up")
    p.add_argument("--warmup", type=int, default=0, help="linear warm-up steps")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--placement", choices=("series", "parallel"), default="parallel")
    p.add_argument("--beta", type=float, help="dpo: pull towards the reference (default 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=float, default=1.0, help="share of the built-in set to use")
    p.add_argument("--eval-limit", type=int, default=0, help="evaluate on at most N questions")
    p.add_argument(
        "--device",
        default="auto",
        help="auto (MMDEMO_DEVICE, else cuda, mps, cpu), cpu, cuda, cuda:N or mps",
    )
    p.add_argument(
        "--out", type=Path, help="write the adapter here instead of the store (text base: the run)"
    )
    p.add_argument("--list-methods", action="store_true", help="list the methods and exit")
    p.add_argument("--job", type=Path, help=argparse.SUPPRESS)  # the app's worker process
    p.set_defaults(func=cmd_train)
    e = sub.add_parser("eval", help="evaluate an adapter (or 'base') on a dataset")
    e.add_argument("adapter")
    e.add_argument("--data", default="builtin")
    e.add_argument("--task", choices=TASKS, default="vqa", help="what to score (grounding: IoU)")
    e.add_argument("--limit", type=int, default=0, help="at most N questions")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)


def cmd_train(args: argparse.Namespace) -> int:
    if args.job:
        from mmdemo.finetune.job import run_job

        return run_job(args.job)
    from mmdemo.finetune.methods import METHODS

    if args.list_methods:
        for name, info in METHODS.items():
            print(f"{name:12} {info.family:5} {info.summary}")
        return 0
    from mmdemo.cli import settings_from
    from mmdemo.finetune.config import TrainConfig
    from mmdemo.finetune.processes import is_main_process, process_rank
    from mmdemo.finetune.progress import EventLog, StopSwitch
    from mmdemo.finetune.run import RunEnv, train_adapter
    from mmdemo.models.device import check_device

    cfg = TrainConfig(
        method=args.method,
        dataset=args.data,
        stages=args.stages,
        name=args.name,
        base=args.base,
        attach=args.attach,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        schedule=args.schedule,
        warmup=args.warmup,
        rank=args.rank,
        alpha=args.alpha,
        placement=args.placement,
        seed=args.seed,
        scale=args.scale,
        eval_limit=args.eval_limit,
        extra=_extra(args),
    )
    settings = settings_from(args)
    device = check_device(args.device)  # refused before any weights load, with the fix
    if device != "auto":
        settings = settings.replace(device=device)
    if not is_main_process():  # accelerate launch: a helper process trains, quietly
        scratch = Path(tempfile.mkdtemp(prefix=f"mmdemo-rank{process_rank()}-"))
        try:
            env = RunEnv(settings, scratch, EventLog(), StopSwitch(), adapters_dir=args.out)
            train_adapter(cfg, env)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return 0
    run_dir = settings.runs_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-cli"
    run_dir.mkdir(parents=True, exist_ok=True)
    log = EventLog(run_dir / "events.jsonl", on_event=_print_some)
    result = train_adapter(cfg, RunEnv(settings, run_dir, log, StopSwitch(), adapters_dir=args.out))
    print(f"adapter {result.adapter} -> {result.path}")
    print(json.dumps(result.metrics))
    print(f"report: {result.report}")
    return 0


def _extra(args: argparse.Namespace) -> dict:
    """Method-specific knobs given on the command line."""
    extra: dict = {}
    if args.caption_data:
        extra["caption_dataset"] = args.caption_data
    if args.beta is not None:
        extra["beta"] = args.beta
    return extra


def _print_some(event: Event) -> None:
    """Print phases and every 10th step (a line per step floods a terminal), no evaluation
    progress."""
    if isinstance(event, EvalProgress) or (isinstance(event, Step) and event.step % 10):
        return
    print(event.describe(), flush=True)


def cmd_eval(args: argparse.Namespace) -> int:
    from mmdemo.cli import settings_from
    from mmdemo.finetune.assess import evaluate_adapter
    from mmdemo.finetune.progress import EventLog

    settings = settings_from(args)
    run_dir = settings.runs_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-eval"
    metrics = evaluate_adapter(
        args.adapter, args.data, settings, run_dir, EventLog(), task=args.task, limit=args.limit
    )
    if args.json:
        print(json.dumps(metrics))
    else:
        for key, value in metrics.items():
            print(f"{key:16} {value}")
        print(f"per-question results: {run_dir / 'predictions.jsonl'}")
    return 0
