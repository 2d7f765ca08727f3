"""Which process of a multi-process run this is (``accelerate launch``, ``torchrun``).

Every process trains its share of each batch (the Trainer's DDP averages the gradients); only
the main one reports, evaluates and writes the adapter. Read from the launcher's environment,
so asking needs no process group and works before the Trainer makes one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# rank variables of torchrun (accelerate's launcher), then of the MPI launchers accelerate uses
RANK_VARS = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
SIZE_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def _first_int(names: tuple[str, ...], env: Mapping[str, str], default: int) -> int:
    for name in names:
        if env.get(name, "").strip():
            return int(env[name])
    return default


def process_rank(environ: Mapping[str, str] | None = None) -> int:
    """This process's rank among all processes of the run (0 when launched alone)."""
    return _first_int(RANK_VARS, os.environ if environ is None else environ, 0)


def process_count(environ: Mapping[str, str] | None = None) -> int:
    """How many processes train together (1 when launched alone)."""
    return max(1, _first_int(SIZE_VARS, os.environ if environ is None else environ, 1))


def is_main_process(environ: Mapping[str, str] | None = None) -> bool:
    """True in the process that reports, evaluates and saves (rank 0, or the only one)."""
    return process_rank(environ) == 0


def process_device(device: str, environ: Mapping[str, str] | None = None) -> str:
    """``device`` for this process: plain ``cuda`` becomes this process's own GPU
    (``cuda:LOCAL_RANK``) in a multi-process run, so each loads its model there and not
    every copy on GPU 0; anything else is kept."""
    env = os.environ if environ is None else environ
    if device != "cuda" or process_count(env) < 2:
        return device
    return f"cuda:{_first_int(('LOCAL_RANK',), env, 0)}"
