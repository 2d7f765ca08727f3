"""The VLM families as the System tab, ``/v1/models`` and ``python -m mmdemo models families``
show them: what each is, its model for the active profile, and its state on this run
(loaded, available, not cached, or refused and why). Reads no weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mmdemo.errors import ModelUnavailableError
from mmdemo.models.families import FAMILIES, Family, by_model_id, by_model_type, check_allowed
from mmdemo.models.manager import ModelManager
from mmdemo.models.sources import availability


@dataclass(frozen=True)
class FamilyState:
    key: str  # what MMDEMO_VLM_FAMILY takes
    title: str
    architecture: str
    model_id: str  # the family's model for the active profile ("" none)
    tiny_id: str  # its tiny build ("" none)
    state: str  # loaded | available | not available | refused
    note: str  # where the files are, or why it is refused
    selected: bool  # the VLM this run is configured to load is of this family
    cpu_image_budget: str
    lora_targets: tuple[str, ...]
    mixed_batch: bool
    serial_reason: str  # why concurrent requests do not share a batch ("" they do)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["lora_targets"] = list(self.lora_targets)
        return out


def _loaded_family(manager: ModelManager) -> Family | None:
    """The family of the VLM loaded now, from the manager's status (never loads it)."""
    row = next((s for s in manager.status() if s.backend == "vlm"), None)
    if row is None or row.state != "loaded":
        return None
    return by_model_type(str(row.details.get("family", "")))


def family_state(
    family: Family, manager: ModelManager, loaded: Family | None = None
) -> FamilyState:
    """One family's row: ``loaded`` (the family of the VLM loaded now) is "loaded"; for the
    others their model for the active profile (the configured VLM when that is of this
    family) is checked."""
    settings = manager.settings
    configured = manager.model_id("vlm") if "vlm" in manager.backends else ""
    selected = by_model_id(configured) is family if configured else False
    ids = family.model_ids()
    model_id = configured if selected else (ids[settings.resolved_profile] or ids["gpu"])
    if loaded is family:
        state, note = "loaded", f"the VLM now ({configured})"
    else:
        try:
            check_allowed(family, model_id, settings)
            ok, note = availability("vlm", model_id, settings)
            state = "available" if ok else "not available"
        except ModelUnavailableError as exc:
            state, note = "refused", str(exc)
    return FamilyState(
        key=family.key,
        title=family.title,
        architecture=family.architecture,
        model_id=model_id,
        tiny_id=family.tiny_id,
        state=state,
        note=note,
        selected=selected,
        cpu_image_budget=family.cpu_image_budget(),
        lora_targets=family.lora_targets,
        mixed_batch=family.mixed_batch,
        serial_reason=family.serial_reason,
    )


def family_states(manager: ModelManager) -> list[FamilyState]:
    """Every family mmdemo knows, in the registry's order."""
    loaded = _loaded_family(manager)
    return [family_state(f, manager, loaded) for f in FAMILIES.values()]


def tiny_vlm_ids() -> list[str]:
    """The tiny build of every family that has one (offline bases to train on)."""
    return [f.tiny_id for f in FAMILIES.values() if f.tiny]
