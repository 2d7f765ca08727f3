"""How the System tab shows the system report: the summary line, the models table and the
versions line. Pure formatting of ``SystemReport`` (mmdemo.flows.system)."""

from __future__ import annotations

from typing import Any

from mmdemo.flows.system import SystemReport
from mmdemo.units import human_bytes, human_count

HEADERS = [
    "backend",
    "model",
    "state",
    "device",
    "dtype (why)",
    "params",
    "memory",
    "load s",
    "details",
]


def model_rows(report: SystemReport) -> list[list[Any]]:
    rows = []
    for s in report.models:
        details = ", ".join(f"{k}: {v}" for k, v in s.details.items()) or s.error[:160]
        rows.append(
            [
                s.backend,
                s.model_id,
                s.state,
                s.device,
                f"{s.dtype} ({s.dtype_reason})" if s.dtype_reason else s.dtype,
                human_count(s.params) if s.params else "",
                human_bytes(s.nbytes) if s.nbytes else "",
                f"{s.load_seconds:.2f}" if s.state == "loaded" else "",
                details,
            ]
        )
    return rows


FAMILY_HEADERS = [
    "VLM family",
    "architecture",
    "model (this profile)",
    "tiny build",
    "state",
    "image budget on a CPU",
    "LoRA targets",
    "mixed-adapter batches",
]


def family_rows(report: SystemReport) -> list[list[Any]]:
    """One row per VLM family; the configured one is marked with a star."""
    return [
        [
            f"{f.title} ({f.key})" + (" *" if f.selected else ""),
            f.architecture,
            f.model_id,
            f.tiny_id,
            f.state if f.state in ("loaded", "available") else f"{f.state}: {f.note}"[:200],
            f.cpu_image_budget,
            ", ".join(f.lora_targets),
            "yes" if f.mixed_batch else f"no: {f.serial_reason}",
        ]
        for f in report.families
    ]


def summary_md(report: SystemReport) -> str:
    loaded = sum(1 for s in report.models if s.state == "loaded")
    accel = (
        f" · accelerator {human_bytes(report.accelerator_bytes)}"
        if report.accelerator_bytes
        else ""
    )
    return (
        f"**Profile** `{report.profile}` · **device** `{report.device}` · "
        f"**models loaded** {loaded}/{len(report.models)} · "
        f"**process memory** {human_bytes(report.rss_bytes)}{accel}"
    )


def versions_md(report: SystemReport) -> str:
    return " · ".join(f"{name} `{version}`" for name, version in report.versions)
