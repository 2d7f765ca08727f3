"""Logging set-up shared by the entry points (the app, the CLI, training jobs)."""

from __future__ import annotations

import logging


def quiet_library_logs() -> None:
    """bitsandbytes warns on import that an optional Hub-downloaded CPU kernel is missing;
    mmdemo never downloads kernels at run time, so the warning only alarms users."""
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
